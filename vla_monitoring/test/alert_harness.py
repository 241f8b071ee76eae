"""What the alert_node rostests share: well-formed input documents, a loopback webhook receiver, the node's
outputs as they arrive (vla_alerts parsed by its form, vla/alerts, /diagnostics), and waits in ROS time."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import rospy
from diag_recorder import NodeDiagnostics
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.msg import Alert
from vla_msgs.waiting import wait_until

ROBOT = "test_robot"


def health(**components: bool) -> str:
    healthy = all(components.values())
    return json_forms.HEALTH.build(timestamp=rospy.get_time(), components=components, overall_status=healthy,
                                   level="healthy" if healthy else "degraded", robot_id=ROBOT)


def resources(cpu: float) -> str:
    return json_forms.RESOURCES.build(timestamp=rospy.get_time(), cpu_percent=cpu, memory_percent=30.0,
                                      disk_percent=40.0, gpu_percent=None, gpu_memory_percent=None, nodes={})


def metrics(error_rate: float) -> str:
    return json_forms.METRICS.build(timestamp=rospy.get_time(), inference_count=100, error_count=int(error_rate * 100),
                                    action_count=100, uptime_seconds=10.0, error_rate=error_rate,
                                    performance_summary={"avg_inference_time": 0.02})


def safety(estop: bool) -> str:
    return json_forms.SAFETY_STATUS.build(timestamp=rospy.get_time(), status="EMERGENCY_STOP" if estop else "OK",
                                          reason="test" if estop else "", emergency_stop=estop, robot_id=ROBOT)


def robot_status(robot_id: str, status: str) -> str:
    return json_forms.ROBOT_STATUS.build(timestamp=rospy.get_time(), robot_id=robot_id, status=status,
                                         position=[0.0, 0.0, 0.0], battery=80.0, current_task_id=None,
                                         capabilities=[])


class WebhookReceiver:
    """http.server on a free loopback port, recording each POSTed JSON body."""

    def __init__(self):
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AlertOutputs:
    """alert_node's outputs: every vla_alerts document (through json_forms.ALERTS: a bad one fails the
    test), every vla/alerts message, and the node's /diagnostics by task."""

    def __init__(self, node: str = "alert_node"):
        self.node = node
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.arrived: list[float] = []
        self.typed: list[Alert] = []
        self.diag = NodeDiagnostics(node)
        rospy.Subscriber(names.ALERTS_JSON, String, self._on_json, queue_size=100)
        rospy.Subscriber(names.ALERTS, Alert, self._on_typed, queue_size=100)

    def _on_json(self, msg: String) -> None:
        doc = json_forms.ALERTS.parse(msg.data)
        with self.lock:
            self.events.append(doc)
            self.arrived.append(rospy.get_time())

    def _on_typed(self, msg: Alert) -> None:
        with self.lock:
            self.typed.append(msg)

    def sequence(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(e["alert_id"], e["state"]) for e in self.events]

    def wait_event(self, alert_id: str, state: str, timeout_s: float = 10.0) -> dict:
        """The first vla_alerts event of `alert_id` in `state`."""
        def found():
            with self.lock:
                return next((e for e in self.events if (e["alert_id"], e["state"]) == (alert_id, state)), None)
        try:
            return wait_until(found, timeout_s, f"{alert_id} {state}", clock=rospy.get_time)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; events so far: {self.sequence()}") from None


def wait_subscribed(publishers, timeout_s: float = 20.0) -> None:
    for pub in publishers:
        wait_until(lambda pub=pub: pub.get_num_connections() > 0, timeout_s, f"a subscriber on {pub.resolved_name}",
                   clock=rospy.get_time)
