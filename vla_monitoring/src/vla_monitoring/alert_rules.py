"""Alert rules: what each rule watches, how it compares, and the rule file that holds them.

A rule reads one value (or one per subject) out of the newest document of one input, compares it
with a threshold and says how long the condition must hold, how severe it is, when it clears
(hysteresis) and how often it is repeated. Rules are checked with the config idiom: an error names
the rule and the field, as `~rules/<name>/<field>`. ROS-free; the engine is in `alerts.py`.

Paths into a document: `cpu_percent`, `performance_summary.avg_inference_time` (dotted keys),
`components.*` (one value per key of an object: the key is the alert's subject), `a / b` (a ratio;
unknown while b is 0) and `@age_s` (seconds since the input's newest document arrived).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vla_monitoring.config import ConfigError, build_config, param
from vla_msgs import json_forms, names
from vla_msgs.json_forms import JsonForm
from vla_msgs.states import AlertLevel

# ---- inputs ------------------------------------------------------------------------------------

# Derived input built by alert_node from vla/action, vla/inference_stats and task_command: while a task
# runs, `action_gap_s` is the time since the last action (or since the task started); null when idle.
ACTIVITY = "activity"


@dataclass(frozen=True)
class InputSpec:
    """One input rules may read: its JSON form (None: the node builds the document), and for a
    fleet-wide input the field that tells its documents apart (one newest document per value)."""

    name: str
    form: JsonForm | None
    subject_field: str = ""


INPUTS: dict[str, InputSpec] = {spec.name: spec for spec in (
    InputSpec(names.METRICS_JSON, json_forms.METRICS),
    InputSpec(names.RESOURCES_JSON, json_forms.RESOURCES),
    InputSpec(names.HEALTH_JSON, json_forms.HEALTH),
    InputSpec(names.SAFETY_STATUS_JSON, json_forms.SAFETY_STATUS),
    InputSpec(names.ROBOT_STATUS_JSON, json_forms.ROBOT_STATUS, subject_field="robot_id"),
    InputSpec(names.INFERENCE_STATS, None),
    InputSpec(ACTIVITY, None),
)}

# ---- paths -------------------------------------------------------------------------------------

AGE = "@age_s"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class MissingValueError(LookupError):
    """A path that a document does not hold (a rule written for another sender, or a typo)."""


@dataclass(frozen=True)
class MetricPath:
    """A compiled path: `keys` (one may be `*`), or a ratio of two such paths, or the input's age."""

    text: str
    keys: tuple[str, ...] = ()
    denominator: tuple[str, ...] = ()
    age: bool = False

    @property
    def wildcard(self) -> bool:
        return "*" in self.keys

    def values(self, doc: Mapping[str, Any], age_s: float) -> list[tuple[str, Any]]:
        """(subject, value) pairs; subject "" unless the path has a `*`. A ratio over 0 is None
        (unknown). Raises MissingValueError when a key is absent or an object is expected and not found."""
        if self.age:
            return [("", age_s)]
        if self.denominator:
            num, den = _number(_walk(doc, self.keys, self.text)), _number(_walk(doc, self.denominator, self.text))
            return [("", num / den if den != 0 else None)]
        return _walk_all(doc, self.keys, self.text)


def _walk(doc: Any, keys: tuple[str, ...], text: str) -> Any:
    for key in keys:
        if not isinstance(doc, Mapping) or key not in doc:
            raise MissingValueError(f"no '{key}' in the document for path '{text}'")
        doc = doc[key]
    return doc


def _walk_all(doc: Any, keys: tuple[str, ...], text: str) -> list[tuple[str, Any]]:
    if "*" not in keys:
        return [("", _walk(doc, keys, text))]
    i = keys.index("*")
    parent = _walk(doc, keys[:i], text)
    if not isinstance(parent, Mapping):
        raise MissingValueError(f"path '{text}' expects an object at '{'.'.join(keys[:i]) or '(top)'}'")
    return [(str(sub), _walk(child, keys[i + 1:], text)) for sub, child in parent.items()]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MissingValueError(f"expected a finite number, got {value!r:.40}")
    return float(value)


def _keys(text: str, allow_wildcard: bool) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.strip().split("."))
    for key in keys:
        if key == "*" and allow_wildcard:
            continue
        if not _KEY.match(key):
            raise ValueError(f"'{key}' is not a key (letters, digits, _ and -)" if key != "*" else
                             "'*' is not allowed in a ratio")
    if keys.count("*") > 1:
        raise ValueError("at most one '*' per path")
    return keys


def compile_path(text: str) -> MetricPath:
    """Raises ValueError saying what is wrong with the path."""
    text = text.strip()
    if text == AGE:
        return MetricPath(text, age=True)
    if "/" in text:
        num, _, den = text.partition("/")
        return MetricPath(text, keys=_keys(num, False), denominator=_keys(den, False))
    return MetricPath(text, keys=_keys(text, True))


# ---- comparisons ---------------------------------------------------------------------------------

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
ORDERED = (">", ">=", "<", "<=")
SEVERITIES: tuple[str, ...] = tuple(level.name for level in AlertLevel)


def value_kind(value: Any) -> type | None:
    """bool, float (any finite number) or str; None for anything a rule cannot compare."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, (int, float)):
        return float if math.isfinite(value) else None
    return str if isinstance(value, str) else None


@dataclass
class AlertRule:
    """One rule of config/alerts.yaml; the rule's name (its key in the file) is the alert's `type`."""

    input: str = param("", choices=tuple(INPUTS), help="input the rule reads")
    path: str = param("", nonempty=True, help="value in the input's document: a.b, a.*, a / b or @age_s")
    op: str = param(">", choices=tuple(OPERATORS), help="firing when `value op threshold`")
    threshold: Any = param(None, help="number, true/false or a string (== and != only)")
    for_s: float = param(0.0, lo=0.0, hi=86400.0, help="the condition must hold this long before firing [s]")
    severity: str = param("WARNING", choices=SEVERITIES, help="level of the alert")
    clear_threshold: Any = param(None, help="number: keeps firing while `value op clear_threshold` "
                                            "(hysteresis); null = the threshold")
    cooldown_s: float = param(60.0, lo=0.0, hi=86400.0,
                              help="while firing, repeated once per this period [s]; 0 = never repeated")
    message: str = param("", help="text; {value}, {threshold}, {subject}, {robot_id} are filled in")

    def check(self) -> None:
        try:
            metric = compile_path(self.path)
        except ValueError as exc:
            raise ConfigError(f"path {self.path!r}: {exc}") from exc
        kind = value_kind(self.threshold)
        if kind is None:
            raise ConfigError(f"threshold must be a finite number, true/false or a string, got {self.threshold!r}")
        if kind is not float and (metric.age or metric.denominator):
            raise ConfigError(f"path {self.path!r} is a number: the threshold must be one, got {self.threshold!r}")
        if kind is not float and self.op in ORDERED:
            raise ConfigError(f"op {self.op!r} needs a numeric threshold, got {self.threshold!r}")
        if self.clear_threshold is not None:
            if self.op not in ORDERED or value_kind(self.clear_threshold) is not float:
                raise ConfigError("clear_threshold must be a number, and only with op >, >=, < or <=")
            if not OPERATORS[self.op](self.threshold, self.clear_threshold) and self.threshold != self.clear_threshold:
                raise ConfigError(f"clear_threshold {self.clear_threshold} must lie on the clear side of threshold "
                                  f"{self.threshold} for op {self.op!r}")
        sample = float(self.threshold) if kind is float else self.threshold  # numbers reach the text as floats
        try:
            self.message.format(value=sample, threshold=sample, subject="s", robot_id="r")
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ConfigError(f"message {self.message!r} does not format: {exc!r} "
                              "(known fields: value, threshold, subject, robot_id)") from exc

    @property
    def metric(self) -> MetricPath:
        return compile_path(self.path)

    @property
    def level(self) -> AlertLevel:
        return AlertLevel[self.severity]


@dataclass(frozen=True)
class NamedRule:
    name: str
    rule: AlertRule
    metric: MetricPath


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def build_rules(rules: Any) -> list[NamedRule]:
    """The rules of a `rules:` mapping (name -> fields), in file order; ConfigError names the rule and field."""
    if not isinstance(rules, Mapping) or not rules:
        raise ConfigError(f"~rules must be a non-empty mapping of rule name to its fields, got {rules!r:.80}")
    out = []
    for name, fields in rules.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"~rules/{name}: a rule name is lower_case (letters, digits, _)")
        if not isinstance(fields, Mapping):
            raise ConfigError(f"~rules/{name} must be a mapping of fields, got {fields!r:.80}")
        if "threshold" not in fields:
            raise ConfigError(f"~rules/{name}/threshold is missing")
        try:
            rule = build_config(AlertRule, fields, prefix=f"rules/{name}/")
        except ConfigError as exc:
            text = str(exc)
            raise (exc if text.startswith(("~rules/", "unknown parameter")) else
                   ConfigError(f"~rules/{name}: {text}")) from None
        out.append(NamedRule(name, rule, rule.metric))
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a rule file with a rule twice is an error instead."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(f"'{key}' appears twice (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_rule_file(text: str, source: str = "rule file") -> list[NamedRule]:
    """Rules from a YAML document `{rules: {name: {...}}}`; ConfigError names the file, rule and field."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
        if not isinstance(doc, Mapping) or set(doc) != {"rules"}:
            found = sorted(map(str, doc)) if isinstance(doc, Mapping) else doc
            raise ConfigError(f"expected one top-level key 'rules', got {found!r:.80}")
        return build_rules(doc["rules"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not YAML: {exc}") from None


def load_rule_file(path: str | Path) -> list[NamedRule]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"rule file {path}: {exc.strerror or exc}") from None
    return parse_rule_file(text, str(path))


def rule_fields(rule: AlertRule) -> dict[str, Any]:
    return {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)}


# The default rules: the seed's three (average inference above 0.1 s, error rate above 10 %, CPU above
# 90 %) and the suite's four more. config/alerts.yaml mirrors them (a root test says so).
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "inference_latency": dict(
        input=names.METRICS_JSON, path="performance_summary.avg_inference_time", op=">", threshold=0.1,
        clear_threshold=0.08, for_s=5.0, severity="WARNING", cooldown_s=60.0,
        message="average inference {value:.3f} s, above {threshold:g} s"),
    "error_rate": dict(
        input=names.METRICS_JSON, path="error_rate", op=">", threshold=0.1, clear_threshold=0.08, for_s=0.0,
        severity="ERROR", cooldown_s=60.0, message="error rate {value:.1%}, above {threshold:.0%}"),
    "high_cpu": dict(
        input=names.RESOURCES_JSON, path="cpu_percent", op=">", threshold=90.0, clear_threshold=85.0,
        for_s=5.0, severity="WARNING", cooldown_s=60.0,
        message="CPU at {value:.0f} %, above {threshold:.0f} %"),
    "emergency_stop": dict(
        input=names.SAFETY_STATUS_JSON, path="emergency_stop", op="==", threshold=True, for_s=0.0,
        severity="CRITICAL", cooldown_s=30.0, message="emergency stop latched"),
    "health_component_down": dict(
        input=names.HEALTH_JSON, path="components.*", op="==", threshold=False, for_s=0.0,
        severity="ERROR", cooldown_s=60.0, message="health component {subject} is down"),
    "no_action": dict(
        input=ACTIVITY, path="action_gap_s", op=">", threshold=2.0, for_s=0.0, severity="ERROR", cooldown_s=30.0,
        message="no action for {value:.1f} s while a task runs"),
    "robot_offline": dict(
        input=names.ROBOT_STATUS_JSON, path="status", op="==", threshold="offline", for_s=0.0,
        severity="WARNING", cooldown_s=300.0, message="robot {subject} is offline"),
    "robot_silent": dict(
        input=names.ROBOT_STATUS_JSON, path=AGE, op=">", threshold=10.0, for_s=0.0, severity="WARNING",
        cooldown_s=300.0, message="no /robot_status from robot {subject} for {value:.0f} s"),
}


def default_rules() -> list[NamedRule]:
    return build_rules(DEFAULT_RULES)
