"""Builds ROS messages whose every field holds a distinct, non-default value.

Shared by the unit test (serialisation round trip) and the rostest (through a real master), so
that both check the same thing: every field of every vla_msgs type arrives intact.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator

import genpy
import roslib.message

INT_TYPES = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "char", "byte"}
FLOAT_TYPES = {"float32", "float64"}
MSG_NAMES = [
    "Action", "Alert", "ComponentHealth", "HealthStatus", "InferenceStats", "ResourceUsage",
    "RobotStatus", "SafetyStatus", "Task", "TaskAssignment", "UpdateStatus",
]
SRV_NAMES = ["CancelTask", "ListTasks", "ResetSim", "RunMaintenance", "ScheduleTask", "SetMode", "SubmitTask"]


def _base_type(slot_type: str) -> tuple[str, bool]:
    is_array = slot_type.endswith("]")
    return (slot_type[: slot_type.index("[")] if is_array else slot_type), is_array


def _scalar(base: str, counter: Iterator[int]):
    n = next(counter)
    if base in INT_TYPES:
        return n % 100 + 1
    if base in FLOAT_TYPES:
        return n + 0.5  # exactly representable in float32
    if base == "bool":
        return True
    if base == "string":
        return f"value-{n}"
    if base == "time":
        return genpy.Time(1_700_000_000 + n, 1000 * n)
    if base == "duration":
        return genpy.Duration(n, 1000 * n)
    return fill(roslib.message.get_message_class(base)(), counter)


def fill(msg: genpy.Message, counter: Iterator[int] | None = None) -> genpy.Message:
    """Sets every field of msg (recursively); arrays get two elements."""
    counter = counter or itertools.count(1)
    for name, slot_type in zip(msg.__slots__, msg._slot_types, strict=True):
        base, is_array = _base_type(slot_type)
        if is_array:
            setattr(msg, name, [_scalar(base, counter) for _ in range(2)])
        else:
            setattr(msg, name, _scalar(base, counter))
    return msg


def message_classes() -> dict[str, type]:
    module = importlib.import_module("vla_msgs.msg")
    return {name: getattr(module, name) for name in MSG_NAMES}


def service_classes() -> dict[str, type]:
    module = importlib.import_module("vla_msgs.srv")
    return {name: getattr(module, name) for name in SRV_NAMES}
