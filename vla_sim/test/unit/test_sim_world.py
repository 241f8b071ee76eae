"""World core: layout determinism, collisions, sensors against geometry, battery, bad input."""

import math

import numpy as np
import pytest

from vla_monitoring.config import ConfigError
from vla_sim.world import REACHED_DISTANCE_M, TARGET_NAMES, World, WorldConfig, WorldError


def empty_world(**kwargs) -> World:
    """One robot at the origin facing +x in a room with the objects moved out of the way."""
    w = World(["r"], seed=0, config=WorldConfig(num_obstacles=0, **kwargs))
    for i, o in enumerate(w.objects):  # park the targets along the far +y wall
        o.x, o.y = -3.0 + 2.0 * i, 3.2
    w.rebuild_solids()
    rb = w.robot("r")
    rb.x, rb.y, rb.yaw = 0.0, 0.0, 0.0
    return w


def test_same_seed_same_world_and_different_seed_differs():
    a, b, c = World(["r1", "r2"], seed=42), World(["r1", "r2"], seed=42), World(["r1", "r2"], seed=43)
    assert a.state() == b.state()
    assert a.state()["objects"] != c.state()["objects"]
    assert np.array_equal(a.camera("r1"), b.camera("r1"))
    for w in (a, b):
        w.set_twist("r1", 0.5, 0.1, 0.3)
        for _ in range(20):
            w.step(0.1)
    assert a.state() == b.state()


def test_reset_reproduces_layout():
    w = World(["r"], seed=7)
    first = w.state()
    w.reset(8)
    w.reset(7)
    assert w.state() == first


def test_layout_has_four_distinct_targets_and_obstacles():
    w = World(["r"], seed=1)
    names = [o.name for o in w.objects if o.is_target]
    assert sorted(names) == sorted(TARGET_NAMES)
    assert len({o.rgb for o in w.objects if o.is_target}) == 4
    assert sum(not o.is_target for o in w.objects) == w.config.num_obstacles


def test_wall_stops_robot_and_counts_one_collision():
    w = empty_world()
    w.set_twist("r", 0.8, 0.0, 0.0)
    for _ in range(200):
        w.step(0.05)
        rb = w.robot("r")
        assert rb.x <= 4.0 - w.config.robot_radius_m + 1e-9
    assert rb.x == pytest.approx(4.0 - 0.2, abs=0.05)
    assert rb.collisions == 1  # a continuous push against the wall is one contact, not one per step


def test_robot_never_enters_an_object_from_any_direction():
    w = World(["r"], seed=5)
    rng = np.random.default_rng(0)
    rb = w.robot("r")
    # Start just off an object so the random walk is sure to bump into it from several sides.
    obstacle = w.objects[-1]
    rb.x, rb.y = obstacle.x + obstacle.size_m + w.config.robot_radius_m + 0.02, obstacle.y
    for _ in range(400):
        w.set_twist("r", *rng.uniform(-1, 1, 3))
        w.step(0.1)
        for o in w.objects:
            assert w.edge_distance(o, rb.x, rb.y) >= w.config.robot_radius_m - 1e-9
    assert rb.collisions > 0


def test_robots_do_not_overlap():
    w = World(["a", "b"], seed=0, config=WorldConfig(num_obstacles=0))
    a, b = w.robot("a"), w.robot("b")
    a.x, a.y, a.yaw = 0.0, 0.0, 0.0
    b.x, b.y, b.yaw = 1.0, 0.0, math.pi
    for o in w.objects:
        o.y = 3.3
    w.rebuild_solids()
    w.set_twist("a", 0.8, 0, 0)
    w.set_twist("b", 0.8, 0, 0)
    for _ in range(40):
        w.step(0.05)
        assert math.hypot(a.x - b.x, a.y - b.y) >= 2 * w.config.robot_radius_m - 1e-9
    assert a.collisions >= 1 and b.collisions >= 1


def test_acceleration_limit():
    w = empty_world()
    w.set_twist("r", 0.8, 0, 0)
    w.step(0.1)
    assert w.robot("r").vx == pytest.approx(w.config.max_linear_accel_mps2 * 0.1)


def test_non_finite_twist_is_ignored_and_counted():
    w = empty_world()
    w.set_twist("r", 0.5, 0, 0)
    assert not w.set_twist("r", float("nan"), 0, 0)
    assert not w.set_twist("r", 0, float("inf"), 0)
    assert not w.set_twist("r", "fast", 0, 0)
    assert w.robot("r").rejected_twists == 3
    assert w.robot("r").cmd[0] == 0.5  # the last good command stands


def test_unknown_ids_and_bad_arguments_raise_clear_errors():
    w = empty_world()
    with pytest.raises(WorldError, match="unknown robot id 'ghost'"):
        w.set_twist("ghost", 0, 0, 0)
    with pytest.raises(WorldError, match="unknown target"):
        w.set_target("r", "purple pyramid")
    with pytest.raises(WorldError):
        w.reset(-1)
    with pytest.raises(WorldError):
        w.step(float("nan"))
    with pytest.raises(WorldError):
        World([], seed=0)
    with pytest.raises(ConfigError, match=r"~robot_radius_m must be in \[0.05, 0.5\]"):
        World(["r"], config=WorldConfig(robot_radius_m=-1))
    with pytest.raises(ConfigError, match="~cloud_rings_deg must hold at least 1 items"):
        World(["r"], config=WorldConfig(cloud_rings_deg=[]))


def test_lidar_matches_wall_geometry():
    w = empty_world()
    rb = w.robot("r")
    rb.x, rb.y = 1.0, -1.0
    ranges = w.lidar("r")
    # beam 0 points along +x, beam 90 along +y, beam 180 along -x, beam 270 along -y
    assert ranges[0] == pytest.approx(3.0, abs=1e-6)
    assert ranges[180] == pytest.approx(5.0, abs=1e-6)
    assert ranges[270] == pytest.approx(3.0, abs=1e-6)
    diag = ranges[45]
    assert diag == pytest.approx(3.0 * math.sqrt(2), abs=1e-6)


def test_lidar_sees_an_object_at_its_distance():
    w = empty_world()
    ball = w.object("blue ball")
    ball.x, ball.y = 2.0, 0.0
    w.rebuild_solids()
    ranges = w.lidar("r")
    assert ranges[0] == pytest.approx(2.0 - ball.size_m, abs=1e-6)
    assert w.distance_to_target("r") is None
    w.set_target("r", "blue ball")
    assert w.distance_to_target("r") == pytest.approx(2.0 - ball.size_m - w.config.robot_radius_m)
    assert not w.reached("r")


def test_lidar_range_limits_give_inf():
    w = empty_world(room_size_m=20.0)
    for o in w.objects:
        o.x, o.y = 9.0, 9.0  # in a far corner, 12.7 m away
    w.rebuild_solids()
    assert np.isinf(w.lidar("r")).all()  # every wall is 10 m away, beyond the 8 m maximum


def test_camera_shows_target_colour_where_it_is():
    w = empty_world()
    cube = w.object("red cube")
    cube.x, cube.y = 2.0, 0.0
    w.rebuild_solids()
    img = w.camera("r").astype(int)
    assert img.shape == (96, 96, 3)
    centre = img[50:56, 46:50]
    assert (centre[..., 0] > 150).all() and (centre[..., 1] < 80).all()  # red, straight ahead
    # turned 90 degrees left, the cube is to the right, out of the 90 degree view
    w.robot("r").yaw = math.pi / 2
    img = w.camera("r").astype(int)
    red = (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)
    assert not red.any()


def test_camera_left_right_and_other_robots_visible():
    w = World(["r", "other"], seed=0, config=WorldConfig(num_obstacles=0))
    for i, o in enumerate(w.objects):
        o.x, o.y = -3.0 + 2.0 * i, 3.2
    w.rebuild_solids()
    r, other = w.robot("r"), w.robot("other")
    r.x, r.y, r.yaw = 0.0, -2.0, 0.0
    other.x, other.y = 1.5, -1.3  # ahead and to the left
    img = w.camera("r").astype(int)
    robot_px = (abs(img - np.array([60, 60, 70])).sum(-1) < 40)
    cols = np.nonzero(robot_px.any(axis=0))[0]
    assert len(cols) > 0 and cols.mean() < 48  # left half of the image


def test_cone_tapers_and_cube_is_flat():
    w = empty_world()
    cone, cube = w.object("yellow cone"), w.object("red cube")
    cone.x, cone.y = 2.0, 0.6
    cube.x, cube.y = 2.0, -0.6
    w.rebuild_solids()
    img = w.camera("r").astype(int)
    yellow = (img[..., 0] > 150) & (img[..., 1] > 120) & (img[..., 2] < 80)
    red = (img[..., 0] > 150) & (img[..., 1] < 80)
    cone_heights = yellow.sum(axis=0)[yellow.any(axis=0)]
    cube_heights = red.sum(axis=0)[red.any(axis=0)]
    assert cone_heights.max() - cone_heights.min() >= 4  # pointed top
    assert cube_heights.max() - cube_heights.min() <= 2  # flat top


def test_point_cloud_rings_hit_floor_and_wall():
    w = empty_world()
    pts = w.point_cloud("r")
    assert pts.dtype == np.float32 and pts.shape[1] == 3
    assert np.isclose(pts[:, 2], 0.0).any()  # downward rings reach the floor
    assert (pts[:, 2] > w.config.lidar_height_m).any()  # upward rings hit the 1 m wall
    horizontal = pts[np.isclose(pts[:, 2], w.config.lidar_height_m)]
    ahead = horizontal[np.isclose(horizontal[:, 1], 0.0, atol=1e-6) & (horizontal[:, 0] > 0)]
    assert ahead[:, 0] == pytest.approx(4.0)


def test_battery_drains_with_motion_and_charges_at_dock():
    w = empty_world()
    w.set_twist("r", 0.5, 0, 0)
    for _ in range(50):
        w.step(0.1)
    moving = w.robot("r").battery
    assert moving < 1.0
    rb = w.robot("r")
    rb.x, rb.y = w.dock_xy
    w.set_twist("r", 0, 0, 0)
    rb.vx = 0.0
    for _ in range(20):
        w.step(0.1)
    assert w.robot("r").battery > moving


def test_docked_is_where_the_battery_charges():
    w = empty_world()
    rb = w.robot("r")
    assert not w.docked("r")
    rb.x, rb.y = w.dock_xy[0] + w.config.dock_radius_m - 0.01, w.dock_xy[1]
    assert w.docked("r")
    rb.battery = 0.5
    w.step(0.1)
    assert rb.battery > 0.5
    rb.x += 0.02  # just off the dock
    assert not w.docked("r")
    w.step(0.1)
    assert rb.battery < 0.5 + w.config.battery_charge_per_s * 0.1


def test_snapshot_restore():
    w = World(["r"], seed=2)
    snap = w.snapshot()
    before = w.state()
    w.set_twist("r", 0.8, 0.2, 0.5)
    for _ in range(10):
        w.step(0.1)
    w.restore(snap)
    assert w.state() == before


def test_state_reports_reached():
    w = empty_world()
    ball = w.object("blue ball")
    ball.x, ball.y = 0.2 + ball.size_m + REACHED_DISTANCE_M - 0.05, 0.0
    w.rebuild_solids()
    w.set_target("r", "blue ball", task="go to the blue ball")
    s = w.state()["robots"]["r"]
    assert s["reached"] and s["target"] == "blue ball" and s["task"] == "go to the blue ball"
