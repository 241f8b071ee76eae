#!/usr/bin/env python3
"""monitoring_node's counts equal what was published, in vla_metrics, in the log archive and on /metrics;
the latency summary is in seconds over the published inference times. Asserted in ROS time."""

import json
import unittest
from pathlib import Path

import rospy
import rostest
from monitoring_harness import MonitoringOutputs, action, log_entry, scrape, wait_subscribed
from prometheus_client.parser import text_string_to_metric_families
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.msg import Action, InferenceStats
from vla_msgs.waiting import wait_until

INFERENCES, ACTIONS, ERRORS = 25, 40, 3


class MonitoringCountsTest(unittest.TestCase):
    def setUp(self):
        self.out = MonitoringOutputs()
        self.action_pub = rospy.Publisher(names.ACTION, Action, queue_size=100)
        self.log_pub = rospy.Publisher(names.LOGS_JSON, String, queue_size=100)
        self.stats_pub = rospy.Publisher(names.INFERENCE_STATS, InferenceStats, queue_size=10)
        wait_subscribed((self.action_pub, self.log_pub, self.stats_pub))

    def test_counts_equal_what_was_published(self):
        start = self.out.wait_metrics(lambda m: True, "a first vla_metrics")
        self.assertEqual((start["inference_count"], start["action_count"], start["error_count"]), (0, 0, 0))
        self.stats_pub.publish(InferenceStats(current_task="go to the red cube", fps=10.0, mode="edge",
                                              model_version="test"))
        for i in range(INFERENCES):  # 1..25 ms
            self.log_pub.publish(log_entry("inference", inference_time_ms=float(i + 1), sequence_number=i + 1))
        for _ in range(ACTIONS):
            self.action_pub.publish(action())
            self.log_pub.publish(log_entry("action"))
        for _ in range(ERRORS):
            self.log_pub.publish(log_entry("error"))

        m = self.out.wait_metrics(lambda m: (m["inference_count"], m["action_count"], m["error_count"])
                                  == (INFERENCES, ACTIONS, ERRORS), "the published counts")
        p = m["performance_summary"]
        self.assertEqual(p["samples"], INFERENCES)
        self.assertAlmostEqual(p["min_inference_time"], 0.001)
        self.assertAlmostEqual(p["max_inference_time"], 0.025)
        self.assertAlmostEqual(p["avg_inference_time"], 0.013)
        self.assertAlmostEqual(p["p50_inference_time"], 0.013)
        self.assertAlmostEqual(p["p95_inference_time"], 0.0238)
        self.assertEqual(m["log_entries"]["action"], ACTIONS)
        self.assertEqual(m["robot_id"], "test_robot")
        self.assertTrue(m["task_active"])
        self.assertEqual(m["current_task"], "go to the red cube")
        self.assertGreaterEqual(m["last_action_age_s"], 0.0)
        self.assertEqual(m["bad_input"], 0)

        # Nothing counted twice: two more reports later, the counts are the same.
        seen = len(self.out.metrics)
        later = self.out.wait_metrics(lambda _m: len(self.out.metrics) >= seen + 2, "two more reports")
        self.assertEqual((later["inference_count"], later["action_count"], later["error_count"]),
                         (INFERENCES, ACTIONS, ERRORS))

        # Every entry is one JSON line in the archive.
        path = Path(rospy.get_param(f"/{names.MONITORING_NODE}/log_dir")) / "test_robot.jsonl"

        def archived():
            if not path.exists():
                return None
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            kinds = [d["type"] for d in lines]
            return lines if (kinds.count("inference"), kinds.count("action"), kinds.count("error")) == (
                INFERENCES, ACTIONS, ERRORS) else None
        lines = wait_until(archived, 10.0, f"every entry in {path}", clock=rospy.get_time)
        times = [d["inference_time_ms"] for d in lines if d["type"] == "inference"]
        self.assertEqual(times, [float(i + 1) for i in range(INFERENCES)])

        # The same counts on /metrics.
        families = {f.name: f for f in text_string_to_metric_families(scrape(self.out.exporter_port()))}

        def value(family: str, sample: str | None = None) -> float:
            found = [s for s in families[family].samples if s.name == (sample or family + "_total")]
            self.assertEqual([s.labels for s in found], [{"robot_id": "test_robot"}])
            return found[0].value
        self.assertEqual(value("vla_inferences"), INFERENCES)
        self.assertEqual(value("vla_actions"), ACTIONS)
        self.assertEqual(value("vla_errors"), ERRORS)
        self.assertEqual(value("vla_inference_latency_seconds", "vla_inference_latency_seconds_count"), INFERENCES)
        self.assertAlmostEqual(value("vla_inference_latency_seconds", "vla_inference_latency_seconds_sum"), 0.325)
        self.assertEqual(value("vla_task_active", "vla_task_active"), 1.0)
        self.assertGreaterEqual(value("vla_action_gap_seconds", "vla_action_gap_seconds"), 0.0)


if __name__ == "__main__":
    rospy.init_node("monitoring_counts_test")
    rostest.rosrun("vla_monitoring", "monitoring_counts", MonitoringCountsTest)
