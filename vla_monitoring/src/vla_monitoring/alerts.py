"""The alert state machine: rules evaluated on the newest input documents, events when alerts start,
repeat and clear. ROS-free; time is passed in (ROS time in the node), so tests drive it by hand.

Per rule and subject: idle -> pending (the condition holds; waits `for_s`) -> firing (one event) ->
a repeat event once per `cooldown_s` while it holds -> resolved (one event) when the value leaves the
clear side of `clear_threshold`. A value that is unknown (no document yet, a stale input, a path the
document lacks, a ratio over 0) changes nothing: a firing alert stays firing, a pending one waits.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from vla_monitoring.alert_rules import INPUTS, OPERATORS, MissingValueError, NamedRule, value_kind
from vla_monitoring.config import ConfigError, param
from vla_msgs.states import AlertLevel, AlertState

LOG = logging.getLogger(__name__)

# Documents kept per fleet-wide input, and values read per `*` path: enough for any fleet or component list.
MAX_SUBJECTS = 256


@dataclass
class AlertConfig:
    """Every parameter of alert_node (config/alert.yaml mirrors it); times in ROS time."""

    robot_id: str = param("robot_1", nonempty=True, help="robot whose alerts these are")
    rules_file: str = param("", help="YAML rule file ({rules: {name: {...}}}); empty = the built-in default rules")
    evaluate_rate: float = param(2.0, lo=0.1, hi=100.0, help="rule evaluation rate [Hz]")
    stale_after_s: float = param(5.0, lo=0.1, hi=3600.0,
                                 help="an input document older than this is unknown to the rules [s]")
    fleet_wide: bool = param(False, help="rules on /robot_status watch every robot (one such node per fleet); "
                                         "false: this robot's own status only")
    webhook_url: str = param("", help="http(s) URL each event is POSTed to as JSON; empty = no webhook")
    webhook_timeout_s: float = param(2.0, lo=0.05, hi=60.0, help="timeout of one POST [s]")
    webhook_max_attempts: int = param(5, lo=1, hi=20, help="attempts per event before it is given up")
    webhook_backoff_s: float = param(0.5, lo=0.0, hi=60.0, help="wait before the first retry, doubled each retry [s]")
    webhook_backoff_max_s: float = param(30.0, lo=0.0, hi=600.0, help="longest wait between retries [s]")
    webhook_queue_size: int = param(100, lo=1, hi=100000, help="events waiting to be sent; the oldest is dropped")

    def check(self) -> None:
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigError(f"~webhook_url must be empty or an http(s) URL, got {self.webhook_url!r}")
        if self.webhook_backoff_max_s < self.webhook_backoff_s:
            raise ConfigError(f"~webhook_backoff_max_s ({self.webhook_backoff_max_s:g}) must be >= "
                              f"~webhook_backoff_s ({self.webhook_backoff_s:g})")


@dataclass(frozen=True)
class AlertEvent:
    """One event of vla_alerts / vla/alerts."""

    type: str              # the rule's name
    alert_id: str          # type, or type:subject for a rule that watches several subjects
    subject: str           # component, robot, ...: what a `*` path or a fleet-wide input matched; "" if none
    state: AlertState
    level: AlertLevel      # the rule's severity (also on the resolved event)
    message: str
    value: Any             # the value that fired, repeated or cleared it (number, bool or string)
    threshold: Any
    robot_id: str
    timestamp: float
    since: float           # when it started firing
    repeat: int            # 0 for the first event, n for the n-th reminder; resolved keeps the count

    @property
    def numeric_value(self) -> float | None:
        return numeric(self.value)

    def fields(self) -> dict[str, Any]:
        """The event's vla_alerts fields (json_forms.ALERTS, without the timestamp)."""
        return dict(level=self.level.name, type=self.type, message=self.message, value=self.numeric_value,
                    alert_id=self.alert_id, state=self.state.value, robot_id=self.robot_id, subject=self.subject,
                    threshold=numeric(self.threshold), since=self.since, repeat=self.repeat)


def numeric(value: Any) -> float | None:
    """What a number field can say of a value: true/false as 1/0, a string as nothing."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    return None


@dataclass
class _Instance:
    pending_since: float
    firing_since: float | None = None
    last_sent: float = 0.0
    repeats: int = 0
    first_message: str = ""


@dataclass
class _Doc:
    doc: dict
    arrived: float


class ActivityTracker:
    """Whether a task runs and how long the policy has been silent during it: the `activity` input.

    A task starts with a task_command that is not an idle word, or with vla/inference_stats naming one;
    it ends with an idle word or stats whose current_task is empty (the newest evidence wins).
    """

    def __init__(self) -> None:
        self.task = ""
        self.task_since: float | None = None
        self.last_action: float | None = None

    def note_task(self, now: float, task: str) -> None:
        """`task` "" = idle."""
        if task and not self.task:
            self.task_since = now
        self.task = task
        if not task:
            self.task_since = None

    def note_action(self, now: float) -> None:
        self.last_action = now

    def doc(self, now: float) -> dict[str, Any]:
        if self.task_since is None:
            return {"task_active": False, "task": "", "action_gap_s": 0.0}
        since = max(self.task_since, self.last_action if self.last_action is not None else -math.inf)
        return {"task_active": True, "task": self.task, "action_gap_s": max(0.0, now - since)}


class AlertEngine:
    """Evaluates the rules on the newest document of each input; see the module docstring. Not thread-safe:
    the node holds one lock around every call."""

    def __init__(self, rules: list[NamedRule], robot_id: str, stale_after_s: float = 5.0, fleet_wide: bool = False):
        self.rules = rules
        self.robot_id = robot_id
        self.stale_after_s = stale_after_s
        self.fleet_wide = fleet_wide
        self.problems: dict[str, str] = {}  # rule name -> why its value is unknown now
        self._docs: dict[str, OrderedDict[str, _Doc]] = {}
        self._instances: dict[tuple[str, str], _Instance] = {}
        self._active: dict[tuple[str, str], AlertEvent] = {}

    def update(self, input_name: str, doc: dict, now: float) -> bool:
        """Stores `doc` as the newest of its input (of its subject, for a fleet-wide input); False
        when it is left out (another robot's status on a robot's own node)."""
        spec = INPUTS[input_name]
        subject = ""
        if spec.subject_field:
            subject = str(doc.get(spec.subject_field, ""))
            if not self.fleet_wide and subject != self.robot_id:
                return False
        docs = self._docs.setdefault(input_name, OrderedDict())
        docs.pop(subject, None)
        docs[subject] = _Doc(doc, now)
        if len(docs) > MAX_SUBJECTS:  # a flood of made-up robot ids must not grow memory: the longest silent goes
            docs.popitem(last=False)
        return True

    def age_s(self, input_name: str, now: float) -> float | None:
        """Age of the input's newest document (the youngest subject's); None before the first."""
        docs = self._docs.get(input_name)
        return min(now - d.arrived for d in docs.values()) if docs else None

    def active(self) -> list[AlertEvent]:
        """The firing alerts, each as its latest event."""
        return list(self._active.values())

    def evaluate(self, now: float) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for named in self.rules:
            for subject, doc_subject, value in self._observe(named, now):
                event = self._step(named, subject, doc_subject, value, now)
                if event is not None:
                    events.append(event)
        return events

    # ---- internals -----------------------------------------------------------------------------

    def _observe(self, named: NamedRule, now: float) -> list[tuple[str, str, Any]]:
        """(subject, doc subject, value) of every known value of the rule; unknown ones are left out."""
        rule, metric = named.rule, named.metric
        want = value_kind(rule.threshold)
        out: list[tuple[str, str, Any]] = []
        problem = ""
        for doc_subject, stored in self._docs.get(rule.input, {}).items():
            age = now - stored.arrived
            if not metric.age and age > self.stale_after_s:
                continue
            try:
                values = metric.values(stored.doc, age)
            except MissingValueError as exc:
                problem = str(exc)
                continue
            if len(values) > MAX_SUBJECTS:
                problem = f"'{metric.text}' matches {len(values)} values; the first {MAX_SUBJECTS} are read"
                values = values[:MAX_SUBJECTS]
            for path_subject, value in values:
                if value is None:
                    continue
                if value_kind(value) is not want:
                    problem = f"'{metric.text}' is {value!r:.40}, not comparable with {rule.threshold!r}"
                    continue
                subject = "/".join(s for s in (doc_subject, path_subject) if s)
                out.append((subject, doc_subject, value))
        self._note_problem(named.name, problem)
        return out

    def _note_problem(self, name: str, problem: str) -> None:
        if problem and self.problems.get(name) != problem:
            LOG.warning("alert rule %s cannot read its value: %s", name, problem)
        if problem:
            self.problems[name] = problem
        else:
            self.problems.pop(name, None)

    def _step(self, named: NamedRule, subject: str, doc_subject: str, value: Any, now: float) -> AlertEvent | None:
        rule, key = named.rule, (named.name, subject)
        holds = OPERATORS[rule.op]
        inst = self._instances.get(key)
        if inst is None or inst.firing_since is None:
            if not holds(value, rule.threshold):
                self._instances.pop(key, None)
                return None
            if inst is None:
                inst = self._instances[key] = _Instance(pending_since=now)
            if now - inst.pending_since < rule.for_s:
                return None
            inst.firing_since = inst.last_sent = now
            inst.first_message = self._text(named, subject, doc_subject, value)
            return self._event(named, subject, doc_subject, value, now, inst, AlertState.FIRING, inst.first_message)
        clear = rule.threshold if rule.clear_threshold is None else rule.clear_threshold
        if not holds(value, clear):
            del self._instances[key]
            text = f"resolved after {now - inst.firing_since:.1f} s: {inst.first_message}"
            return self._event(named, subject, doc_subject, value, now, inst, AlertState.RESOLVED, text)
        if rule.cooldown_s > 0 and now - inst.last_sent >= rule.cooldown_s:
            inst.last_sent = now
            inst.repeats += 1
            text = self._text(named, subject, doc_subject, value)
            return self._event(named, subject, doc_subject, value, now, inst, AlertState.FIRING, text)
        return None

    def _text(self, named: NamedRule, subject: str, doc_subject: str, value: Any) -> str:
        rule = named.rule
        robot = doc_subject or self.robot_id
        if not rule.message:
            return f"{named.name}: {rule.path} is {value!r} ({rule.op} {rule.threshold!r})"
        if value_kind(value) is float:
            value = float(value)
        threshold = float(rule.threshold) if value_kind(rule.threshold) is float else rule.threshold
        return rule.message.format(value=value, threshold=threshold, subject=subject, robot_id=robot)

    def _event(self, named: NamedRule, subject: str, doc_subject: str, value: Any, now: float, inst: _Instance,
               state: AlertState, text: str) -> AlertEvent:
        key = (named.name, subject)
        event = AlertEvent(
            type=named.name, alert_id=f"{named.name}:{subject}" if subject else named.name, subject=subject,
            state=state, level=named.rule.level, message=text, value=value, threshold=named.rule.threshold,
            robot_id=doc_subject or self.robot_id, timestamp=now,
            since=now if inst.firing_since is None else inst.firing_since,
            repeat=inst.repeats)
        if state is AlertState.FIRING:
            self._active[key] = event
        else:
            self._active.pop(key, None)
        return event
