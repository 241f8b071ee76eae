#!/usr/bin/env python3
"""alert_node on scripted input, asserted in ROS time: each default rule's alert fires once when its
condition starts (not before its for_s), and resolves once when it clears, on vla_alerts, vla/alerts and
the webhook alike; another robot's status is left alone.

The node is started here (not by the .test) because its ~webhook_url names this script's receiver, whose
port is only known once it is bound."""

import tempfile
import threading
import unittest
from pathlib import Path

import rospy
import rostest
from alert_harness import (
    ROBOT,
    AlertOutputs,
    WebhookReceiver,
    health,
    metrics,
    resources,
    robot_status,
    safety,
    wait_subscribed,
)
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.launching import ProcessGroup
from vla_msgs.msg import Action, InferenceStats
from vla_msgs.waiting import wait_until

RED = "go to the red cube"


class AlertNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.receiver = WebhookReceiver()
        log = Path(tempfile.mkdtemp(prefix="alert_node_test_")) / "alert_node.log"
        rospy.loginfo("alert_node's output: %s", log)
        cls.node = ProcessGroup(["rosrun", "vla_monitoring", "alert_node", "__name:=alert_node",
                                 f"_robot_id:={ROBOT}", f"_webhook_url:={cls.receiver.url}",
                                 "_webhook_backoff_s:=0.1"], log)

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        cls.receiver.close()

    def setUp(self):
        self.out = AlertOutputs()
        self.lock = threading.Lock()
        # The documents the feeder republishes at 4 Hz, as their senders do at 1..20 Hz.
        self.docs = {names.HEALTH_JSON: lambda: health(vision=True, action=True),
                     names.RESOURCES_JSON: lambda: resources(20.0),
                     names.METRICS_JSON: lambda: metrics(0.0),
                     names.SAFETY_STATUS_JSON: lambda: safety(False)}
        self.pubs = {topic: rospy.Publisher(topic, String, queue_size=10) for topic in self.docs}
        self.status_pub = rospy.Publisher(names.ROBOT_STATUS_JSON, String, queue_size=10)
        self.task_pub = rospy.Publisher(names.TASK_COMMAND, String, queue_size=10)
        self.action_pub = rospy.Publisher(names.ACTION, Action, queue_size=10)
        self.stats_pub = rospy.Publisher(names.INFERENCE_STATS, InferenceStats, queue_size=10)
        self.acting = False
        self.statuses = {ROBOT: "busy", "robot_2": "busy"}
        wait_subscribed([*self.pubs.values(), self.status_pub, self.task_pub, self.action_pub])
        threading.Thread(target=self._feed, daemon=True).start()

    def _feed(self) -> None:
        rate = rospy.Rate(4)
        while not rospy.is_shutdown():
            with self.lock:
                docs = {topic: make() for topic, make in self.docs.items()}
                statuses = dict(self.statuses)
                acting = self.acting
            for topic, text in docs.items():
                self.pubs[topic].publish(String(data=text))
            for robot, status in statuses.items():
                self.status_pub.publish(String(data=robot_status(robot, status)))
            if acting:
                for _ in range(2):
                    self.action_pub.publish(Action(values=[0.1, 0, 0, 0, 0, 0], task=RED))
            rate.sleep()

    def set_doc(self, topic: str, make) -> float:
        """Changes what the feeder publishes; returns the ROS time of the change."""
        with self.lock:
            self.docs[topic] = make
            return rospy.get_time()

    def fire_and_resolve(self, alert_id: str, fire, clear, level: str, min_delay_s: float = 0.0) -> dict:
        t0 = fire()
        firing = self.out.wait_event(alert_id, "firing", timeout_s=min_delay_s + 10.0)
        self.assertEqual(firing["level"], level)
        self.assertEqual(firing["robot_id"], ROBOT)
        self.assertGreaterEqual(firing["timestamp"], t0 + min_delay_s,
                                f"{alert_id} fired before its condition held {min_delay_s} s")
        self.out.diag.wait("alerts", lambda d: alert_id in d, f"{alert_id} listed as firing on /diagnostics")
        clear()
        resolved = self.out.wait_event(alert_id, "resolved")
        self.assertEqual(resolved["level"], level)
        self.assertTrue(resolved["message"].startswith("resolved after"), resolved["message"])
        return firing

    def test_alerts_fire_and_resolve(self):
        out = self.out
        self.fire_and_resolve(
            "health_component_down:vision",
            lambda: self.set_doc(names.HEALTH_JSON, lambda: health(vision=False, action=True)),
            lambda: self.set_doc(names.HEALTH_JSON, lambda: health(vision=True, action=True)), "ERROR")
        cpu = self.fire_and_resolve(
            "high_cpu", lambda: self.set_doc(names.RESOURCES_JSON, lambda: resources(97.0)),
            lambda: self.set_doc(names.RESOURCES_JSON, lambda: resources(40.0)), "WARNING", min_delay_s=5.0)
        self.assertEqual(cpu["value"], 97.0)
        self.assertEqual(cpu["message"], "CPU at 97 %, above 90 %")
        self.fire_and_resolve(
            "error_rate", lambda: self.set_doc(names.METRICS_JSON, lambda: metrics(0.5)),
            lambda: self.set_doc(names.METRICS_JSON, lambda: metrics(0.0)), "ERROR")
        self.fire_and_resolve(
            "emergency_stop", lambda: self.set_doc(names.SAFETY_STATUS_JSON, lambda: safety(True)),
            lambda: self.set_doc(names.SAFETY_STATUS_JSON, lambda: safety(False)), "CRITICAL")

        def start_task() -> float:
            t0 = rospy.get_time()  # before publishing: the node may take the message in before publish() returns
            self.task_pub.publish(String(data=RED))
            return t0

        def act() -> None:
            with self.lock:
                self.acting = True

        self.fire_and_resolve("no_action", start_task, act, "ERROR", min_delay_s=2.0)
        self.task_pub.publish(String(data="stop"))
        with self.lock:
            self.acting = False

        def status_of(robot: str, status: str):
            def change():
                with self.lock:
                    self.statuses[robot] = status
                return rospy.get_time()
            return change

        status_of("robot_2", "offline")()  # another robot's status: not this robot's node's business
        self.fire_and_resolve(f"robot_offline:{ROBOT}", status_of(ROBOT, "offline"), status_of(ROBOT, "busy"),
                              "WARNING")

        expected = [(alert_id, state) for alert_id in (
            "health_component_down:vision", "high_cpu", "error_rate", "emergency_stop", "no_action",
            f"robot_offline:{ROBOT}") for state in ("firing", "resolved")]
        self.assertEqual(out.sequence(), expected, "each alert fires once and resolves once, nothing else")

        # vla/alerts carries the same events (a resolved one as INFO); the webhook received each of them
        wait_until(lambda: len(out.typed) == len(expected), 10.0, "every event on vla/alerts", clock=rospy.get_time)
        self.assertEqual([(m.type, m.level) for m in out.typed],
                         [(e["type"], 0 if e["state"] == "resolved" else {"WARNING": 1, "ERROR": 2, "CRITICAL": 3}[
                             e["level"]]) for e in out.events])
        self.assertEqual(out.typed[0].robot_id, ROBOT)
        self.assertTrue(out.typed[1].message.startswith("resolved"))
        wait_until(lambda: len(self.receiver.bodies) == len(expected), 10.0, "every event POSTed to the webhook",
                   clock=rospy.get_time)
        self.assertEqual([(b["alert_id"], b["state"]) for b in self.receiver.bodies], expected)
        sent = f"{len(expected)} sent, 0 failed, 0 dropped"
        wait_until(lambda: out.diag.message("webhook") == sent, 10.0, f"/diagnostics webhook: {sent}",
                   clock=rospy.get_time)
        self.assertTrue(self.node.alive(), self.node.tail())


if __name__ == "__main__":
    rospy.init_node("alert_node_test")
    rostest.rosrun("vla_monitoring", "alert_node_fire_resolve", AlertNodeTest)
