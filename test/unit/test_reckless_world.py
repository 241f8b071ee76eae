"""The safety supervisor's core driving the simulator's world core under a reckless policy: no collisions.

It spans two packages (vla_safety and vla_sim), so it lives with the root package, which depends on
both. The same loop the ROS system test runs (test/reckless_policy.test), without transport:
sensors refreshed at 10 Hz, a command forwarded at 20 Hz, physics at 100 Hz.
"""

import numpy as np
import pytest

from vla_msgs import names
from vla_safety.collision import scan_points
from vla_safety.config import SafetyConfig
from vla_safety.reckless import RecklessPolicy
from vla_safety.supervisor import SafetySupervisor
from vla_sim import physics
from vla_sim.world import World

RID = "robot_1"
TICK_S, PHYSICS_S = 0.05, 0.01


def gap(world: World) -> float:
    """The robot's smallest gap to anything else in the world; negative is an overlap."""
    rb = world.robot(RID)
    return physics.clearance(world.config, world.objects, world.robots, rb, rb.x, rb.y)


def run_episode(seed: int, duration_s: float = 8.0) -> tuple[int, float, int]:
    """Collisions, the smallest gap seen and the number of outputs the supervisor changed."""
    world = World([RID], seed=seed)
    sup = SafetySupervisor(SafetyConfig())
    policy = RecklessPolicy(seed)
    inc = 2 * np.pi / world.config.lidar_beams
    t, min_gap, interventions = 100.0, np.inf, 0
    ranges = None
    for tick in range(int(duration_s / TICK_S)):
        if tick % 2 == 0:
            ranges = world.lidar(RID)
            pts = scan_points(ranges, 0.0, inc, world.config.lidar_range_min_m, world.config.lidar_range_max_m)
            sup.set_obstacles(names.SCAN, sup.obstacle_points(names.SCAN, pts), t)
            cloud = world.point_cloud(RID).astype(np.float64)
            sup.set_obstacles(names.POINTS, sup.obstacle_points(names.POINTS, cloud), t)
        sup.set_command(policy.act(ranges, 0.0, inc, t - 100.0), t)
        d = sup.step(t)
        interventions += d.level != d.level.OK
        out = d.commanded
        world.set_twist(RID, out[0], out[1], out[5])
        for _ in range(round(TICK_S / PHYSICS_S)):
            world.step(PHYSICS_S)
            min_gap = min(min_gap, gap(world))
        t += TICK_S
    return world.robot(RID).collisions, min_gap, interventions


@pytest.mark.parametrize("seed", range(20))
def test_reckless_policy_never_collides(seed):
    collisions, min_gap, interventions = run_episode(seed)
    assert collisions == 0
    assert min_gap > 0.0
    assert interventions > 0  # the supervisor had work to do


def test_the_same_policy_unsupervised_does_collide():
    """Guards the test above against a policy too timid to matter."""
    inc = 2 * np.pi / 360
    collided = 0
    for seed in range(10):
        world = World([RID], seed=seed)
        policy = RecklessPolicy(seed)
        for tick in range(160):
            cmd = policy.act(world.lidar(RID), 0.0, inc, tick * TICK_S)
            world.set_twist(RID, cmd[0], cmd[1], cmd[5])
            for _ in range(5):
                world.step(PHYSICS_S)
        collided += world.robot(RID).collisions > 0
    assert collided >= 7
