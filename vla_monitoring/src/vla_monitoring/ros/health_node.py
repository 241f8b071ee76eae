"""health_node: feeds the stack's topics and probes into HealthMonitor; publishes vla_health, vla/health
and /diagnostics.

Time is ROS time throughout (arrival times, the publish timer, probe deadlines), so the simulator's
/clock drives the node. The network probes (master, cloud, expected nodes) run on ProbeRunner's
pool, never in the timer thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import rosgraph
import rospy
from std_msgs.msg import String

from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.health import CLOUD_PROBE, MASTER_PROBE, HealthConfig, HealthMonitor, HealthReport
from vla_monitoring.probes import Probe, ProbeRunner, check_cloud
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import ERROR, OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.master import check_master, ping_node
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.msg import Action, ComponentHealth, HealthStatus, InferenceStats
from vla_msgs.states import HealthLevel
from vla_msgs.tasks import parse_task_command

_DIAG_LEVEL = {HealthLevel.HEALTHY: OK, HealthLevel.DEGRADED: WARN, HealthLevel.CRITICAL: ERROR}
_BAD_INPUT = (ValueError, TypeError, AttributeError, UnicodeError)


def make_probes(cfg: HealthConfig, master_uri: str, caller_id: str,
                resolve: Callable[[str], str]) -> list[Probe]:
    t = cfg.node_ping_timeout
    probes = [Probe(MASTER_PROBE, lambda: check_master(master_uri, caller_id, t), t)]
    if cfg.cloud_health_url:
        url, ct = cfg.cloud_health_url, cfg.cloud_timeout
        probes.append(Probe(CLOUD_PROBE, lambda: check_cloud(url, ct), ct))
    for node in dict.fromkeys(cfg.expected_nodes):
        full = resolve(node)
        probes.append(Probe(node, lambda full=full: ping_node(master_uri, caller_id, full, t), t))
    return probes


class HealthNode:
    def __init__(self, config: HealthConfig):
        self.cfg = config
        self.clock = rospy.get_time
        self.monitor = HealthMonitor(config)
        self.bad = BadInputCounter()
        self.lock = threading.Lock()
        self.report: HealthReport | None = None
        self.probes = ProbeRunner(make_probes(config, rosgraph.get_master_uri(), rospy.get_name(),
                                              rospy.resolve_name), clock=self.clock)

        self.json_pub = rospy.Publisher(names.HEALTH_JSON, String, queue_size=5)
        self.typed_pub = rospy.Publisher(names.HEALTH, HealthStatus, queue_size=5)
        self.diag = Diagnostics(config.robot_id, period_s=1.0)
        self.diag.task("health", self._diag_health)
        self.diag.bad_input(self.bad, (names.CAMERA_IMAGE, names.TASK_COMMAND, names.INFERENCE_STATS, names.ACTION))

        # AnyMsg: only arrival matters, never deserialise images here.
        rospy.Subscriber(names.CAMERA_IMAGE, rospy.AnyMsg, self._on_image, queue_size=1, buff_size=1 << 22)
        rospy.Subscriber(names.TASK_COMMAND, String, self._on_task, queue_size=10)
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self._on_stats, queue_size=5)
        rospy.Subscriber(names.ACTION, Action, self._on_action, queue_size=10)
        self.timer = rospy.Timer(rospy.Duration(1.0 / config.publish_rate), self._on_tick)
        rospy.on_shutdown(self.probes.close)

    @counted_callback(names.CAMERA_IMAGE, _BAD_INPUT)
    def _on_image(self, _msg: rospy.AnyMsg) -> None:
        with self.lock:
            self.monitor.note_frame(self.clock())

    @counted_callback(names.TASK_COMMAND, _BAD_INPUT)
    def _on_task(self, msg: String) -> None:
        task = parse_task_command(msg.data)  # TaskRejectedError (a ValueError): counted and dropped
        if task.robot_id and task.robot_id != self.cfg.robot_id:
            return  # addressed to another robot on a shared topic
        with self.lock:
            self.monitor.note_task(self.clock(), task)

    @counted_callback(names.INFERENCE_STATS, _BAD_INPUT)
    def _on_stats(self, msg: InferenceStats) -> None:
        with self.lock:
            self.monitor.note_policy_task(self.clock(), msg.current_task)

    @counted_callback(names.ACTION, _BAD_INPUT)
    def _on_action(self, msg: Action) -> None:
        with self.lock:
            self.monitor.note_action(self.clock(), msg.task)

    def _on_tick(self, _event: rospy.timer.TimerEvent) -> None:
        try:
            results = self.probes.poll()  # never blocks: probes run on the pool
            with self.lock:
                for name, result in results.items():
                    self.monitor.set_probe(name, result.healthy, result.reason)
                if not self.monitor.probed():
                    # no verdict before the first check of each probe (each bounded by its deadline): a
                    # "critical: not checked yet" at every start-up made agents refuse or hand back tasks
                    return
                report = self.monitor.report(self.clock())
            self.report = report
            self._publish(report)
        except Exception:  # an exception would end rospy's timer thread: log it and report on the next tick
            rospy.logerr_throttle(5.0, "health_node: tick failed", exc_info=True)

    def _publish(self, report: HealthReport) -> None:
        now = rospy.Time.now()
        text = json_forms.HEALTH.build(
            timestamp=now.to_sec(), robot_id=self.cfg.robot_id, overall_status=report.healthy,
            level=report.level.value, components={c.name: c.healthy for c in report.components},
            details={c.name: {"healthy": c.healthy, "reason": c.reason, "age_s": round(c.age_s, 3)}
                     for c in report.components})
        self.json_pub.publish(String(data=text))
        msg = HealthStatus(robot_id=self.cfg.robot_id, overall_status=report.level.value)
        msg.header.stamp = now
        msg.components = [ComponentHealth(name=c.name, healthy=c.healthy, reason=c.reason, age_s=c.age_s)
                          for c in report.components]
        self.typed_pub.publish(msg)

    def _diag_health(self, stat: Status) -> Status:
        report = self.report
        if report is None:
            stat.summary(WARN, "no report yet")
            return stat
        stat.summary(_DIAG_LEVEL[report.level], report.level.value)
        for c in report.components:
            stat.add(c.name, "ok" if c.healthy else f"UNHEALTHY: {c.reason}")
        stat.add("probes started", str(self.probes.runs))
        stat.add("probes running", ", ".join(self.probes.running()) or "none")
        return stat



def main() -> None:
    rospy.init_node(names.HEALTH_NODE)
    config = load_config(HealthConfig)
    bridge_logging(("vla_monitoring", "vla_msgs"), VlaLogs(rospy.get_name(), config.robot_id))
    HealthNode(config)
    rospy.loginfo("health_node up: expected nodes %s, cloud check %s", config.expected_nodes or "none",
                  config.cloud_health_url or "off")
    rospy.spin()
