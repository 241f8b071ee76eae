#!/usr/bin/env python3
"""health_node reporting: components follow their evidence, expected nodes are pinged, bad input survives."""

import json
import threading
import time
import unittest

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray
from safety_harness import wait_for
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vla_msgs.msg import Action, HealthStatus, InferenceStats


class HealthNodeTest(unittest.TestCase):
    def setUp(self):
        self.json: dict | None = None
        self.typed: HealthStatus | None = None
        self.diag_ids: set[str] = set()
        self.camera_on = False
        rospy.Subscriber("vla_health", String, lambda m: setattr(self, "json", json.loads(m.data)))
        rospy.Subscriber("vla/health", HealthStatus, lambda m: setattr(self, "typed", m))
        rospy.Subscriber("/diagnostics", DiagnosticArray, self._on_diag)
        self.image_pub = rospy.Publisher("camera/rgb/image_raw", Image, queue_size=1)
        self.task_pub = rospy.Publisher("task_command", String, queue_size=1, latch=True)
        self.stats_pub = rospy.Publisher("vla/inference_stats", InferenceStats, queue_size=1)
        self.action_pub = rospy.Publisher("vla/action", Action, queue_size=1)
        threading.Thread(target=self._feed, daemon=True).start()

    def _on_diag(self, msg):
        self.diag_ids |= {s.hardware_id for s in msg.status if "health_node" in s.name}

    def _feed(self):
        img = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
        while not rospy.is_shutdown():
            if self.camera_on:
                self.image_pub.publish(img)
                self.action_pub.publish(Action(task="go to the red cube"))
                self.stats_pub.publish(InferenceStats(model_version="v1"))
            time.sleep(0.05)

    def wait_for(self, pred, timeout=5.0):
        return wait_for(pred, timeout, period=0.05)

    def test_reporting(self):
        self.assertTrue(self.wait_for(lambda: self.json is not None, 10))
        j = self.json
        self.assertIsInstance(j["timestamp"], float)
        self.assertEqual(j["robot_id"], "test_robot")
        self.assertEqual(j["overall_status"], "critical")
        self.assertFalse(j["components"]["vision"])
        self.assertEqual(j["details"]["vision"]["reason"], "no camera image received yet")
        self.assertTrue(self.wait_for(lambda: self.json["components"]["communication"]))
        self.assertTrue(self.wait_for(lambda: self.json["components"]["health_node_report"]))
        self.assertFalse(self.json["components"]["ghost_node"])
        self.assertIn("not registered", self.json["details"]["ghost_node"]["reason"])

        self.task_pub.publish(String(data="{not json"))  # bad input: counted, survived
        time.sleep(0.2)
        self.camera_on = True
        self.task_pub.publish(String(data="go to the red cube"))
        self.assertTrue(self.wait_for(lambda: all(self.json["components"][c] for c in
                                                  ("vision", "language", "action", "communication")), 5), self.json)
        self.assertEqual(self.json["overall_status"], "degraded")  # ghost_node is still missing
        names = {c.name: c for c in self.typed.components}
        self.assertTrue(names["vision"].healthy and names["vision"].age_s >= 0)
        self.assertEqual(self.typed.robot_id, "test_robot")

        self.camera_on = False
        self.assertTrue(self.wait_for(lambda: not self.json["components"]["vision"], 3))
        self.assertIn("camera silent", self.json["details"]["vision"]["reason"])
        self.assertEqual(self.json["overall_status"], "critical")
        self.assertTrue(self.wait_for(lambda: "test_robot" in self.diag_ids, 5), self.diag_ids)


if __name__ == "__main__":
    rospy.init_node("health_node_report")
    rostest.rosrun("vla_safety", "health_node_report", HealthNodeTest)
