"""One robot's Prometheus exporter: the metrics it exposes at /metrics and the HTTP server that serves them.

ROS-free; monitoring_node feeds it. Names follow Prometheus conventions: prefix `vla_`, base units
(seconds, bytes, ratios 0..1 for percentages), counters ending in `_total`, and the label `robot_id`
on every series. Its own CollectorRegistry, so nothing but these series is exposed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from vla_msgs.states import AlertLevel, AlertState, LogType, RobotState

# Label values that come from the wire are capped so a flood of made-up names cannot grow the registry.
MAX_LABEL_VALUES = 200
_RESOURCE_RATIOS = (("cpu_percent", "cpu"), ("memory_percent", "memory"), ("disk_percent", "disk"),
                    ("gpu_percent", "gpu"), ("gpu_memory_percent", "gpu_memory"))


def _ratio(percent: Any) -> float:
    """A percentage from JSON as a 0..1 ratio; NaN when unknown (null), which no alert rule matches."""
    return percent / 100.0 if isinstance(percent, (int, float)) and math.isfinite(percent) else math.nan


class _LabelSet:
    """The label values of one labelled gauge now set; values gone from an update are removed."""

    def __init__(self, gauge: Gauge, robot_id: str):
        self.gauge = gauge
        self.robot_id = robot_id
        self.present: set[tuple[str, ...]] = set()

    def replace(self, values: Mapping[tuple[str, ...], float]) -> None:
        items = list(values.items())[:MAX_LABEL_VALUES]
        for labels in self.present - {k for k, _v in items}:
            self.gauge.remove(self.robot_id, *labels)
        for labels, value in items:
            self.gauge.labels(self.robot_id, *labels).set(value)
        self.present = {k for k, _v in items}


class Exporter:
    """The series of one robot; update methods are thread-safe (prometheus_client locks each series)."""

    def __init__(self, robot_id: str, latency_buckets_s: Sequence[float], *, uptime_s: Callable[[], float],
                 action_age_s: Callable[[], float], action_gap_s: Callable[[], float],
                 robot_status_age_s: Callable[[], float] = lambda: math.nan):
        self.robot_id = robot_id
        self.registry = CollectorRegistry(auto_describe=True)
        reg, rid, r = self.registry, ["robot_id"], robot_id
        self.inference_latency = Histogram(
            "vla_inference_latency_seconds", "Model forward time of each inference (vla_logs inference entries)",
            rid, buckets=list(latency_buckets_s), registry=reg).labels(r)
        self.inferences = Counter("vla_inferences", "Inferences logged on vla_logs", rid, registry=reg).labels(r)
        self.actions = Counter("vla_actions", "Actions published on vla/action", rid, registry=reg).labels(r)
        self.errors = Counter("vla_errors", "Errors logged on vla_logs", rid, registry=reg).labels(r)
        self._log_entries = Counter("vla_log_entries", "vla_logs entries by type", [*rid, "type"], registry=reg)
        for t in LogType:
            self._log_entries.labels(r, t.value)  # every type present from the start, at 0
        self._received = Counter("vla_monitoring_messages", "Messages monitoring_node received, by topic",
                                 [*rid, "topic"], registry=reg)
        self._bad_input = Counter("vla_monitoring_bad_input", "Messages monitoring_node refused, by topic",
                                  [*rid, "topic"], registry=reg)
        self.log_dropped = Counter("vla_log_entries_dropped", "vla_logs entries not written to disk "
                                   "(queue full or write error)", rid, registry=reg).labels(r)
        Gauge("vla_uptime_seconds", "Time since monitoring_node started (ROS time)", rid,
              registry=reg).labels(r).set_function(uptime_s)
        Gauge("vla_last_action_age_seconds", "Time since the newest vla/action (since start when none yet)",
              rid, registry=reg).labels(r).set_function(action_age_s)
        Gauge("vla_action_gap_seconds", "While a task runs, time without a vla/action (since the task began "
              "when none came since); 0 while idle", rid, registry=reg).labels(r).set_function(action_gap_s)
        self.task_active = Gauge("vla_task_active", "1 while the policy has an instruction, else 0", rid,
                                 registry=reg).labels(r)
        self.control_rate = Gauge("vla_control_rate_hertz", "Actions per second reported by the inference node",
                                  rid, registry=reg).labels(r)
        self._resource = {field: Gauge(f"vla_{name}_usage_ratio", f"{name.replace('_', ' ')} use, 0..1 "
                                       "(NaN when unknown, e.g. no GPU)", rid, registry=reg).labels(r)
                          for field, name in _RESOURCE_RATIOS}
        self._node_cpu = _LabelSet(Gauge("vla_node_cpu_usage_ratio", "CPU of one of the suite's nodes, "
                                         "1 = one core", [*rid, "node"], registry=reg), r)
        self._node_rss = _LabelSet(Gauge("vla_node_resident_memory_bytes", "Resident memory of one of the "
                                         "suite's nodes", [*rid, "node"], registry=reg), r)
        self.safety_state = Gauge("vla_safety_state", "Safety supervisor level: 0 OK, 1 LIMITED, 2 STOPPED, "
                                  "3 EMERGENCY_STOP (NaN before any status)", rid, registry=reg).labels(r)
        self.emergency_stop = Gauge("vla_emergency_stop", "1 while the e-stop is latched", rid,
                                    registry=reg).labels(r)
        self.healthy = Gauge("vla_healthy", "1 when every health component is healthy (NaN before any report)",
                             rid, registry=reg).labels(r)
        self._components = _LabelSet(Gauge("vla_health_component_up", "1 when the health component is healthy",
                                           [*rid, "component"], registry=reg), r)
        self._alerts = _LabelSet(Gauge("vla_alert_active", "1 for each alert firing now", [*rid, "alert", "level"],
                                       registry=reg), r)
        self.alerts_active: dict[str, str] = {}  # alert key -> level name
        self._robot_state = Gauge("vla_robot_state", "1 for the state the robot agent reports on /robot_status, "
                                  "0 for the others (no series before a report)", [*rid, "state"], registry=reg)
        Gauge("vla_robot_status_age_seconds", "Time since this robot's newest /robot_status (NaN before any)", rid,
              registry=reg).labels(r).set_function(robot_status_age_s)
        for g in (self.safety_state, self.healthy, *self._resource.values()):
            g.set(math.nan)
        self._server = None
        self.port = 0

    # ---------------------------------------------------------------- inputs
    def log_entry(self, entry_type: str, latency_s: float | None) -> None:
        self._log_entries.labels(self.robot_id, entry_type).inc()
        if entry_type == LogType.INFERENCE:
            self.inferences.inc()
            if latency_s is not None:
                self.inference_latency.observe(latency_s)
        elif entry_type == LogType.ERROR:
            self.errors.inc()

    def received(self, topic: str) -> None:
        self._received.labels(self.robot_id, topic).inc()

    def bad_input(self, topic: str) -> None:
        self._bad_input.labels(self.robot_id, topic).inc()

    def stats(self, current_task: str, fps: float) -> None:
        self.task_active.set(1.0 if current_task else 0.0)
        self.control_rate.set(fps)

    def resources(self, doc: Mapping[str, Any]) -> None:
        """A parsed vla_resources document."""
        for field, gauge in self._resource.items():
            gauge.set(_ratio(doc.get(field)))
        nodes = doc.get("nodes") or {}
        self._node_cpu.replace({(name,): _ratio(n.get("cpu_percent")) for name, n in nodes.items()
                                if isinstance(n, Mapping)})
        self._node_rss.replace({(name,): float(n["rss_mb"]) * 1024.0 * 1024.0 for name, n in nodes.items()
                                if isinstance(n, Mapping) and isinstance(n.get("rss_mb"), (int, float))})

    def safety(self, level: int, emergency_stop: bool) -> None:
        self.safety_state.set(level)
        self.emergency_stop.set(1.0 if emergency_stop else 0.0)

    def health(self, overall: bool, components: Mapping[str, bool]) -> None:
        self.healthy.set(1.0 if overall else 0.0)
        self._components.replace({(name,): 1.0 if up else 0.0 for name, up in components.items()})

    def robot_state(self, state: str) -> None:
        """This robot's /robot_status `status` (ValueError for one RobotState does not name)."""
        RobotState(state)
        for s in RobotState:
            self._robot_state.labels(self.robot_id, s.value).set(1.0 if s.value == state else 0.0)

    def alert(self, doc: Mapping[str, Any]) -> None:
        """A vla_alerts event parsed by json_forms.ALERTS: firing sets the series of its alert_id (its type
        when it has none), resolved removes it; a missing state is a firing event, as the seed sent."""
        state = AlertState(doc.get("state") or AlertState.FIRING)  # ValueError for a state the form lacks
        key = doc.get("alert_id") or doc["type"]
        self.alerts_active.pop(key, None)
        if state is AlertState.FIRING:
            self.alerts_active[key] = AlertLevel[doc["level"]].name
            while len(self.alerts_active) > MAX_LABEL_VALUES:
                self.alerts_active.pop(next(iter(self.alerts_active)))
        self._alerts.replace({(k, level): 1.0 for k, level in self.alerts_active.items()})

    # ---------------------------------------------------------------- serving
    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Serves /metrics on `port` (0: any free port) from a thread of its own; the port bound.
        Raises OSError when the port cannot be bound."""
        self._server, _thread = start_http_server(port, address, registry=self.registry)
        self.port = self._server.server_port
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
