"""The JSON form of every JSON topic in INTERFACES.md: one builder and one validating parser each.

Every document is one JSON object with a numeric `timestamp`. Builders take the fields as keyword
arguments (the seed's names), turn numpy scalars and tuples into JSON values and non-finite numbers
into null, check the result against the form and write it without NaN. Parsers refuse anything a
builder would not write: not an object, a missing or mistyped field, a value outside its choices,
NaN or Infinity. Fields beyond the form's are kept: a newer sender may add detail.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vla_msgs import names
from vla_msgs.states import (
    MAINTENANCE_TASKS,
    AlertLevel,
    AlertState,
    HealthLevel,
    LogType,
    RobotState,
    SafetyState,
    TaskState,
    UpdateState,
)


class ProtocolError(ValueError):
    """A JSON document that does not have its topic's form; the message names the field."""


# Kinds of value a field may hold.
NUM = "number"
INT = "integer"
STR = "string"
BOOL = "boolean"
OBJ = "object"
LIST = "list"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    nullable: bool = False
    required: bool = True
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class JsonForm:
    topic: str
    fields: tuple[Field, ...]
    # For a form whose required fields depend on one field's value (vla_logs' `type`).
    variant_key: str = ""
    variants: Mapping[str, tuple[Field, ...]] = field(default_factory=dict)

    def build(self, timestamp: float, **values: Any) -> str:
        """The document's text; raises ProtocolError when the values do not fit the form."""
        doc = {"timestamp": timestamp, **{k: _jsonable(v) for k, v in values.items()}}
        self.check(doc)
        return json.dumps(doc, allow_nan=False)

    def parse(self, text: str | bytes) -> dict:
        """The document as a dict; raises ProtocolError saying what is wrong."""
        try:
            doc = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, TypeError) as exc:
            raise ProtocolError(f"{self.topic}: not JSON ({exc})") from exc
        self.check(doc)
        return doc

    def check(self, doc: Any) -> None:
        if not isinstance(doc, dict):
            raise ProtocolError(f"{self.topic}: expected a JSON object, got {type(doc).__name__}")
        _check_field(self.topic, doc, Field("timestamp", NUM))
        for f in self.fields:
            _check_field(self.topic, doc, f)
        if self.variant_key:
            for f in self.variants[doc[self.variant_key]]:
                _check_field(self.topic, doc, f)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, tuples and non-finite floats made into what JSON can say."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _is_kind(value: Any, kind: str) -> bool:
    if kind in (NUM, INT):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return math.isfinite(value) and (kind == NUM or isinstance(value, int))
    return isinstance(value, {STR: str, BOOL: bool, OBJ: dict, LIST: list}[kind])


def _check_field(topic: str, doc: dict, f: Field) -> None:
    if f.name not in doc:
        if f.required:
            raise ProtocolError(f"{topic}: missing field '{f.name}'")
        return
    value = doc[f.name]
    if value is None:
        if not f.nullable:
            raise ProtocolError(f"{topic}: field '{f.name}' is null")
        return
    if not _is_kind(value, f.kind):
        raise ProtocolError(f"{topic}: field '{f.name}' must be a finite {f.kind}, got {value!r:.80}")
    if f.choices and value not in f.choices:
        raise ProtocolError(f"{topic}: field '{f.name}' is {value!r:.40}; expected one of {', '.join(f.choices)}")


def _names(enum: type) -> tuple[str, ...]:
    return tuple(m.name for m in enum)


def _values(enum: type) -> tuple[str, ...]:
    return tuple(m.value for m in enum)


PERFORMANCE = JsonForm(names.PERFORMANCE, (
    Field("image_queue_size", INT), Field("lidar_queue_size", INT), Field("task_queue_size", INT),
    Field("current_task", STR, nullable=True), Field("last_action_time", NUM, nullable=True),
    Field("fps", NUM), Field("avg_inference_time_ms", NUM, nullable=True),
))

CLOUD_RESULT = JsonForm(names.CLOUD_RESULT, (
    Field("actions", LIST, nullable=True), Field("model_version", STR, nullable=True),
    Field("latency_ms", NUM, nullable=True), Field("error", STR, nullable=True, required=False),
))

SAFETY_STATUS = JsonForm(names.SAFETY_STATUS_JSON, (
    Field("status", STR, choices=_names(SafetyState)), Field("reason", STR), Field("emergency_stop", BOOL),
    Field("robot_id", STR, required=False),
))

HEALTH = JsonForm(names.HEALTH_JSON, (
    Field("components", OBJ), Field("overall_status", BOOL), Field("level", STR, choices=_values(HealthLevel)),
    Field("robot_id", STR, required=False),
))

RESOURCES = JsonForm(names.RESOURCES_JSON, (
    Field("cpu_percent", NUM), Field("memory_percent", NUM), Field("disk_percent", NUM, nullable=True),
    Field("gpu_percent", NUM, nullable=True), Field("gpu_memory_percent", NUM, nullable=True),
    Field("nodes", OBJ),
))

METRICS = JsonForm(names.METRICS_JSON, (
    Field("inference_count", INT), Field("error_count", INT), Field("action_count", INT),
    Field("uptime_seconds", NUM), Field("performance_summary", OBJ),
))

LOGS = JsonForm(names.LOGS_JSON, (Field("type", STR, choices=_values(LogType)),), variant_key="type", variants={
    LogType.INFERENCE.value: (Field("input_size", INT), Field("output_action", LIST),
                              Field("inference_time_ms", NUM), Field("sequence_number", INT)),
    LogType.ACTION.value: (Field("action", LIST), Field("task", STR, nullable=True)),
    LogType.ERROR.value: (Field("error_type", STR), Field("error_message", STR),
                          Field("context", OBJ, nullable=True)),
    LogType.LOG.value: (Field("level", STR), Field("node", STR), Field("message", STR)),
})

ALERTS = JsonForm(names.ALERTS_JSON, (
    Field("level", STR, choices=_names(AlertLevel)), Field("type", STR), Field("message", STR),
    Field("value", NUM, nullable=True),
    # alert_node's events: which alert (type, or type:subject), firing or resolved, for which robot
    Field("alert_id", STR, required=False), Field("state", STR, required=False, choices=_values(AlertState)),
    Field("robot_id", STR, required=False),
))

SIM_STATE = JsonForm(names.SIM_STATE, (Field("robots", OBJ), Field("objects", LIST)))

ROBOT_STATUS = JsonForm(names.ROBOT_STATUS_JSON, (
    Field("robot_id", STR), Field("status", STR, choices=_values(RobotState)), Field("position", LIST),
    Field("battery", NUM), Field("current_task_id", STR, nullable=True), Field("capabilities", LIST),
))

TASK_ASSIGNMENT = JsonForm(names.TASK_ASSIGNMENT, (
    Field("robot_id", STR), Field("task", OBJ), Field("assignment_time", NUM),
))

TASK_FEEDBACK = JsonForm(names.TASK_FEEDBACK, (
    Field("robot_id", STR), Field("task_id", STR), Field("state", STR, choices=_values(TaskState)),
    Field("reason", STR, required=False),
))

COORDINATION = JsonForm(names.COORDINATION, (
    Field("task", OBJ), Field("robots", LIST), Field("coordination_time", NUM), Field("action_sequence", LIST),
))

UPDATES = JsonForm(names.UPDATES, (
    Field("status", STR, choices=_values(UpdateState)), Field("version", STR, nullable=True),
))

MAINTENANCE = JsonForm(names.MAINTENANCE, (
    Field("task", STR, choices=MAINTENANCE_TASKS), Field("status", STR), Field("details", OBJ, nullable=True),
))

FORMS: dict[str, JsonForm] = {f.topic: f for f in (
    PERFORMANCE, CLOUD_RESULT, SAFETY_STATUS, HEALTH, RESOURCES, METRICS, LOGS, ALERTS, SIM_STATE,
    ROBOT_STATUS, TASK_ASSIGNMENT, TASK_FEEDBACK, COORDINATION, UPDATES, MAINTENANCE)}
