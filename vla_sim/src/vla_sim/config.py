"""sim_node's typed configuration, on the suite's config idiom (vla_monitoring.config), no ROS.

config/sim.yaml mirrors `SimNodeConfig` field by field; its `world` mapping mirrors `WorldConfig`
(`~world/room_size_m`). These dataclass defaults are the defaults: tests set only what they need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vla_monitoring.config import ConfigError, param
from vla_sim.scene import WorldConfig
from vla_sim.world import MAX_ROBOTS

ROBOT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# Streams published on a schedule in simulated time, with the field that sets each one's rate.
STREAM_RATES = {"camera": "camera_rate_hz", "scan": "lidar_rate_hz", "cloud": "cloud_rate_hz",
                "odom": "odom_rate_hz", "battery": "battery_rate_hz", "state": "state_rate_hz"}


@dataclass
class SimNodeConfig:
    robots: list[str] = param(["robot_1"], items=str, nonempty=True, min_length=1, max_length=MAX_ROBOTS,
                              help="robot ids; one robot: topics in the root namespace, several: under <id>/")
    seed: int = param(0, lo=0, hi=2**63 - 1, help="layout seed of the world; sim/reset draws a new one")
    real_time_factor: float = param(1.0, lo=0.1, hi=10.0,
                                    help="simulated seconds per wall second (0.5: half speed); /clock follows it")
    physics_rate_hz: float = param(100.0, lo=1.0, hi=1000.0, help="physics steps per simulated second")
    camera_rate_hz: float = param(30.0, lo=0.1, hi=1000.0, help="camera/rgb/image_raw, per simulated second")
    lidar_rate_hz: float = param(10.0, lo=0.1, hi=1000.0, help="scan")
    cloud_rate_hz: float = param(10.0, lo=0.1, hi=1000.0, help="velodyne_points")
    odom_rate_hz: float = param(50.0, lo=0.1, hi=1000.0, help="odom and its TF")
    battery_rate_hz: float = param(1.0, lo=0.1, hi=1000.0, help="battery_state")
    state_rate_hz: float = param(10.0, lo=0.1, hi=1000.0, help="sim/state")
    cmd_timeout_s: float = param(0.5, lo=0.05, hi=60.0,
                                 help="a robot with no cmd_vel for this long (simulated) is stopped [s]")
    realtime_warn_factor: float = param(0.9, lo=0.1, hi=1.0,
                                        help="diagnostics warn below this fraction of real_time_factor")
    world: WorldConfig = param(WorldConfig(), help="the world's tunables (vla_sim.scene.WorldConfig)")

    def check(self) -> None:
        """Robot ids usable as namespaces and frame prefixes; no stream faster than physics."""
        for rid in self.robots:
            if not ROBOT_ID.match(rid):
                raise ConfigError(f"~robots: robot id {rid!r} must match {ROBOT_ID.pattern}")
        if len(set(self.robots)) != len(self.robots):
            raise ConfigError(f"~robots: robot ids must be unique, got {self.robots}")
        for name in STREAM_RATES.values():
            if getattr(self, name) > self.physics_rate_hz:
                raise ConfigError(f"~{name} must not exceed ~physics_rate_hz ({self.physics_rate_hz:g}), "
                                  f"got {getattr(self, name):g}")
