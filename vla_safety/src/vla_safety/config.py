"""SafetyConfig: every parameter of safety_node with its default and allowed range (config/safety.yaml mirrors it).

Built by vla_monitoring's one config idiom: `build_config(SafetyConfig, values)` in a test,
`vla_monitoring.ros.params.load_config(SafetyConfig)` in the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vla_monitoring.config import ConfigError, param
from vla_msgs import names

SENSORS: tuple[str, ...] = (names.SCAN, names.POINTS, names.ODOM)


@dataclass
class SafetyConfig:
    """Every parameter of safety_node; units are SI (m, s, rad, Hz) unless the name says otherwise."""

    robot_id: str = param("robot_1", nonempty=True, help="diagnostics hardware_id and vla_logs robot_id")
    base_frame: str = param("base_link", nonempty=True, help="frame of obstacle points and of status positions")
    output_rate: float = param(20.0, lo=1.0, hi=200.0,
                               help="least cmd_vel rate [Hz]: zeros while stopped; commands are forwarded on arrival")
    cmd_timeout: float = param(0.5, lo=0.01, hi=10.0, help="no cmd_vel_vla for this long -> zero output [s]")
    sensor_timeout: float = param(0.5, lo=0.01, hi=10.0,
                                  help="a required sensor older than this -> stop; older stamps are dropped [s]")
    required_sensors: list[str] = param([names.SCAN, names.POINTS], items=str, choices=SENSORS,
                                        help="sensors whose silence stops the robot")
    max_linear_x: float = param(1.0, lo=0.0, hi=10.0, help="clamp [m/s]")
    max_linear_y: float = param(0.5, lo=0.0, hi=10.0, help="clamp [m/s]")
    max_linear_z: float = param(0.5, lo=0.0, hi=10.0, help="clamp [m/s]")
    max_angular_x: float = param(0.5, lo=0.0, hi=10.0, help="clamp [rad/s]")
    max_angular_y: float = param(0.5, lo=0.0, hi=10.0, help="clamp [rad/s]")
    max_angular_z: float = param(1.0, lo=0.0, hi=10.0, help="clamp [rad/s]")
    max_linear_magnitude: float = param(2.0, lo=0.01, hi=20.0, help="a larger linear request is refused [m/s]")
    max_angular_magnitude: float = param(2.0, lo=0.01, hi=20.0, help="a larger angular request is refused [rad/s]")
    max_linear_accel: float = param(2.0, lo=0.01, hi=100.0, help="speeding up, per axis [m/s^2]")
    max_angular_accel: float = param(4.0, lo=0.01, hi=100.0, help="speeding up, per axis [rad/s^2]")
    collision_threshold: float = param(0.5, lo=0.0, hi=5.0, help="least gap footprint edge -> obstacle point [m]")
    robot_radius: float = param(0.2, lo=0.01, hi=3.0, help="disc footprint radius [m]")
    prediction_horizon: float = param(1.5, lo=0.1, hi=10.0, help="how far ahead the path is predicted [s]")
    prediction_steps: int = param(30, lo=2, hi=200, help="samples along the horizon")
    scan_pose: list[float] = param([0.0, 0.0, 0.25, 0.0], items=float, length=4, lo=-10.0, hi=10.0,
                                   help="scan frame in the base frame: x, y, z [m], yaw [rad]")
    cloud_pose: list[float] = param([0.0, 0.0, 0.0, 0.0], items=float, length=4, lo=-10.0, hi=10.0,
                                    help="velodyne_points frame in the base frame: x, y, z [m], yaw [rad]")
    obstacle_min_height: float = param(0.05, lo=-5.0, hi=5.0, help="cloud points below this (base z) are floor [m]")
    obstacle_max_height: float = param(2.0, lo=-5.0, hi=10.0, help="cloud points above this are overhead [m]")
    voxel_size: float = param(0.05, lo=0.005, hi=1.0, help="obstacle points thinned to one per cell [m]")
    max_obstacle_points: int = param(5000, lo=100, hi=1_000_000, help="points kept per sensor, nearest first")
    trigger_hold: float = param(1.0, lo=0.0, hi=60.0,
                                help="a true on emergency_stop/trigger blocks reset this long [s]")
    estop_republish_period: float = param(1.0, lo=0.1, hi=60.0, help="emergency_stop is republished this often [s]")

    def check(self) -> None:
        """Rules between fields (each field's own range is checked by build_config)."""
        if self.obstacle_max_height < self.obstacle_min_height:
            raise ConfigError(f"~obstacle_max_height must be >= ~obstacle_min_height "
                              f"({self.obstacle_min_height:g}), got {self.obstacle_max_height:g}")

    @property
    def axis_limits(self) -> tuple[float, ...]:
        return (self.max_linear_x, self.max_linear_y, self.max_linear_z,
                self.max_angular_x, self.max_angular_y, self.max_angular_z)

    @property
    def output_period_s(self) -> float:
        return 1.0 / self.output_rate

    @property
    def crop_radius(self) -> float:
        """The farthest a base-frame point can be and still limit a command [m].

        The fastest planar motion the clamps allow, over the horizon, plus the keep-out (radius plus
        threshold): `CollisionChecker.check` ignores every point beyond its twist's reach, and no
        candidate it weighs (scaled, slide, turn) is faster than the clamped request. Points farther
        away are dropped when a message arrives, so they cost nothing per decision.
        """
        return (math.hypot(self.max_linear_x, self.max_linear_y) * self.prediction_horizon
                + self.robot_radius + self.collision_threshold)
