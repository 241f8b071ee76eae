"""health_node: tracks the stack's components and publishes `vla_health`, `vla/health` and diagnostics."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Callable

import diagnostic_updater
import rosgraph
import rospy
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import String

from vla_msgs.msg import Action, ComponentHealth, HealthStatus, InferenceStats
from vla_safety.config import HealthConfig
from vla_safety.health import CRITICAL, HEALTHY, HealthMonitor, HealthReport
from vla_safety.ros.common import BadInputCounter, bridge_logging, guarded, load_config
from vla_safety.wire import health_json

_DIAG = {HEALTHY: DiagnosticStatus.OK, "degraded": DiagnosticStatus.WARN, CRITICAL: DiagnosticStatus.ERROR}


class _TimeoutTransport(xmlrpc.client.Transport):
    """XML-RPC transport with a connect/read timeout, so a hung node cannot hang the health check."""

    def __init__(self, timeout_s: float):
        super().__init__()
        self._timeout_s = timeout_s

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self._timeout_s
        return conn


def ping_node(master: rosgraph.Master, name: str, timeout_s: float) -> tuple[bool, str]:
    """Like `rosnode ping`: looks the node up on the master and asks it for its pid."""
    try:
        uri = master.lookupNode(rosgraph.names.resolve_name(name, rospy.get_namespace()))
    except rosgraph.MasterError as exc:
        return False, f"not registered with the master ({exc})"
    except (OSError, xmlrpc.client.Error) as exc:
        return False, f"master unreachable: {exc}"
    proxy = xmlrpc.client.ServerProxy(uri, transport=_TimeoutTransport(timeout_s))
    try:
        code, msg, _pid = proxy.getPid(rospy.get_name())
    except (OSError, xmlrpc.client.Error) as exc:
        return False, f"registered at {uri} but not answering: {exc}"
    return (True, "") if code == 1 else (False, f"getPid failed: {msg}")


def check_master(master: rosgraph.Master) -> tuple[bool, str]:
    try:
        master.getPid()
    except (OSError, xmlrpc.client.Error, rosgraph.MasterError) as exc:
        return False, f"master unreachable: {exc}"
    return True, ""


def check_cloud(url: str, timeout_s: float) -> tuple[bool, str]:
    """GETs the cloud service's /health; healthy on HTTP 200 with JSON status ok."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = json.loads(resp.read(65536) or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"cloud health check {url} failed: {exc}"
    if isinstance(body, dict) and body.get("status", "ok") == "ok":
        return True, ""
    return False, f"cloud health check {url} answered {body!r:.120}"


_BAD_INPUT = (ValueError, TypeError, AttributeError, UnicodeError)


class HealthNode:
    def __init__(self, config: HealthConfig, clock: Callable[[], float] = time.monotonic):
        self.cfg = config
        self.clock = clock
        self.monitor = HealthMonitor(config)
        self.bad = BadInputCounter()
        self.lock = threading.Lock()
        self.master = rosgraph.Master(rospy.get_name())
        self.report: HealthReport | None = None

        self.json_pub = rospy.Publisher("vla_health", String, queue_size=5)
        self.typed_pub = rospy.Publisher("vla/health", HealthStatus, queue_size=5)
        self.diag = diagnostic_updater.Updater()
        self.diag.setHardwareID(config.robot_id)
        self.diag.add("health", self._diag_health)
        self.diag.add("inputs", self._diag_inputs)

        # AnyMsg: only arrival matters, never deserialise images here.
        rospy.Subscriber("camera/rgb/image_raw", rospy.AnyMsg, self._on_image, queue_size=1, buff_size=1 << 22)
        rospy.Subscriber("task_command", String, self._on_task, queue_size=5)
        rospy.Subscriber("vla/inference_stats", InferenceStats, self._on_stats, queue_size=5)
        rospy.Subscriber("vla/action", Action, self._on_action, queue_size=5)
        rospy.Timer(rospy.Duration(1.0 / config.publish_rate), self._on_tick)

    @guarded("camera/rgb/image_raw", _BAD_INPUT)
    def _on_image(self, _msg) -> None:
        with self.lock:
            self.monitor.note_frame(self.clock())

    @guarded("task_command", _BAD_INPUT)
    def _on_task(self, msg: String) -> None:
        text = msg.data.strip()
        if not text:
            raise ValueError("empty instruction")
        if text.startswith("{"):
            task = json.loads(text)
            if not isinstance(task, dict) or not isinstance(task.get("description"), str):
                raise ValueError("JSON task_command needs a string 'description'")
            text = task["description"]
        with self.lock:
            self.monitor.note_instruction(self.clock(), text)

    @guarded("vla/inference_stats", _BAD_INPUT)
    def _on_stats(self, msg: InferenceStats) -> None:
        with self.lock:
            self.monitor.note_stats(self.clock(), msg.model_version)

    @guarded("vla/action", _BAD_INPUT)
    def _on_action(self, _msg: Action) -> None:
        with self.lock:
            self.monitor.note_action(self.clock())

    def _probe(self) -> None:
        """Slow checks (network), run outside the lock, each bounded by its timeout."""
        ok, reason = check_master(self.master)
        if ok and self.cfg.cloud_health_url:
            ok, reason = check_cloud(self.cfg.cloud_health_url, self.cfg.cloud_timeout)
        results = [("communication", ok, reason)]
        for name in self.cfg.expected_nodes:
            results.append((name, *ping_node(self.master, name, self.cfg.node_ping_timeout)))
        with self.lock:
            for name, healthy, why in results:
                self.monitor.set_probe(name, healthy, why)

    def _on_tick(self, _event) -> None:
        try:
            self._probe()
            with self.lock:
                report = self.monitor.report(self.clock())
            self.report = report
            self._publish(report)
            self.diag.update()
        except Exception as exc:  # keep reporting on the next tick
            rospy.logerr_throttle(5.0, f"health_node: tick failed: {exc!r}")

    def _publish(self, report: HealthReport) -> None:
        now = rospy.Time.now()
        self.json_pub.publish(String(data=health_json(report, now.to_sec(), self.cfg.robot_id)))
        msg = HealthStatus(robot_id=self.cfg.robot_id, overall_status=report.overall_status)
        msg.header.stamp = now
        msg.components = [ComponentHealth(name=c.name, healthy=c.healthy, reason=c.reason, age_s=c.age_s)
                          for c in report.components]
        self.typed_pub.publish(msg)

    def _diag_health(self, stat):
        report = self.report
        if report is None:
            stat.summary(DiagnosticStatus.WARN, "no report yet")
            return stat
        stat.summary(_DIAG[report.overall_status], report.overall_status)
        for c in report.components:
            stat.add(c.name, "ok" if c.healthy else f"UNHEALTHY: {c.reason}")
        return stat

    def _diag_inputs(self, stat):
        total = self.bad.total + self.monitor.unknown_updates
        stat.summary(DiagnosticStatus.OK if total == 0 else DiagnosticStatus.WARN, f"{total} bad inputs")
        for topic, count in sorted(self.bad.counts.items()):
            stat.add(f"dropped {topic}", str(count))
        stat.add("unknown component updates", str(self.monitor.unknown_updates))
        return stat


def main() -> None:
    rospy.init_node("health_node")
    bridge_logging("vla_safety")
    config = load_config(HealthConfig)
    HealthNode(config)
    rospy.loginfo("health_node up: expected nodes %s, cloud check %s", config.expected_nodes or "none",
                  config.cloud_health_url or "off")
    rospy.spin()
