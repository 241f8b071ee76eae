"""SafetyConfig on the suite's config idiom: every range and rule names its parameter; the crop radius."""

import math

import numpy as np
import pytest

from vla_monitoring.config import ConfigError, build_config, defaults
from vla_safety.collision import CollisionChecker
from vla_safety.config import SafetyConfig
from vla_safety.supervisor import SafetySupervisor


def test_the_defaults_are_a_valid_config():
    assert build_config(SafetyConfig, {}) == SafetyConfig()
    assert build_config(SafetyConfig, defaults(SafetyConfig)) == SafetyConfig()


@pytest.mark.parametrize("field,value", [
    ("output_rate", 0.0), ("cmd_timeout", -1.0), ("required_sensors", ["lidar"]), ("max_linear_x", -1.0),
    ("collision_threshold", float("inf")), ("prediction_steps", 2.5), ("scan_pose", [0, 0, 0]),
    ("cloud_pose", [0, 0, 0, 11.0]), ("obstacle_max_height", -10.0), ("robot_id", ""), ("trigger_hold", "1"),
    ("max_obstacle_points", 10), ("voxel_size", 0.0),
])
def test_bad_values_name_the_parameter(field, value):
    with pytest.raises(ConfigError, match=f"~{field}"):
        build_config(SafetyConfig, {field: value})


def test_unknown_parameters_are_refused():
    with pytest.raises(ConfigError, match="~colision_threshold"):
        build_config(SafetyConfig, {"colision_threshold": 0.4})


def test_obstacle_heights_must_not_cross():
    with pytest.raises(ConfigError, match=r"~obstacle_max_height must be >= ~obstacle_min_height \(0.5\)"):
        build_config(SafetyConfig, {"obstacle_min_height": 0.5, "obstacle_max_height": 0.3})
    assert build_config(SafetyConfig, {"obstacle_min_height": 0.5, "obstacle_max_height": 0.5})


def test_ints_are_accepted_for_floats():
    cfg = build_config(SafetyConfig, {"output_rate": 10, "scan_pose": [0, 0, 1, 0]})
    assert cfg.output_rate == 10.0 and isinstance(cfg.output_rate, float)
    assert cfg.scan_pose == [0.0, 0.0, 1.0, 0.0]


def test_crop_radius_is_the_reach_of_the_fastest_allowed_command():
    cfg = build_config(SafetyConfig, {"max_linear_x": 0.8, "max_linear_y": 0.6, "prediction_horizon": 2.0,
                                      "robot_radius": 0.3, "collision_threshold": 0.4})
    assert cfg.crop_radius == pytest.approx(1.0 * 2.0 + 0.3 + 0.4)


@pytest.mark.parametrize("heading_deg", range(0, 360, 15))
def test_points_beyond_the_crop_radius_cannot_limit_any_command(heading_deg):
    """Dropping them on arrival changes no decision: the fastest clamped twist, in any direction and on
    any arc, is never limited by a ring of points just outside the radius; a point just inside can limit."""
    cfg = SafetyConfig()
    checker = CollisionChecker(cfg.robot_radius, cfg.collision_threshold, cfg.prediction_horizon, 200)
    a = math.radians(heading_deg)
    speed = math.hypot(cfg.max_linear_x, cfg.max_linear_y)
    ring_a = np.linspace(0.0, 2 * math.pi, 720, endpoint=False)
    ring = np.stack([np.cos(ring_a), np.sin(ring_a)], 1) * (cfg.crop_radius + 1e-6)
    for wz in (0.0, 0.3, -cfg.max_angular_z):
        assert checker.check((speed * math.cos(a), speed * math.sin(a), wz), ring).scale == 1.0
    inside = np.array([[math.cos(a), math.sin(a)]]) * (cfg.crop_radius - 0.01)
    assert checker.check((speed * math.cos(a), speed * math.sin(a), 0.0), inside).scale < 1.0


def test_obstacle_points_are_cropped_to_the_radius_in_the_base_frame():
    cfg = build_config(SafetyConfig, {"cloud_pose": [0.5, 0.0, 0.0, 0.0]})
    sup = SafetySupervisor(cfg)
    r = cfg.crop_radius
    # the cloud's frame is 0.5 m ahead of the base: its x = r - 0.6 is r - 0.1 from the base, kept
    cloud = np.array([[r - 0.6, 0.0, 0.5], [r - 0.4, 0.0, 0.5], [r - 0.6, 0.0, 0.0]])
    np.testing.assert_allclose(sup.obstacle_points("velodyne_points", cloud), [[r - 0.1, 0.0]])
    scan = np.array([[0.0, r - 0.05], [0.0, r + 0.05]])
    np.testing.assert_allclose(sup.obstacle_points("scan", scan), [[0.0, r - 0.05]])
    with pytest.raises(ValueError, match="odom"):
        sup.obstacle_points("odom", scan)
