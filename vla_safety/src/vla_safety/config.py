"""Typed, validated configuration of the safety node (mirrored by config/safety.yaml)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

SENSORS: tuple[str, ...] = ("scan", "velodyne_points", "odom")


class ConfigError(ValueError):
    """A parameter outside its allowed range; the message names the parameter."""


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"~{name} must be a number in [{lo}, {hi}], got {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"~{name} must be in [{lo}, {hi}], got {value!r}")


def _check_pose(name: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ConfigError(f"~{name} must be a list [x, y, z, yaw] of 4 numbers, got {value!r}")
    for v in value:
        _check_range(name, v, -10.0, 10.0)


def _check_str_list(name: str, value: Any, allowed: tuple[str, ...] | None = None) -> None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"~{name} must be a list of non-empty strings, got {value!r}")
    if allowed is not None:
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise ConfigError(f"~{name} has unknown entries {unknown}; allowed: {list(allowed)}")


@dataclass
class SafetyConfig:
    """Every parameter of safety_node; units are SI (m, s, rad, Hz) unless the name says otherwise."""

    robot_id: str = "robot_1"
    base_frame: str = "base_link"
    output_rate: float = 20.0
    cmd_timeout: float = 0.5
    sensor_timeout: float = 0.5
    required_sensors: list[str] = field(default_factory=lambda: ["scan", "velodyne_points"])
    max_linear_x: float = 1.0
    max_linear_y: float = 0.5
    max_linear_z: float = 0.5
    max_angular_x: float = 0.5
    max_angular_y: float = 0.5
    max_angular_z: float = 1.0
    max_linear_magnitude: float = 2.0
    max_angular_magnitude: float = 2.0
    max_linear_accel: float = 2.0
    max_angular_accel: float = 4.0
    collision_threshold: float = 0.5
    robot_radius: float = 0.2
    prediction_horizon: float = 1.5
    prediction_steps: int = 30
    scan_pose: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.25, 0.0])
    cloud_pose: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    obstacle_min_height: float = 0.05
    obstacle_max_height: float = 2.0
    voxel_size: float = 0.05
    max_obstacle_points: int = 5000
    trigger_hold: float = 1.0
    estop_republish_period: float = 1.0

    @property
    def axis_limits(self) -> tuple[float, ...]:
        return (self.max_linear_x, self.max_linear_y, self.max_linear_z,
                self.max_angular_x, self.max_angular_y, self.max_angular_z)

    def validate(self) -> SafetyConfig:
        """Raises ConfigError naming the first parameter outside its allowed range."""
        for name in ("robot_id", "base_frame"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"~{name} must be a non-empty string")
        _check_range("output_rate", self.output_rate, 1.0, 200.0)
        _check_range("cmd_timeout", self.cmd_timeout, 0.01, 10.0)
        _check_range("sensor_timeout", self.sensor_timeout, 0.01, 10.0)
        _check_str_list("required_sensors", self.required_sensors, SENSORS)
        for name in ("max_linear_x", "max_linear_y", "max_linear_z", "max_angular_x", "max_angular_y",
                     "max_angular_z"):
            _check_range(name, getattr(self, name), 0.0, 10.0)
        for name in ("max_linear_magnitude", "max_angular_magnitude"):
            _check_range(name, getattr(self, name), 0.01, 20.0)
        for name in ("max_linear_accel", "max_angular_accel"):
            _check_range(name, getattr(self, name), 0.01, 100.0)
        _check_range("collision_threshold", self.collision_threshold, 0.0, 5.0)
        _check_range("robot_radius", self.robot_radius, 0.01, 3.0)
        _check_range("prediction_horizon", self.prediction_horizon, 0.1, 10.0)
        if isinstance(self.prediction_steps, bool) or not isinstance(self.prediction_steps, int):
            raise ConfigError(f"~prediction_steps must be an integer in [2, 200], got {self.prediction_steps!r}")
        _check_range("prediction_steps", self.prediction_steps, 2, 200)
        _check_pose("scan_pose", self.scan_pose)
        _check_pose("cloud_pose", self.cloud_pose)
        _check_range("obstacle_min_height", self.obstacle_min_height, -5.0, 5.0)
        _check_range("obstacle_max_height", self.obstacle_max_height, self.obstacle_min_height, 10.0)
        _check_range("voxel_size", self.voxel_size, 0.005, 1.0)
        if isinstance(self.max_obstacle_points, bool) or not isinstance(self.max_obstacle_points, int):
            raise ConfigError(f"~max_obstacle_points must be an integer, got {self.max_obstacle_points!r}")
        _check_range("max_obstacle_points", self.max_obstacle_points, 100, 1_000_000)
        _check_range("trigger_hold", self.trigger_hold, 0.0, 60.0)
        _check_range("estop_republish_period", self.estop_republish_period, 0.1, 60.0)
        return self


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """Builds and validates a config dataclass from a mapping of parameter values (missing = default).

    Integers are accepted where floats are expected (YAML writes 1 for 1.0); unknown keys are ignored
    by the caller's choice of which names to look up.
    """
    kwargs = {}
    defaults = cls()
    for f in fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        default = getattr(defaults, f.name)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, list) and isinstance(value, tuple):
            value = list(value)
        kwargs[f.name] = value
    return cls(**kwargs).validate()
