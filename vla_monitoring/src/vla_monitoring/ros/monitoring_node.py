"""monitoring_node: one robot's metrics (vla_metrics), its vla_logs archive on disk, and its Prometheus exporter.

Feeds vla/action, vla/inference_stats, vla_logs and vla/safety_status into MetricsCollector; writes
every valid vla_logs entry to the LogArchive through its writer thread; updates the Exporter from
those and from vla_resources, vla_health, vla_alerts and this robot's /robot_status. Time is ROS time
(windows, rates, uptime).
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable

import rospy
from std_msgs.msg import String

from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.exporter import Exporter
from vla_monitoring.log_archive import ArchiveWriter, LogArchive
from vla_monitoring.metrics import MetricsCollector, MonitoringConfig
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import ERROR, OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.json_forms import ProtocolError
from vla_msgs.msg import Action, InferenceStats, SafetyStatus
from vla_msgs.states import SafetyState

_BAD_INPUT = (ValueError, TypeError, KeyError, AttributeError, UnicodeError)
INPUTS = (names.ACTION, names.INFERENCE_STATS, names.LOGS_JSON, names.SAFETY_STATUS, names.RESOURCES_JSON,
          names.HEALTH_JSON, names.ALERTS_JSON, names.ROBOT_STATUS_JSON)
_DAY_S = 86400.0


def _input(topic: str) -> Callable:
    """A subscriber callback: every message counted as received on the exporter, then handled through
    counted_callback (bad input counted and dropped, nothing escapes)."""
    def wrap(fn: Callable) -> Callable:
        checked = counted_callback(topic, _BAD_INPUT)(fn)

        @functools.wraps(fn)
        def inner(self, msg):
            self.exporter.received(topic)
            return checked(self, msg)
        return inner
    return wrap


def _finite(name: str, values) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} holds a non-finite value")


class _ExportedBadInput(BadInputCounter):
    """Refused input counted for diagnostics and, by topic, on the exporter."""

    def __init__(self, exporter: Exporter):
        super().__init__()
        self.exporter = exporter

    def reject(self, source: str, reason: str) -> None:
        super().reject(source, reason)
        self.exporter.bad_input(source)


class MonitoringNode:
    def __init__(self, config: MonitoringConfig):
        self.cfg = config
        self.clock = rospy.get_time
        self.lock = threading.Lock()
        self.collector = MetricsCollector(config, self.clock())
        self.robot_status_s: float | None = None  # when this robot's newest /robot_status arrived
        self.exporter = Exporter(config.robot_id, config.latency_buckets_s,
                                 uptime_s=lambda: max(0.0, self.clock() - self.collector.start_s),
                                 action_age_s=lambda: self.collector.last_action_age_s(self.clock()),
                                 action_gap_s=lambda: self.collector.action_gap_s(self.clock()),
                                 robot_status_age_s=self._robot_status_age_s)
        self.bad = _ExportedBadInput(self.exporter)
        self.exporter_error = ""
        try:
            self.exporter.serve(config.prometheus_port, config.prometheus_address)
        except OSError as exc:  # a port taken (two robots on one number) must not take the metrics down
            self.exporter_error = f"cannot serve on {config.prometheus_address}:{config.prometheus_port}: {exc}"
            rospy.logerr(f"Prometheus exporter off: {self.exporter_error}")
        self.writer = ArchiveWriter(
            LogArchive(config.log_dir, config.robot_id, max_bytes=config.log_max_bytes,
                       rotate_interval_s=config.log_rotate_interval_s, max_age_s=config.log_max_age_days * _DAY_S,
                       max_archives=config.log_max_archives, max_total_bytes=config.log_max_total_bytes,
                       clock=time.time),
            config.log_queue_size)
        self._reported_drops = 0

        self.pub = rospy.Publisher(names.METRICS_JSON, String, queue_size=5)
        self.diag = Diagnostics(config.robot_id, period_s=1.0)
        self.diag.task("metrics", self._diag_metrics)
        self.diag.task("log archive", self._diag_archive)
        self.diag.task("exporter", self._diag_exporter)
        self.diag.bad_input(self.bad, INPUTS)

        # The streams come at the policy's rate or faster (vla_logs: an entry per inference and per action);
        # queues long enough to ride out a burst rather than drop counts.
        rospy.Subscriber(names.ACTION, Action, self._on_action, queue_size=1000)
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self._on_stats, queue_size=1000)
        rospy.Subscriber(names.LOGS_JSON, String, self._on_log, queue_size=1000)
        rospy.Subscriber(names.SAFETY_STATUS, SafetyStatus, self._on_safety, queue_size=20)
        rospy.Subscriber(names.RESOURCES_JSON, String, self._on_resources, queue_size=5)
        rospy.Subscriber(names.HEALTH_JSON, String, self._on_health, queue_size=5)
        rospy.Subscriber(names.ALERTS_JSON, String, self._on_alert, queue_size=100)
        rospy.Subscriber(names.ROBOT_STATUS_JSON, String, self._on_robot_status, queue_size=50)
        self.timer = rospy.Timer(rospy.Duration(1.0 / config.publish_rate), self._on_tick)
        rospy.on_shutdown(self.close)

    # ---------------------------------------------------------------- inputs
    @_input(names.ACTION)
    def _on_action(self, msg: Action) -> None:
        if len(msg.values) != names.ACTION_DIM:
            raise ValueError(f"values holds {len(msg.values)} numbers, expected {names.ACTION_DIM}")
        _finite("values", msg.values)
        _finite("latency", (msg.inference_ms, msg.latency_ms))
        with self.lock:
            self.collector.note_action(self.clock())
        self.exporter.actions.inc()

    @_input(names.INFERENCE_STATS)
    def _on_stats(self, msg: InferenceStats) -> None:
        with self.lock:
            self.collector.note_stats(self.clock(), msg.current_task, msg.fps, msg.mode, msg.model_version)
        self.exporter.stats(msg.current_task, msg.fps)

    @_input(names.LOGS_JSON)
    def _on_log(self, msg: String) -> None:
        entry = json_forms.LOGS.parse(msg.data)  # ProtocolError (a ValueError): counted and dropped
        with self.lock:
            latency_s = self.collector.note_log(self.clock(), entry)
        self.exporter.log_entry(entry["type"], latency_s)
        # One line per entry whatever the sender's formatting; the archive is for machines (jq, pandas).
        if not self.writer.submit(json.dumps(entry, separators=(",", ":"), allow_nan=False)):
            self.exporter.log_dropped.inc()

    @_input(names.SAFETY_STATUS)
    def _on_safety(self, msg: SafetyStatus) -> None:
        state = SafetyState(msg.level)  # ValueError for a level the message does not define
        if msg.status != state.name:
            raise ValueError(f"status {msg.status!r:.40} does not name level {msg.level} ({state.name})")
        with self.lock:
            self.collector.note_safety(self.clock(), msg.status, msg.reason, msg.emergency_stop)
        self.exporter.safety(int(state), msg.emergency_stop)

    @_input(names.RESOURCES_JSON)
    def _on_resources(self, msg: String) -> None:
        self.exporter.resources(json_forms.RESOURCES.parse(msg.data))

    @_input(names.HEALTH_JSON)
    def _on_health(self, msg: String) -> None:
        doc = json_forms.HEALTH.parse(msg.data)
        if not all(isinstance(v, bool) for v in doc["components"].values()):
            raise ProtocolError(f"{names.HEALTH_JSON}: every component must be true or false")
        self.exporter.health(doc["overall_status"], doc["components"])

    @_input(names.ALERTS_JSON)
    def _on_alert(self, msg: String) -> None:
        self.exporter.alert(json_forms.ALERTS.parse(msg.data))

    @_input(names.ROBOT_STATUS_JSON)
    def _on_robot_status(self, msg: String) -> None:
        doc = json_forms.ROBOT_STATUS.parse(msg.data)
        if doc["robot_id"] == self.cfg.robot_id:  # a fleet-wide topic: the other robots' are theirs
            self.exporter.robot_state(doc["status"])
            self.robot_status_s = self.clock()

    def _robot_status_age_s(self) -> float:
        t = self.robot_status_s
        return math.nan if t is None else max(0.0, self.clock() - t)

    # ---------------------------------------------------------------- output
    def _on_tick(self, _event: rospy.timer.TimerEvent) -> None:
        try:
            with self.lock:
                fields = self.collector.metrics(self.clock())
            fields["bad_input"] = self.bad.total
            fields["log_entries_dropped"] = self.writer.dropped + self.writer.errors
            self.pub.publish(String(data=json_forms.METRICS.build(timestamp=self.clock(), **fields)))
        except Exception:  # an exception would end rospy's timer thread: log it and publish on the next tick
            rospy.logerr_throttle(5.0, "monitoring_node: tick failed", exc_info=True)

    def close(self) -> None:
        self.timer.shutdown()
        self.writer.close()
        self.exporter.close()

    # ---------------------------------------------------------------- diagnostics
    def _diag_metrics(self, stat: Status) -> Status:
        with self.lock:
            m = self.collector.metrics(self.clock())
        p = m["performance_summary"]
        stat.summary(OK, f"{m['inference_count']} inferences, {m['action_count']} actions, "
                         f"{m['error_count']} errors")
        for key in ("inference_rate_hz", "action_rate_hz", "error_rate", "last_action_age_s", "current_task"):
            stat.add(key, str(m[key]))
        for key in ("avg_inference_time", "p50_inference_time", "p95_inference_time", "p99_inference_time",
                    "samples"):
            stat.add(f"{key} [s]" if key != "samples" else key, str(p[key]))
        return stat

    def _diag_archive(self, stat: Status) -> Status:
        w = self.writer
        lost = w.dropped + w.errors
        if w.errors:
            stat.summary(ERROR, f"{w.errors} entries lost to write errors: {w.last_error}")
        elif w.dropped:
            stat.summary(WARN, f"{w.dropped} entries dropped (queue of {self.cfg.log_queue_size} full)")
        else:
            stat.summary(OK, f"{w.written} entries written")
        stat.add("file", str(w.archive.path))
        stat.add("written", str(w.written))
        stat.add("lost", str(lost))
        stat.add("backlog", str(w.backlog))
        return stat

    def _diag_exporter(self, stat: Status) -> Status:
        if self.exporter_error:
            stat.summary(ERROR, self.exporter_error)
        else:
            stat.summary(OK, f"serving /metrics on port {self.exporter.port}")
            stat.add("url", f"http://{self.cfg.prometheus_address}:{self.exporter.port}/metrics")
            stat.add("port", str(self.exporter.port))
        return stat



def main() -> None:
    rospy.init_node(names.MONITORING_NODE)
    config = load_config(MonitoringConfig)
    bridge_logging(("vla_monitoring", "vla_msgs"), VlaLogs(rospy.get_name(), config.robot_id))
    node = MonitoringNode(config)
    rospy.loginfo(f"monitoring_node up: vla_logs archived under {node.writer.archive.path}, Prometheus "
                  f"{'port ' + str(node.exporter.port) if not node.exporter_error else 'off'}")
    rospy.spin()
