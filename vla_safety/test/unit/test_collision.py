import math

import numpy as np
import pytest

from vla_safety.collision import (
    BadSensorDataError,
    Choice,
    CollisionChecker,
    predict_path,
    reduce_points,
    scan_points,
    to_base_frame,
)

R, THR, T, K = 0.2, 0.5, 1.5, 30


def wall_at_x(x: float, half_width: float = 3.0, step: float = 0.02) -> np.ndarray:
    ys = np.arange(-half_width, half_width + 1e-9, step)
    return np.stack([np.full_like(ys, x), ys], axis=1)


def min_gap_along(twist, scale, points):
    path = predict_path(tuple(scale * v for v in twist), T, 300)
    d = np.sqrt(((path[:, None, :] - points[None, :, :]) ** 2).sum(-1)).min()
    return d - R


@pytest.fixture
def checker():
    return CollisionChecker(R, THR, T, K)


def test_free_space_keeps_full_speed(checker):
    assert checker.check((1.0, 0.0, 0.0), wall_at_x(5.0)).scale == 1.0


@pytest.mark.parametrize("wall_x", [1.0, 1.5, 2.0])
def test_scaling_keeps_the_threshold_straight_ahead(checker, wall_x):
    pts = wall_at_x(wall_x)
    res = checker.check((1.0, 0.0, 0.0), pts)
    assert 0.0 < res.scale < 1.0
    assert min_gap_along((1.0, 0.0, 0.0), res.scale, pts) >= THR - 1e-6
    # and it is not needlessly timid: within one prediction step of the free distance
    free = wall_x - R - THR
    assert res.scale * T >= free - T / K - 1e-9
    assert res.limiting_point[0] == pytest.approx(wall_x)


@pytest.mark.parametrize("twist", [(1.0, 0.3, 0.8), (0.8, -0.5, -1.0), (0.0, 0.5, 0.5), (-0.7, 0.2, 0.3)])
def test_scaling_keeps_the_threshold_on_arcs(checker, twist):
    rng = np.random.default_rng(3)
    pts = rng.uniform(-2.5, 2.5, size=(400, 2))
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) > R + THR + 0.05]
    res = checker.check(twist, pts)
    assert min_gap_along(twist, res.scale, pts) >= THR - 0.01


def test_nothing_safe_gives_zero(checker):
    assert checker.check((1.0, 0.0, 0.0), wall_at_x(0.7)).scale == 0.0


def test_turning_in_place_is_always_allowed(checker):
    res = checker.check((0.0, 0.0, 1.0), wall_at_x(0.3))
    assert res.scale == 1.0
    assert res.nearest_clearance == pytest.approx(0.1)


def test_backing_away_from_a_point_inside_the_threshold_is_allowed(checker):
    pts = wall_at_x(0.5)
    assert checker.check((-0.5, 0.0, 0.0), pts).scale == 1.0
    assert checker.check((0.3, 0.0, 0.0), pts).scale == 0.0


def test_scan_points_and_validation():
    pts = scan_points(np.array([1.0, np.inf, 2.0, 0.01]), 0.0, math.pi / 2, 0.05, 10.0)
    np.testing.assert_allclose(pts, [[1.0, 0.0], [-2.0, 0.0]], atol=1e-12)
    with pytest.raises(BadSensorDataError, match="angle_increment"):
        scan_points(np.ones(360), 0.0, 0.1, 0.05, 10.0)  # 36 rad of beams: fields disagree
    with pytest.raises(BadSensorDataError, match="no ranges"):
        scan_points(np.array([]), 0.0, 0.1, 0.05, 10.0)
    with pytest.raises(BadSensorDataError, match="not finite"):
        scan_points(np.ones(4), math.nan, 0.1, 0.05, 10.0)


def test_to_base_frame_applies_the_sensor_pose():
    out = to_base_frame(np.array([[1.0, 0.0, 0.0]]), (0.1, 0.0, 0.3, math.pi / 2))
    np.testing.assert_allclose(out, [[0.1, 1.0, 0.3]], atol=1e-12)


def test_reduce_points_crops_filters_height_and_thins():
    pts = np.array([[1.0, 0.0, 0.5], [1.01, 0.01, 0.5], [1.0, 0.0, 0.0], [9.0, 0.0, 0.5], [np.nan, 0, 0.5]])
    out = reduce_points(pts, (0.0, 0.0, 0.0, 0.0), 3.0, 0.05, 100, (0.05, 2.0))
    assert out.shape == (1, 2)
    # a sensor mounted 0.5 m ahead, turned left: its (1, 0) is the base's (0.5, 1)
    out = reduce_points(np.array([[1.0, 0.0, 0.3]]), (0.5, 0.0, 0.2, math.pi / 2), 3.0, 0.05, 100, (0.4, 2.0))
    np.testing.assert_allclose(out, [[0.5, 1.0]], atol=1e-12)
    assert reduce_points(np.array([[1.0, 0.0, 0.1]]), (0, 0, 0.2, 0), 3.0, 0.05, 100, (0.4, 2.0)).shape == (0, 2)


def wall_at_y(y: float, half_length: float = 4.0, step: float = 0.02) -> np.ndarray:
    xs = np.arange(-half_length, half_length + 1e-9, step)
    return np.stack([xs, np.full_like(xs, y)], axis=1)


def executed(choice):
    return tuple(choice.scale * v for v in choice.twist)


def never_closer(twist, points, tol=0.01):
    """No point ends up closer than the threshold, or than it already was if it is inside it."""
    path = predict_path(twist, T, 300)
    d = np.sqrt(((path[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    return bool(np.all(d.min(axis=0) >= np.minimum(R + THR, d[0]) - tol))


def test_free_request_is_taken_as_is(checker):
    choice = checker.safest((1.0, 0.3, 0.2), wall_at_x(5.0))
    assert choice.kind is Choice.REQUEST and choice.scale == 1.0 and choice.twist == (1.0, 0.3, 0.2)


def test_beside_a_wall_the_approach_component_is_removed(checker):
    pts = wall_at_y(0.8)  # 0.6 m from the footprint edge, on the left
    request = (0.8, 0.4, 0.0)
    assert checker.check(request, pts).scale < 0.2  # scaling alone would nearly stop the robot
    choice = checker.safest(request, pts)
    assert choice.kind is Choice.SLIDE and choice.scale == 1.0
    vx, vy, wz = executed(choice)
    assert vx == pytest.approx(0.8, abs=0.05) and abs(vy) < 0.05 and wz == 0.0
    assert choice.limiting_point[1] == pytest.approx(0.8)
    assert never_closer(executed(choice), pts)


def test_moving_away_from_a_point_inside_the_threshold_stays_allowed(checker):
    pts = wall_at_y(0.6)  # 0.4 m: inside the threshold
    assert checker.safest((0.0, -0.4, 0.0), pts).kind is Choice.REQUEST
    choice = checker.safest((0.5, 0.3, 0.0), pts)
    assert never_closer(executed(choice), pts)


def test_head_on_into_a_wall_still_stops(checker):
    choice = checker.safest((1.0, 0.0, 0.0), wall_at_x(0.7))
    assert choice.kind is Choice.STOP and choice.scale == 0.0
    choice = checker.safest((1.0, 0.0, 0.6), wall_at_x(0.7))
    assert choice.kind is Choice.TURN and executed(choice) == (0.0, 0.0, 0.6)


def test_a_corner_ahead_left_leaves_only_safe_motion(checker):
    pts = np.concatenate([wall_at_y(0.75), wall_at_x(0.75)])
    choice = checker.safest((0.8, 0.4, 0.0), pts)
    assert choice.scale < 0.1 or choice.kind is Choice.SLIDE
    assert never_closer(executed(choice), pts)


@pytest.mark.parametrize("seed", range(6))
def test_every_chosen_command_keeps_its_distance(checker, seed):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-2.0, 2.0, size=(300, 2))
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) > R + 0.1]  # some inside the threshold, none in the footprint
    for _ in range(20):
        request = (rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), rng.uniform(-1, 1))
        choice = checker.safest(request, pts)
        assert never_closer(executed(choice), pts), (request, choice)
