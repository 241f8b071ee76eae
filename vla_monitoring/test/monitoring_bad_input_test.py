#!/usr/bin/env python3
"""Garbage on each of monitoring_node's eight inputs: the node keeps running, counts every bad message under
its topic (/diagnostics `inputs`, /metrics vla_monitoring_bad_input_total), and counts nothing else from it."""

import json
import math
import unittest

import rospy
import rostest
from monitoring_harness import NODE, MonitoringOutputs, action, log_entry, scrape, wait_subscribed
from prometheus_client.parser import text_string_to_metric_families
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.msg import Action, InferenceStats, SafetyStatus


def action_with(**fields) -> Action:
    msg = action()
    for k, v in fields.items():
        setattr(msg, k, v)
    return msg


STATUS = {"timestamp": 1.0, "robot_id": "test_robot", "status": "busy", "position": [0, 0, 0], "battery": 80.0,
          "current_task_id": "t1", "capabilities": []}
ALERT = {"timestamp": 1.0, "level": "WARNING", "type": "high_cpu", "message": "m", "value": 95.0}
def garbage() -> dict:
    """Per topic: its message type and the bad messages sent on it (built after init_node: stamps need ROS time)."""
    return {
    names.ACTION: (Action, [action_with(values=[0.1, 0.2]), action_with(values=[math.nan] * 6),
                            action_with(latency_ms=math.inf)]),
    names.INFERENCE_STATS: (InferenceStats, [InferenceStats(fps=math.nan), InferenceStats(fps=-3.0)]),
    names.LOGS_JSON: (String, [String(data="not json"), String(data="[1, 2]"), String(data='{"type": "inference"}'),
                               String(data=json.dumps({"timestamp": 1.0, "type": "bogus"})),
                               String(data='{"timestamp": NaN, "type": "log", "level": "x", "node": "n", '
                                           '"message": "m"}')]),
    names.SAFETY_STATUS: (SafetyStatus, [SafetyStatus(level=9, status="OK"), SafetyStatus(level=0, status="STOPPED")]),
    names.RESOURCES_JSON: (String, [String(data="{}"), String(data=json.dumps(
        {"timestamp": 1.0, "cpu_percent": "high", "memory_percent": 1.0, "nodes": {}}))]),
    names.HEALTH_JSON: (String, [String(data=""), String(data=json.dumps(
        {"timestamp": 1.0, "components": {"vision": "yes"}, "overall_status": True, "level": "healthy"}))]),
    names.ALERTS_JSON: (String, [String(data=json.dumps({**ALERT, "state": "maybe"})),
                                 String(data=json.dumps({**ALERT, "level": "PANIC"}))]),
    names.ROBOT_STATUS_JSON: (String, [String(data=json.dumps({**STATUS, "status": "asleep"})),
                                       String(data=json.dumps({**STATUS, "battery": None}))]),
    }


class MonitoringBadInputTest(unittest.TestCase):
    def setUp(self):
        self.out = MonitoringOutputs()
        self.garbage = garbage()
        self.pubs = {topic: rospy.Publisher(topic, msg_type, queue_size=20)
                     for topic, (msg_type, _bad) in self.garbage.items()}
        wait_subscribed(self.pubs.values())

    def test_garbage_is_counted_per_topic_and_nothing_else(self):
        self.out.wait_metrics(lambda m: True, "a first vla_metrics")
        for topic, (_type, bad) in self.garbage.items():
            for msg in bad:
                self.pubs[topic].publish(msg)
        expected = {topic: len(bad) for topic, (_type, bad) in self.garbage.items()}

        def all_counted(values):
            return all(values.get(f"dropped {t}") == str(n) for t, n in expected.items())
        values = self.out.diag.wait("inputs", all_counted, "every bad message counted under its topic")
        for topic in expected:
            self.assertIn(f"last bad {topic}", values)
        total = sum(expected.values())
        self.assertEqual(self.out.diag.level("inputs"), 1)  # WARN
        m = self.out.wait_metrics(lambda m: m["bad_input"] == total, f"bad_input {total} in vla_metrics")
        self.assertEqual((m["inference_count"], m["action_count"], m["error_count"]), (0, 0, 0))
        self.assertIsNone(m["safety"])
        self.assertIsNone(m["current_task"])

        # Still running, and valid input still counts.
        self.pubs[names.ACTION].publish(action())
        self.pubs[names.LOGS_JSON].publish(log_entry("inference", inference_time_ms=4.0))
        self.out.wait_metrics(lambda m: (m["inference_count"], m["action_count"]) == (1, 1),
                              "valid input counted after the garbage")

        families = {f.name: f for f in text_string_to_metric_families(scrape(self.out.exporter_port()))}
        exported = {s.labels["topic"]: s.value for s in families["vla_monitoring_bad_input"].samples
                    if s.name.endswith("_total")}
        self.assertEqual(exported, expected)
        received = {s.labels["topic"]: s.value for s in families["vla_monitoring_messages"].samples
                    if s.name.endswith("_total")}
        self.assertEqual(received, {**expected, names.ACTION: expected[names.ACTION] + 1,
                                    names.LOGS_JSON: received[names.LOGS_JSON]})  # vla_logs: the node's own too
        self.assertGreaterEqual(received[names.LOGS_JSON], expected[names.LOGS_JSON] + 1)
        self.assertEqual(rospy.get_param(f"/{NODE}/robot_id"), "test_robot")


if __name__ == "__main__":
    rospy.init_node("monitoring_bad_input_test")
    rostest.rosrun("vla_monitoring", "monitoring_bad_input", MonitoringBadInputTest)
