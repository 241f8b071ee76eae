"""dashboard_node: feeds each robot's monitoring topics and the fleet's /robot_status into DashboardState
and serves the page (vla_monitoring.dashboard_web) from a thread; /diagnostics says where and how it serves.

Per robot (the namespaces in ~robots, or the node's own): vla/inference_stats, vla_metrics, vla_resources,
vla_safety_status, vla_health, vla_alerts. Arrival times are ROS time (the simulator's /clock in a demo).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import rospy
from std_msgs.msg import String

from vla_monitoring.config import CONFIG_EXIT_CODE
from vla_monitoring.dashboard import DashboardConfig, DashboardState, InferenceSample
from vla_monitoring.dashboard_web import Broadcaster, WebServer, make_app
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import names
from vla_msgs.msg import InferenceStats

_BAD_INPUT = (ValueError, TypeError, AttributeError, UnicodeError)
# Exit code when the page cannot be served (port taken, Chart.js missing): a setup problem like a bad param.
_SERVE_EXIT_CODE = CONFIG_EXIT_CODE
_START_TIMEOUT_S = 10.0
# Per-robot JSON inputs: topic -> the state's method for it.
_JSON_INPUTS: dict[str, str] = {
    names.METRICS_JSON: "metrics",
    names.RESOURCES_JSON: "resources",
    names.SAFETY_STATUS_JSON: "safety",
    names.HEALTH_JSON: "health",
    names.ALERTS_JSON: "alert",
}


def _topic(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}" if namespace else name


def sample_of(msg: InferenceStats) -> InferenceSample:
    return InferenceSample.checked(
        fps=msg.fps, latency_ms_mean=msg.inference_ms_mean, latency_ms_p50=msg.inference_ms_p50,
        latency_ms_p99=msg.inference_ms_p99, mode=msg.mode, model_version=msg.model_version,
        current_task=msg.current_task, inference_count=msg.inference_count, action_count=msg.action_count,
        error_count=msg.error_count)


class DashboardNode:
    def __init__(self, config: DashboardConfig, state: DashboardState, server: WebServer):
        self.cfg = config
        self.state = state
        self.server = server
        self.clock = rospy.get_time
        self.sources: list[str] = []
        for robot_id in state.robot_ids:
            ns = state.namespace_of(robot_id)
            self._subscribe(_topic(ns, names.INFERENCE_STATS), InferenceStats,
                            lambda msg, rid=robot_id: state.inference_stats(rid, sample_of(msg), self.clock()))
            for topic, method in _JSON_INPUTS.items():
                update = getattr(state, method)
                self._subscribe(_topic(ns, topic), String,
                                lambda msg, rid=robot_id, update=update: update(rid, msg.data, self.clock()),
                                queue_size=50)
        self._subscribe(names.ROBOT_STATUS_JSON, String, lambda msg: state.robot_status(msg.data, self.clock()),
                        queue_size=100)
        self.diag = Diagnostics(config.robot_id if not config.robots else "fleet", period_s=1.0)
        self.diag.task("dashboard", self._diag_dashboard)
        self.diag.bad_input(self.state.bad, self.sources)

    def _subscribe(self, topic: str, msg_type: type, handle: Callable, queue_size: int = 10) -> None:
        """Every input goes through the one counted-callback wrapper, counted under its resolved name."""
        source = rospy.resolve_name(topic)
        self.sources.append(source)

        @counted_callback(source, _BAD_INPUT, counter=lambda node: node.state.bad)
        def callback(_node: DashboardNode, msg) -> None:
            handle(msg)

        rospy.Subscriber(topic, msg_type, functools.partial(callback, self), queue_size=queue_size)

    def _diag_dashboard(self, stat: Status) -> Status:
        if self.server.alive:
            stat.summary(OK, f"serving {self.server.url}")
        else:
            stat.summary(WARN, "web server stopped")
        stat.add("url", self.server.url)
        stat.add("pages connected", str(self.server.clients))
        stat.add("robots", ", ".join(self.state.robot_ids))
        return stat



def _fatal(message: str) -> None:
    rospy.logfatal(f"{rospy.get_name()}: {message}")
    sys.exit(_SERVE_EXIT_CODE)


def main() -> None:
    rospy.init_node(names.DASHBOARD_NODE)
    config = load_config(DashboardConfig)
    bridge_logging(("vla_monitoring", "vla_msgs", "uvicorn.error"),
                   VlaLogs(rospy.get_name(), config.robot_id))
    state = DashboardState(config)
    broadcaster = Broadcaster()
    state.on_change = broadcaster.notify
    if not Path(config.chart_js).is_file():
        _fatal(f"~chart_js: no file at {config.chart_js} (install Debian's libjs-chart.js)")
    try:
        server = WebServer(make_app(state, rospy.get_time, broadcaster), config.host, config.port, broadcaster)
    except OSError as exc:
        _fatal(f"cannot serve on {config.host}:{config.port} (~host, ~port): {exc}")
    server.start()
    DashboardNode(config, state, server)
    rospy.on_shutdown(server.stop)
    if not _wait_started(server):
        _fatal("the web server did not start (see the log above)")
    rospy.loginfo("dashboard_node: %s for %s", server.url, ", ".join(state.robot_ids))
    rospy.spin()


def _wait_started(server: WebServer) -> bool:
    """Waits (wall time: the server's start-up is not robot time) until uvicorn serves or its thread ended."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline and server.alive and not server.started:
        time.sleep(0.02)
    return server.started
