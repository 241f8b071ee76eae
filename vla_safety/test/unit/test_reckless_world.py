"""The supervisor core driving the simulator's world core under a reckless policy: no collisions.

The same loop the ROS system test runs (root test/reckless_policy.test), without transport:
sensors refreshed at 10 Hz, the supervisor at 20 Hz, physics at 100 Hz.
"""

import numpy as np
import pytest
from vla_safety.collision import reduce_points, scan_points
from vla_safety.config import SafetyConfig
from vla_safety.reckless import RecklessPolicy
from vla_safety.supervisor import SafetySupervisor

world_mod = pytest.importorskip("vla_sim.world")

RID = "robot_1"
TICK_S, PHYSICS_S = 0.05, 0.01


def run_episode(seed: int, duration_s: float = 8.0) -> tuple[int, float]:
    world = world_mod.World([RID], seed=seed)
    cfg = SafetyConfig()
    sup = SafetySupervisor(cfg)
    policy = RecklessPolicy(seed)
    reach = 3.0
    inc = 2 * np.pi / world.config.lidar_beams
    t, min_gap = 100.0, np.inf
    ranges = None
    for tick in range(int(duration_s / TICK_S)):
        if tick % 2 == 0:
            ranges = world.lidar(RID)
            pts = scan_points(ranges, 0.0, inc, world.config.lidar_range_min_m, world.config.lidar_range_max_m)
            sup.set_obstacles("scan", reduce_points(pts, cfg.scan_pose, reach, cfg.voxel_size, 5000), t)
            cloud = world.point_cloud(RID).astype(np.float64)
            z_range = (cfg.obstacle_min_height, cfg.obstacle_max_height)
            sup.set_obstacles("velodyne_points",
                              reduce_points(cloud, cfg.cloud_pose, reach, cfg.voxel_size, 5000, z_range), t)
        sup.set_command(policy.act(ranges, 0.0, inc, t - 100.0), t)
        out = sup.step(t).commanded
        world.set_twist(RID, out[0], out[1], out[5])
        for _ in range(round(TICK_S / PHYSICS_S)):
            world.step(PHYSICS_S)
            rb = world.robot(RID)
            min_gap = min(min_gap, world._clearance(rb, rb.x, rb.y))
        t += TICK_S
    return world.robot(RID).collisions, min_gap


@pytest.mark.parametrize("seed", range(20))
def test_reckless_policy_never_collides(seed):
    collisions, min_gap = run_episode(seed)
    assert collisions == 0
    assert min_gap > 0.0


def test_the_same_policy_unsupervised_does_collide():
    """Guards the test above against a policy too timid to matter."""
    inc = 2 * np.pi / 360
    collided = 0
    for seed in range(10):
        world = world_mod.World([RID], seed=seed)
        policy = RecklessPolicy(seed)
        for tick in range(160):
            cmd = policy.act(world.lidar(RID), 0.0, inc, tick * TICK_S)
            world.set_twist(RID, cmd[0], cmd[1], cmd[5])
            for _ in range(5):
                world.step(PHYSICS_S)
        collided += world.robot(RID).collisions > 0
    assert collided >= 7
