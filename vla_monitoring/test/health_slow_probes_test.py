#!/usr/bin/env python3
"""Hung expected nodes are reported unhealthy, each with why, while vla_health keeps its rate (hztest)."""

import unittest

import rospy
import rostest
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.waiting import wait_until

STUCK = ("stuck_a", "stuck_b", "stuck_c")


class SlowProbesTest(unittest.TestCase):
    def setUp(self):
        self.doc: dict | None = None
        rospy.Subscriber(names.HEALTH_JSON, String, self._on_health)

    def _on_health(self, msg: String) -> None:
        self.doc = json_forms.HEALTH.parse(msg.data)

    def test_hung_nodes_are_unhealthy_with_a_reason(self):
        def all_stuck_reported():
            doc = self.doc
            return doc is not None and all(
                not doc["components"][n] and ("not answering" in doc["details"][n]["reason"]
                                              or "no answer in 0.9 s" in doc["details"][n]["reason"])
                for n in STUCK)

        wait_until(all_stuck_reported, 20.0, "every stuck node reported as not answering", clock=rospy.get_time)
        doc = self.doc
        self.assertIs(doc["overall_status"], False)
        self.assertEqual(doc["level"], "critical")  # no camera either
        self.assertTrue(doc["components"]["communication"], doc["details"]["communication"])


if __name__ == "__main__":
    rospy.init_node("health_slow_probes_test")
    rostest.rosrun("vla_monitoring", "health_slow_probes_reasons", SlowProbesTest)
