"""What the dashboard shows, without ROS: the newest value of every input per robot, bounded time
series, alerts firing and resolved, the fleet's robot statuses, and the JSON snapshot the page draws.

The node feeds parsed inputs in with their arrival time (ROS time) and asks for `snapshot(now, since)`:
the whole state, or (since a sequence number the page already has) the same latest values with only
the series points added after it. Every JSON input is parsed with its `vla_msgs.json_forms` form; a
bad one raises ProtocolError (a ValueError), which the node counts on `state.bad` and drops.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.config import ConfigError, param
from vla_msgs import json_forms
from vla_msgs.states import AlertLevel, AlertState, HealthLevel, SafetyState

LOG = logging.getLogger(__name__)

# Every series a robot has, in the order the page lists them.
SERIES: tuple[str, ...] = ("latency_ms_p50", "latency_ms_p99", "fps", "error_rate_percent", "cpu_percent",
                           "memory_percent", "gpu_percent", "gpu_memory_percent")
RESOURCE_FIELDS: tuple[str, ...] = ("cpu_percent", "memory_percent", "disk_percent", "gpu_percent",
                                    "gpu_memory_percent")
# A relative or absolute ROS namespace.
_NAMESPACE = re.compile(r"^/?[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*$")
# A clock that goes back by more than this (a restarted simulator) starts the series over.
_CLOCK_JUMP_S = 1.0
# Fleet robots and active alerts kept at most: a flood of made-up ids must not grow memory.
MAX_FLEET_ROBOTS = 1000
MAX_ACTIVE_ALERTS = 200


@dataclass
class DashboardConfig:
    """Every parameter of dashboard_node (config/dashboard.yaml mirrors it); times in s."""

    robot_id: str = param("robot_1", nonempty=True,
                          help="id of the robot in the node's own namespace, shown when ~robots is empty")
    robots: list[str] = param([], items=str, nonempty=True, max_length=64,
                              help="namespaces of the robots to show (robot_1, ...); the id is the last part; "
                                   "empty: the one robot in the node's namespace")
    host: str = param("0.0.0.0", nonempty=True, help="address the web server listens on")
    port: int = param(8090, lo=1, hi=65535, help="TCP port of the page")
    history_s: float = param(300.0, lo=10.0, hi=86400.0, help="time span of the charts [s]")
    history_points: int = param(600, lo=10, hi=100_000, help="most points kept per series")
    update_period_s: float = param(0.5, lo=0.05, hi=1.0,
                                   help="longest time between two pushes to the page, changed or not [s]")
    min_push_interval_s: float = param(0.1, lo=0.0, hi=1.0,
                                       help="changes are pushed as they arrive, at most once per this [s]")
    stale_after_s: float = param(5.0, lo=0.1, hi=3600.0, help="a value older than this is shown as stale [s]")
    recent_alerts: int = param(20, lo=1, hi=1000, help="alert events listed per robot")
    max_clients: int = param(20, lo=1, hi=1000, help="most pages connected at once")
    chart_js: str = param("/usr/share/javascript/chart.js/chart.min.js", nonempty=True,
                          help="Chart.js served to the page (Debian libjs-chart.js)")

    def check(self) -> None:
        bad = [r for r in self.robots if not _NAMESPACE.match(r)]
        if bad:
            raise ConfigError(f"~robots holds names that are not ROS namespaces: {bad}")
        ids = [robot_id_of(r) for r in self.robots]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ConfigError(f"~robots names the robot id(s) {twice} more than once")
        if self.min_push_interval_s > self.update_period_s:
            raise ConfigError(f"~min_push_interval_s ({self.min_push_interval_s:g}) must not exceed "
                              f"~update_period_s ({self.update_period_s:g})")

    def robot_namespaces(self) -> dict[str, str]:
        """Robot id -> namespace of its topics ('' for the node's own namespace)."""
        if not self.robots:
            return {self.robot_id: ""}
        return {robot_id_of(ns): ns for ns in self.robots}


def robot_id_of(namespace: str) -> str:
    """The robot id of a robot namespace: its last part (`/fleet/robot_2` -> robot_2)."""
    return namespace.strip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class InferenceSample:
    """The fields of one vla/inference_stats message the dashboard shows (latencies None when unknown)."""

    fps: float
    latency_ms_mean: float | None
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    mode: str
    model_version: str
    current_task: str
    inference_count: int
    action_count: int
    error_count: int

    @classmethod
    def checked(cls, *, fps: float, latency_ms_mean: float, latency_ms_p50: float, latency_ms_p99: float,
                mode: str, model_version: str, current_task: str, inference_count: int, action_count: int,
                error_count: int) -> InferenceSample:
        """A sample from raw message fields; raises ValueError for a rate or count that cannot be.

        The inference node writes a negative latency for "no inference yet": shown as unknown.
        """
        if not (math.isfinite(fps) and fps >= 0.0):
            raise ValueError(f"fps must be a finite rate >= 0, got {fps!r}")
        for name, count in (("inference_count", inference_count), ("action_count", action_count),
                            ("error_count", error_count)):
            if count < 0:
                raise ValueError(f"{name} must be >= 0, got {count}")
        lat = [_latency(v, n) for v, n in ((latency_ms_mean, "inference_ms_mean"),
                                          (latency_ms_p50, "inference_ms_p50"),
                                          (latency_ms_p99, "inference_ms_p99"))]
        return cls(float(fps), *lat, mode, model_version, current_task, int(inference_count), int(action_count),
                   int(error_count))


def _latency(value: float, name: str) -> float | None:
    if math.isnan(value) or value < 0.0:
        return None
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


class Series:
    """Points (seq, t, value) of one quantity: at most `max_points`, none older than `span_s` before
    the newest; a value of None is a gap."""

    def __init__(self, max_points: int, span_s: float):
        self._points: deque[tuple[int, float, float | None]] = deque(maxlen=max_points)
        self._span_s = span_s

    def add(self, seq: int, t: float, value: float | None) -> None:
        self._points.append((seq, t, value))
        self.trim(t)

    def trim(self, now: float) -> None:
        while self._points and self._points[0][1] < now - self._span_s:
            self._points.popleft()

    def clear(self) -> None:
        self._points.clear()

    def since(self, seq: int) -> list[list[float | None]]:
        """[t, value] of the points added after sequence number `seq`, oldest first."""
        return [[t, v] for s, t, v in self._points if s > seq]

    def __len__(self) -> int:
        return len(self._points)


@dataclass
class _Latest:
    """The newest document of one input and when it arrived (ROS time)."""

    fields: dict[str, Any]
    at: float


class _Robot:
    def __init__(self, robot_id: str, namespace: str, config: DashboardConfig):
        self.robot_id = robot_id
        self.namespace = namespace
        self.inference: _Latest | None = None
        self.metrics: _Latest | None = None
        self.resources: _Latest | None = None
        self.safety: _Latest | None = None
        self.health: _Latest | None = None
        self.active_alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.recent_alerts: deque[dict[str, Any]] = deque(maxlen=config.recent_alerts)
        self.series = {name: Series(config.history_points, config.history_s) for name in SERIES}
        self.counts: tuple[int, int] | None = None  # (inference_count, error_count) of the previous vla_metrics


class DashboardState:
    """The dashboard's state for the robots of `config`; safe from any thread.

    `on_change` (set by the web layer) is called after every accepted input, outside the lock.
    """

    def __init__(self, config: DashboardConfig, bad: BadInputCounter | None = None):
        self.config = config
        self.bad = bad or BadInputCounter()
        self.on_change: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._robots = {rid: _Robot(rid, ns, config) for rid, ns in config.robot_namespaces().items()}
        self._fleet: OrderedDict[str, _Latest] = OrderedDict()
        self._seq = 0
        self._reset_seq = 0  # a page that has seen less than this gets everything again
        self._last_now = -math.inf

    @property
    def robot_ids(self) -> list[str]:
        return list(self._robots)

    def namespace_of(self, robot_id: str) -> str:
        return self._robots[robot_id].namespace

    # ---- inputs (each raises ValueError on bad input; the caller counts it) ----
    def inference_stats(self, robot_id: str, sample: InferenceSample, now: float) -> None:
        def apply(robot: _Robot) -> None:
            robot.inference = _Latest(vars(sample).copy(), now)
            self._add(robot, now, latency_ms_p50=sample.latency_ms_p50, latency_ms_p99=sample.latency_ms_p99,
                      fps=sample.fps)
        self._update(robot_id, now, apply)

    def metrics(self, robot_id: str, text: str, now: float) -> None:
        """vla_metrics: counts, and the error rate (monitoring_node's `error_rate`; from the counts of two
        documents when a sender leaves it out)."""
        doc = json_forms.METRICS.parse(text)
        counts = (doc["inference_count"], doc["error_count"])
        if min(counts) < 0:
            raise json_forms.ProtocolError(f"{json_forms.METRICS.topic}: negative count {counts}")

        published = doc.get("error_rate")  # monitoring_node's own, over its rate window: what alerts judge
        if published is not None and not (isinstance(published, (int, float)) and not isinstance(published, bool)
                                          and 0.0 <= published <= 1.0):
            raise json_forms.ProtocolError(f"{json_forms.METRICS.topic}: error_rate must be a fraction 0..1 or "
                                           f"null, got {published!r:.40}")

        def apply(robot: _Robot) -> None:
            rate = 100.0 * published if published is not None else _error_rate_percent(robot.counts, counts)
            robot.counts = counts
            doc["error_rate_percent"] = rate
            robot.metrics = _Latest(doc, now)
            if rate is not None:
                self._add(robot, now, error_rate_percent=rate)
        self._update(robot_id, now, apply)

    def resources(self, robot_id: str, text: str, now: float) -> None:
        doc = json_forms.RESOURCES.parse(text)

        def apply(robot: _Robot) -> None:
            robot.resources = _Latest(doc, now)
            self._add(robot, now, **{k: doc.get(k) for k in ("cpu_percent", "memory_percent", "gpu_percent",
                                                             "gpu_memory_percent")})
        self._update(robot_id, now, apply)

    def safety(self, robot_id: str, text: str, now: float) -> None:
        doc = json_forms.SAFETY_STATUS.parse(text)
        self._update(robot_id, now, lambda robot: setattr(robot, "safety", _Latest(doc, now)))

    def health(self, robot_id: str, text: str, now: float) -> None:
        doc = json_forms.HEALTH.parse(text)
        if not all(isinstance(v, bool) for v in doc["components"].values()):
            raise json_forms.ProtocolError(f"{json_forms.HEALTH.topic}: every component must be true or false")
        self._update(robot_id, now, lambda robot: setattr(robot, "health", _Latest(doc, now)))

    def alert(self, robot_id: str, text: str, now: float) -> None:
        """One vla_alerts event: firing (kept active under its alert_id, or its type when the sender names
        none, as the seed's events did) or resolved (removed); a missing state is a firing event."""
        doc = json_forms.ALERTS.parse(text)  # checks state's choices too
        state = AlertState(doc.get("state", AlertState.FIRING))
        key = doc.get("alert_id") or doc["type"]
        event = {**doc, "state": state.value, "key": key, "received": now}

        def apply(robot: _Robot) -> None:
            robot.recent_alerts.appendleft(event)
            if state is AlertState.RESOLVED:
                robot.active_alerts.pop(key, None)
                return
            robot.active_alerts.pop(key, None)
            robot.active_alerts[key] = event
            while len(robot.active_alerts) > MAX_ACTIVE_ALERTS:
                robot.active_alerts.popitem(last=False)
        self._update(robot_id, now, apply)

    def robot_status(self, text: str, now: float) -> None:
        """One /robot_status document of any robot of the fleet."""
        doc = json_forms.ROBOT_STATUS.parse(text)
        if not 0.0 <= doc["battery"] <= 100.0:
            raise json_forms.ProtocolError(f"{json_forms.ROBOT_STATUS.topic}: battery must be a percentage "
                                           f"0..100, got {doc['battery']!r}")

        def apply(_robot: None) -> None:
            self._fleet.pop(doc["robot_id"], None)
            self._fleet[doc["robot_id"]] = _Latest(doc, now)
            while len(self._fleet) > MAX_FLEET_ROBOTS:
                self._fleet.popitem(last=False)
        self._update(None, now, apply)

    # ---- output ----
    def snapshot(self, now: float, since: int = 0) -> dict[str, Any]:
        """What the page draws: latest values of every robot and the fleet, and the series points after
        `since` (all of them when `since` is 0 or older than the last restart of the clock: `full`)."""
        with self._lock:
            self._clock(now)
            full = since <= 0 or since < self._reset_seq or since > self._seq
            after = 0 if full else since
            robots = {rid: self._robot_view(r, now, after) for rid, r in self._robots.items()}
            fleet = {rid: self._fleet_view(latest, now) for rid, latest in sorted(self._fleet.items())}
            seq = self._seq
        c = self.config
        return {
            "now": now, "seq": seq, "full": full,
            "config": {"history_s": c.history_s, "history_points": c.history_points,
                       "update_period_s": c.update_period_s, "stale_after_s": c.stale_after_s},
            "robots": robots, "fleet": fleet,
            "bad_input": {"total": self.bad.total, "by_source": dict(self.bad.counts),
                          "last_reason": dict(self.bad.last_reason)},
        }

    # ---- internals ----
    def _update(self, robot_id: str | None, now: float, apply: Callable[[Any], None]) -> None:
        with self._lock:
            robot = None
            if robot_id is not None:
                robot = self._robots.get(robot_id)
                if robot is None:
                    raise KeyError(f"unknown robot {robot_id!r}")  # a wiring bug in the node, not bad input
            self._clock(now)
            apply(robot)
        callback = self.on_change
        if callback is not None:
            callback()

    def _clock(self, now: float) -> None:
        """Starts every series over when the clock went back (a restarted simulator)."""
        if now < self._last_now - _CLOCK_JUMP_S:
            LOG.info("clock went back from %.3f to %.3f s: charts start over", self._last_now, now)
            for robot in self._robots.values():
                for series in robot.series.values():
                    series.clear()
            self._reset_seq = self._seq + 1
        self._last_now = now

    def _add(self, robot: _Robot, now: float, **values: float | None) -> None:
        self._seq += 1
        for name, value in values.items():
            robot.series[name].add(self._seq, now, value)

    def _robot_view(self, robot: _Robot, now: float, since: int) -> dict[str, Any]:
        for series in robot.series.values():
            series.trim(now)
        view: dict[str, Any] = {"namespace": robot.namespace}
        for name in ("inference", "metrics", "resources", "safety", "health"):
            view[name] = self._latest_view(getattr(robot, name), now)
        view["alerts"] = {
            "active": [_alert_view(a, now) for a in reversed(robot.active_alerts.values())],
            "recent": [_alert_view(a, now) for a in robot.recent_alerts],
        }
        view["attention"] = attention(view)
        view["series"] = {name: s.since(since) for name, s in robot.series.items()}
        return view

    def _latest_view(self, latest: _Latest | None, now: float) -> dict[str, Any] | None:
        if latest is None:
            return None
        age = max(0.0, now - latest.at)
        return {**latest.fields, "age_s": round(age, 3), "stale": age > self.config.stale_after_s}

    def _fleet_view(self, latest: _Latest, now: float) -> dict[str, Any]:
        view = self._latest_view(latest, now)
        return {k: view[k] for k in ("robot_id", "status", "battery", "current_task_id", "position",
                                     "capabilities", "age_s", "stale")}


def _error_rate_percent(before: tuple[int, int] | None, after: tuple[int, int]) -> float | None:
    """Errors per inference between two vla_metrics counts, in percent (capped at 100); None with no
    earlier count or when the counts went back (the monitoring node restarted)."""
    if before is None:
        return None
    inferences, errors = after[0] - before[0], after[1] - before[1]
    if inferences < 0 or errors < 0:
        return None
    if inferences == 0:
        return 100.0 if errors else 0.0
    return min(100.0, 100.0 * errors / inferences)


def _alert_view(event: dict[str, Any], now: float) -> dict[str, Any]:
    return {**{k: event.get(k) for k in ("key", "level", "type", "message", "value", "state", "timestamp")},
            "age_s": round(max(0.0, now - event["received"]), 3)}


# Attention levels of a robot, worst last.
OK, UNKNOWN, WARN, ERROR = "ok", "unknown", "warn", "error"
_RANK = {OK: 0, UNKNOWN: 1, WARN: 2, ERROR: 3}
_SAFETY_LEVEL = {SafetyState.OK.name: OK, SafetyState.LIMITED.name: WARN, SafetyState.STOPPED.name: ERROR,
                 SafetyState.EMERGENCY_STOP.name: ERROR}
_HEALTH_LEVEL = {HealthLevel.HEALTHY.value: OK, HealthLevel.DEGRADED.value: WARN, HealthLevel.CRITICAL.value: ERROR}
_ALERT_LEVEL = {AlertLevel.INFO.name: OK, AlertLevel.WARNING.name: WARN, AlertLevel.ERROR.name: ERROR,
                AlertLevel.CRITICAL.name: ERROR}


def attention(view: dict[str, Any]) -> dict[str, Any]:
    """How much a robot's view needs an operator: the worst of safety, health and active alerts, with the
    reasons. Safety first: a missing safety status is `unknown` and a stale one `error`, never ok."""
    found: list[tuple[str, str]] = []
    safety = view.get("safety")
    if safety is None:
        found.append((UNKNOWN, "no safety status"))
    elif safety["stale"]:  # the supervisor may be gone: as bad as a stop
        found.append((ERROR, f"no safety status for {safety['age_s']:.0f} s"))
    else:
        level = _SAFETY_LEVEL[safety["status"]]
        if level != OK:
            found.append((level, f"safety {safety['status']}: {safety['reason']}".rstrip(": ")))
    health = view.get("health")
    if health is None:
        found.append((UNKNOWN, "no health report"))
    elif health["stale"]:
        found.append((WARN, f"no health report for {health['age_s']:.0f} s"))
    else:
        level = _HEALTH_LEVEL[health["level"]]
        if level != OK:
            down = sorted(name for name, ok in health["components"].items() if not ok)
            found.append((level, f"health {health['level']}: {', '.join(down) or 'see details'}"))
    for alert in view["alerts"]["active"]:
        level = _ALERT_LEVEL[alert["level"]]
        if level != OK:
            found.append((level, f"{alert['level']} {alert['key']}"))
    worst = max((level for level, _ in found), key=_RANK.__getitem__, default=OK)
    return {"level": worst, "reasons": [why for level, why in found if level == worst]}
