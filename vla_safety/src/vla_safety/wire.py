"""JSON forms of `vla_safety_status` and `vla_health` (the seed's field names plus details)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from vla_safety.limits import AXES


def _num(value: float | None, digits: int = 4) -> float | None:
    """A JSON-safe number: non-finite values become null (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def twist_dict(twist: np.ndarray) -> dict[str, float | None]:
    return {name: _num(v) for name, v in zip(AXES, twist, strict=True)}


def safety_status_json(decision: Any, timestamp: float, robot_id: str) -> str:
    """One `vla_safety_status` message: status, reason, and what was asked and commanded."""
    nearest = decision.nearest_obstacle
    limiting = decision.limiting_obstacle
    return json.dumps({
        "timestamp": timestamp,
        "robot_id": robot_id,
        "status": decision.status,
        "reason": decision.reason,
        "emergency_stop": decision.emergency_stop,
        "speed_scale": _num(decision.speed_scale),
        "nearest_obstacle_m": _num(decision.nearest_obstacle_m),
        "nearest_obstacle": None if nearest is None else [_num(nearest[0]), _num(nearest[1])],
        "limiting_obstacle": None if limiting is None else [_num(limiting[0]), _num(limiting[1])],
        "clamped_axes": list(decision.clamped_axes),
        "requested": twist_dict(decision.requested),
        "commanded": twist_dict(decision.commanded),
        "rejected_commands": decision.rejected_commands,
        "cmd_age_s": _num(decision.cmd_age_s, 3),
        "sensor_ages_s": {k: _num(v, 3) for k, v in decision.sensor_ages_s.items()},
    }, allow_nan=False)


def health_json(report: Any, timestamp: float, robot_id: str) -> str:
    """One `vla_health` message: `components` {name: bool}, `overall_status`, and per-component details."""
    return json.dumps({
        "timestamp": timestamp,
        "robot_id": robot_id,
        "overall_status": report.overall_status,
        "components": {c.name: c.healthy for c in report.components},
        "details": {c.name: {"healthy": c.healthy, "reason": c.reason, "age_s": _num(c.age_s, 3)}
                    for c in report.components},
    }, allow_nan=False)
