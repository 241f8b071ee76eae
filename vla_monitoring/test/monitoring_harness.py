"""What the monitoring_node rostests share: the node's outputs as they arrive (vla_metrics, /diagnostics),
well-formed inputs to publish, and waits in ROS time."""

from __future__ import annotations

import threading
import urllib.request

import rospy
from diag_recorder import NodeDiagnostics
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.msg import Action
from vla_msgs.waiting import wait_until

NODE = "monitoring_node"


def log_entry(kind: str, **fields) -> String:
    """A vla_logs entry in its form (inference, action, error or log), fields overriding the defaults."""
    base = {"inference": {"input_size": 9216, "output_action": [0.1, 0, 0, 0, 0, 0.2], "inference_time_ms": 2.0,
                          "sequence_number": 0},
            "action": {"action": [0.1, 0, 0, 0, 0, 0.2], "task": "go to the red cube"},
            "error": {"error_type": "undecodable_frame", "error_message": "bad jpeg", "context": {"seq": 1}},
            "log": {"level": "INFO", "node": "/test", "message": "hello"}}[kind]
    return String(data=json_forms.LOGS.build(timestamp=rospy.get_time(), type=kind, node="/test",
                                             robot_id="test_robot", **{**base, **fields}))


def action(task: str = "go to the red cube") -> Action:
    msg = Action(values=[0.1, 0.0, 0.0, 0.0, 0.0, 0.2], task=task, model_version="test", source="edge",
                 inference_ms=2.0, latency_ms=3.0, chunk_index=0, chunk_length=1)
    msg.header.stamp = rospy.Time.now()
    return msg


class MonitoringOutputs:
    """Subscribes to vla_metrics (each parsed by its form: a bad document fails the test) and to
    monitoring_node's /diagnostics."""

    def __init__(self):
        self.lock = threading.Lock()
        self.metrics: list[dict] = []
        self.diag = NodeDiagnostics(NODE)
        rospy.Subscriber(names.METRICS_JSON, String, self._on_metrics, queue_size=50)

    def _on_metrics(self, msg: String) -> None:
        doc = json_forms.METRICS.parse(msg.data)
        with self.lock:
            self.metrics.append(doc)

    @property
    def latest(self) -> dict | None:
        with self.lock:
            return self.metrics[-1] if self.metrics else None

    def wait_metrics(self, cond, what: str, timeout_s: float = 10.0) -> dict:
        """The first vla_metrics document for which cond holds; fails with the last one seen."""
        def holds():
            doc = self.latest
            return doc if doc is not None and cond(doc) else None
        try:
            return wait_until(holds, timeout_s, what, clock=rospy.get_time)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last vla_metrics: {self.latest}") from None

    def exporter_port(self) -> int:
        values = self.diag.wait("exporter", lambda v: "port" in v, "the exporter's port on /diagnostics")
        return int(values["port"])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def wait_subscribed(publishers, timeout_s: float = 15.0) -> None:
    """Until monitoring_node is connected to every publisher (messages before that are lost)."""
    for pub in publishers:
        wait_until(lambda pub=pub: pub.get_num_connections() > 0, timeout_s, f"{NODE} on {pub.resolved_name}",
                   clock=rospy.get_time)
