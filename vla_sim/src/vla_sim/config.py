"""The simulator node's typed configuration and its single validation function (no ROS).

config/sim.yaml mirrors `SimNodeConfig` field by field; the `world` mapping mirrors `WorldConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from vla_sim.world import WorldConfig, WorldError

_ROBOT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class ConfigError(ValueError):
    """A parameter outside its allowed range; `param` names it as the node sees it (`~name`)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"~{param}: {message}")
        self.param = param


@dataclass
class SimNodeConfig:
    robots: list[str] = field(default_factory=lambda: ["robot_1"])
    seed: int = 0
    physics_rate_hz: float = 100.0
    camera_rate_hz: float = 30.0
    lidar_rate_hz: float = 10.0
    cloud_rate_hz: float = 10.0
    odom_rate_hz: float = 50.0
    battery_rate_hz: float = 1.0
    state_rate_hz: float = 10.0
    cmd_timeout_s: float = 0.5
    realtime_warn_factor: float = 0.9
    world: WorldConfig = field(default_factory=WorldConfig)


_RATES = ("physics_rate_hz", "camera_rate_hz", "lidar_rate_hz", "cloud_rate_hz", "odom_rate_hz",
          "battery_rate_hz", "state_rate_hz")


def build_config(params: dict[str, Any]) -> SimNodeConfig:
    """Builds and validates the config from the node's private parameters; raises ConfigError."""
    cfg = SimNodeConfig()
    known = {f.name for f in dataclasses.fields(SimNodeConfig)}
    for name, value in params.items():
        if name not in known:
            continue  # launch files may set unrelated private params
        if name == "world":
            cfg.world = _build_world(value)
        else:
            setattr(cfg, name, value)
    robots = cfg.robots
    if isinstance(robots, str):
        robots = [robots]
    if not isinstance(robots, list) or not 1 <= len(robots) <= 16:
        raise ConfigError("robots", f"must be a list of 1..16 robot ids, got {cfg.robots!r}")
    for rid in robots:
        if not isinstance(rid, str) or not _ROBOT_ID.match(rid):
            raise ConfigError("robots", f"robot id {rid!r} must match {_ROBOT_ID.pattern}")
    if len(set(robots)) != len(robots):
        raise ConfigError("robots", f"robot ids must be unique, got {robots}")
    cfg.robots = list(robots)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed < 2**63:
        raise ConfigError("seed", f"must be an integer in [0, 2^63), got {cfg.seed!r}")
    for name in _RATES:
        value = _number(name, getattr(cfg, name))
        if not 0.1 <= value <= 1000.0:
            raise ConfigError(name, f"must be in [0.1, 1000] Hz, got {value}")
        setattr(cfg, name, value)
    for name in ("camera_rate_hz", "lidar_rate_hz", "cloud_rate_hz", "odom_rate_hz", "state_rate_hz"):
        if getattr(cfg, name) > cfg.physics_rate_hz:
            raise ConfigError(name, f"must not exceed physics_rate_hz ({cfg.physics_rate_hz})")
    cfg.cmd_timeout_s = _number("cmd_timeout_s", cfg.cmd_timeout_s)
    if not 0.05 <= cfg.cmd_timeout_s <= 60.0:
        raise ConfigError("cmd_timeout_s", f"must be in [0.05, 60] s, got {cfg.cmd_timeout_s}")
    cfg.realtime_warn_factor = _number("realtime_warn_factor", cfg.realtime_warn_factor)
    if not 0.1 <= cfg.realtime_warn_factor <= 1.0:
        raise ConfigError("realtime_warn_factor", f"must be in [0.1, 1], got {cfg.realtime_warn_factor}")
    return cfg


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}")
    return float(value)


def _build_world(values: Any) -> WorldConfig:
    if not isinstance(values, dict):
        raise ConfigError("world", f"must be a mapping of world parameters, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(WorldConfig)}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name not in fields:
            raise ConfigError(f"world/{name}", f"unknown world parameter; known: {', '.join(sorted(fields))}")
        default = getattr(WorldConfig(), name)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value):
                raise ConfigError(f"world/{name}", f"must be a list of numbers, got {value!r}")
            value = tuple(float(v) for v in value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"world/{name}", f"must be an integer, got {value!r}")
        else:
            value = _number(f"world/{name}", value)
        kwargs[name] = value
    world = WorldConfig(**kwargs)
    try:
        world.validate()
    except WorldError as exc:
        param = str(exc).split(" ", 1)[0]
        raise ConfigError(f"world/{param}", str(exc)) from None
    return world
