"""What the simulated world is made of: its tunables, objects and robots, and the distances that define
the task (reaching a target, the safety clearance, the dock). Plain data and point geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vla_monitoring.config import param

# A robot whose edge is this close to its target's edge has reached it. The one definition used by
# the expert, the evaluation, `sim/state` and the tests.
#
# It agrees with the safety envelope the robot is deployed behind: vla_safety's default
# (SafetyConfig.collision_threshold, config/safety.yaml) keeps the footprint edge at least 0.5 m from
# every obstacle point, targets included, so no robot can ever get nearer an object than 0.5 m. "At
# the object" therefore means inside 0.6 m: the bubble plus 0.1 m of slack. The expert stops at the
# bubble itself (REACHED_DISTANCE_M - 0.1) and keeps that clearance from everything else too.
REACHED_DISTANCE_M = 0.6
# The clearance the deployed safety layer enforces (footprint edge to any obstacle point, metres);
# the root test test/unit/test_sim_safety_agreement.py holds it equal to vla_safety's default.
SAFETY_CLEARANCE_M = REACHED_DISTANCE_M - 0.1

TARGET_NAMES: tuple[str, ...] = ("red cube", "blue ball", "green cylinder", "yellow cone")

WALL_HEIGHT_M = 1.0
ROBOT_HEIGHT_M = 0.35


class WorldError(ValueError):
    """A request the world cannot honour (unknown robot, unknown target, bad seed or time step)."""


@dataclass
class WorldConfig:
    """Every tunable of the world; sim_node fills it from its `~world/...` params."""

    room_size_m: float = param(8.0, lo=4.0, hi=50.0, help="side of the square walled room [m]")
    robot_radius_m: float = param(0.2, lo=0.05, hi=0.5, help="round holonomic base [m]")
    max_linear_x_mps: float = param(0.8, lo=0.01, hi=10.0, help="commands are clamped to this [m/s]")
    max_linear_y_mps: float = param(0.4, lo=0.01, hi=10.0, help="commands are clamped to this [m/s]")
    max_angular_z_rps: float = param(1.0, lo=0.01, hi=10.0, help="commands are clamped to this [rad/s]")
    max_linear_accel_mps2: float = param(2.0, lo=0.01, hi=100.0, help="commanded -> actual velocity [m/s^2]")
    max_angular_accel_rps2: float = param(4.0, lo=0.01, hi=100.0, help="commanded -> actual velocity [rad/s^2]")
    num_obstacles: int = param(3, lo=0, hi=10, help="grey obstacles besides the four targets")
    camera_width: int = param(96, lo=16, hi=640, help="image width [px]")
    camera_height: int = param(96, lo=16, hi=640, help="image height [px]")
    camera_fov_deg: float = param(90.0, lo=30.0, hi=150.0, help="horizontal field of view [deg]")
    camera_height_m: float = param(0.3, lo=0.01, hi=2.0, help="camera above the floor [m]")
    lidar_beams: int = param(360, lo=8, hi=4096, help="beams of scan over 360 deg")
    lidar_range_min_m: float = param(0.05, lo=0.0, hi=1.0, help="nearer returns are reported as +inf [m]")
    lidar_range_max_m: float = param(8.0, lo=1.0, hi=100.0, help="farther returns are reported as +inf [m]")
    cloud_rings_deg: list[float] = param([-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0], items=float, lo=-60.0,
                                         hi=60.0, min_length=1, max_length=64,
                                         help="elevations of the point cloud rings [deg]")
    cloud_beams: int = param(180, lo=8, hi=4096, help="azimuth samples per ring")
    lidar_height_m: float = param(0.25, lo=0.01, hi=2.0, help="scan and cloud origin above the floor [m]")
    battery_drain_idle_per_s: float = param(1.0e-4, lo=0.0, hi=1.0, help="battery fraction lost per second")
    battery_drain_motion_per_m: float = param(2.0e-3, lo=0.0, hi=1.0, help="battery fraction lost per metre")
    battery_charge_per_s: float = param(0.02, lo=1e-6, hi=1.0, help="battery fraction gained per second docked")
    dock_radius_m: float = param(0.5, lo=0.01, hi=5.0, help="the dock is a disc this wide near (-x, -y)")


@dataclass
class WorldObject:
    """A static object on the floor: a box (square footprint) or a round one."""

    name: str
    shape: str  # "box", "ball", "cylinder", "cone"
    x: float
    y: float
    size_m: float  # half side for boxes, radius for round objects
    height_m: float
    rgb: tuple[int, int, int]
    is_target: bool

    def to_dict(self) -> dict:
        return {
            "name": self.name, "shape": self.shape, "x": round(self.x, 4), "y": round(self.y, 4),
            "size": round(self.size_m, 4), "height": round(self.height_m, 4), "target": self.is_target,
        }


@dataclass
class Robot:
    """One robot's state. Velocities are in the body frame (x forward, y left)."""

    robot_id: str
    x: float
    y: float
    yaw: float
    vx: float = 0.0
    vy: float = 0.0
    wz: float = 0.0
    cmd: np.ndarray = field(default_factory=lambda: np.zeros(3))
    collisions: int = 0
    in_contact: bool = False
    battery: float = 1.0
    odom_distance_m: float = 0.0
    task: str | None = None
    target: str | None = None
    rejected_twists: int = 0


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Wraps an angle to [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


def edge_distance(obj: WorldObject, x: float, y: float) -> float:
    """Distance from a point to an object's surface (negative inside)."""
    if obj.shape == "box":
        dx, dy = abs(x - obj.x) - obj.size_m, abs(y - obj.y) - obj.size_m
        outside = math.hypot(max(dx, 0.0), max(dy, 0.0))
        return outside + min(max(dx, dy), 0.0)
    return math.hypot(x - obj.x, y - obj.y) - obj.size_m


def on_dock(x: float, y: float, dock_xy: tuple[float, float], dock_radius_m: float) -> bool:
    """True when a robot centred at (x, y) charges: the one dock test of physics and the battery topic."""
    return math.hypot(x - dock_xy[0], y - dock_xy[1]) < dock_radius_m
