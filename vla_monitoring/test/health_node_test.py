#!/usr/bin/env python3
"""health_node's reporting, asserted in ROS time: components follow their evidence, language follows the
policy taking up the instruction, expected nodes are pinged, bad task_command input is counted."""

import threading
import unittest

import rospy
import rostest
from diag_recorder import NodeDiagnostics
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.msg import Action, HealthStatus, InferenceStats
from vla_msgs.waiting import wait_until

RED, BLUE = "go to the red cube", "go to the blue ball"


class HealthNodeTest(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.docs: list[dict] = []
        self.typed: HealthStatus | None = None
        self.diag = NodeDiagnostics("health_node")
        self.camera_on = False
        self.acting_on = ""  # the instruction the fake policy acts on; empty: silent
        rospy.Subscriber(names.HEALTH_JSON, String, self._on_health)
        rospy.Subscriber(names.HEALTH, HealthStatus, lambda m: setattr(self, "typed", m))
        self.image_pub = rospy.Publisher(names.CAMERA_IMAGE, Image, queue_size=1)
        self.task_pub = rospy.Publisher(names.TASK_COMMAND, String, queue_size=10)
        self.stats_pub = rospy.Publisher(names.INFERENCE_STATS, InferenceStats, queue_size=1)
        self.action_pub = rospy.Publisher(names.ACTION, Action, queue_size=1)
        threading.Thread(target=self._feed, daemon=True).start()

    def _on_health(self, msg: String) -> None:
        doc = json_forms.HEALTH.parse(msg.data)  # the form itself: a bad document fails the test
        with self.lock:
            self.docs.append(doc)

    def _feed(self) -> None:
        img = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
        rate = rospy.Rate(20)
        while not rospy.is_shutdown():
            if self.camera_on:
                self.image_pub.publish(img)
            task = self.acting_on
            if task:
                self.action_pub.publish(Action(task=task))
                self.stats_pub.publish(InferenceStats(model_version="v1", current_task=task))
            rate.sleep()

    @property
    def doc(self) -> dict:
        with self.lock:
            return self.docs[-1] if self.docs else None

    def wait(self, cond, what: str, timeout_s: float = 5.0):
        def holds():
            doc = self.doc  # one document, judged and returned whole: the next may differ
            return doc if doc is not None and cond(doc) else None
        try:
            return wait_until(holds, timeout_s, what, clock=rospy.get_time)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last vla_health: {self.doc}") from None

    def publish_task(self, text: str) -> None:
        wait_until(lambda: self.task_pub.get_num_connections() > 0, 10.0, "health_node on task_command",
                   clock=rospy.get_time)
        self.task_pub.publish(String(data=text))

    def test_reporting(self):
        self.wait(lambda d: True, "a first vla_health", 15.0)
        d = self.doc
        self.assertEqual(d["robot_id"], "test_robot")
        self.assertIs(d["overall_status"], False)
        self.assertEqual(d["level"], "critical")
        self.assertFalse(d["components"]["vision"])
        self.assertEqual(d["details"]["vision"]["reason"], "no camera image received yet")
        self.assertTrue(d["components"]["language"] and d["components"]["action"])  # no task yet: idle
        self.wait(lambda d: d["components"]["communication"] and d["components"]["health_node_report"],
                  "master and this test node pinged")
        self.assertFalse(self.doc["components"]["ghost_node"])
        self.assertIn("not registered", self.doc["details"]["ghost_node"]["reason"])

        # Bad input: refused by vla_msgs.tasks, counted on /diagnostics, the node keeps reporting.
        for bad in ("{not json", "x" * 300, "go\x01 there", '{"description": 5}'):
            self.publish_task(bad)
        inputs = self.diag.wait("inputs", lambda v: v.get(f"dropped {names.TASK_COMMAND}") == "4",
                                "4 dropped task_command on /diagnostics")
        self.assertIn("task JSON needs a string 'description'", inputs[f"last bad {names.TASK_COMMAND}"])
        self.assertEqual(inputs[f"dropped {names.ACTION}"], "0")
        self.assertTrue(self.doc["components"]["language"])  # a refused command changes no task

        # A task the policy acts on: every component but the ghost node is healthy.
        self.camera_on = True
        self.acting_on = RED
        self.publish_task(RED)
        d = self.wait(lambda d: all(d["components"][c] for c in ("vision", "language", "action", "communication")),
                      "vision, language, action and communication healthy")
        self.assertEqual(d["level"], "degraded")  # ghost_node is still missing
        self.assertIs(d["overall_status"], False)
        wait_until(lambda: self.typed.overall_status == "degraded", 5.0, "vla/health degraded too",
                   clock=rospy.get_time)
        self.assertEqual(self.typed.robot_id, "test_robot")
        typed = {c.name: c for c in self.typed.components}
        self.assertTrue(typed["vision"].healthy and typed["vision"].age_s >= 0)

        # A new instruction the policy does not take up: language goes unhealthy, action does not.
        self.publish_task(BLUE)
        self.wait(lambda d: not d["components"]["language"], "language unhealthy")
        self.assertIn(f"has not taken up instruction '{BLUE}'", self.doc["details"]["language"]["reason"])
        self.assertTrue(self.doc["components"]["action"])
        self.acting_on = BLUE
        self.wait(lambda d: d["components"]["language"], "language healthy again")

        # A task addressed to another robot is not this robot's task.
        sent = rospy.get_time()
        self.publish_task('{"description": "go to the green cylinder", "robot_id": "other_robot"}')
        self.wait(lambda d: d["timestamp"] > sent + 2.0, "reports for 2 s after the other robot's task")
        with self.lock:
            since = [d for d in self.docs if d["timestamp"] > sent]
        self.assertTrue(all(d["components"]["language"] for d in since), since[-1])

        # Idle: the policy and the camera fall silent; language and action stay healthy, vision does not.
        self.publish_task("Stop.")
        self.acting_on = ""
        self.camera_on = False
        self.wait(lambda d: not d["components"]["vision"], "vision unhealthy")
        self.assertIn("camera silent", self.doc["details"]["vision"]["reason"])
        self.wait(lambda d: d["timestamp"] > rospy.get_time() - 0.5 and d["components"]["language"]
                  and d["components"]["action"], "idle language and action healthy", 3.0)
        self.assertEqual(self.doc["level"], "critical")
        wait_until(lambda: "test_robot" in self.diag.hardware_ids, 5.0, "diagnostics with hardware_id test_robot",
                   clock=rospy.get_time)


if __name__ == "__main__":
    rospy.init_node("health_node_report")
    rostest.rosrun("vla_monitoring", "health_node_report", HealthNodeTest)
