#!/usr/bin/env python3
"""Garbage on each of alert_node's eight input topics is counted under its topic and dropped; the node
keeps evaluating (a valid e-stop still raises CRITICAL). A bad rule file or parameter: exit code 2 and a
logfatal naming the rule and field."""

import math
import tempfile
import unittest
from pathlib import Path

import rospy
import rostest
from alert_harness import ROBOT, AlertOutputs, safety, wait_subscribed
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.launching import ProcessGroup
from vla_msgs.msg import Action, InferenceStats
from vla_msgs.waiting import wait_until

# Per JSON topic: not JSON, not an object, NaN, a missing field, a field of the wrong type.
JSON_GARBAGE = ["not json {", "[1, 2]", '{"timestamp": NaN}', '{"timestamp": 1.0}', '{"timestamp": "x"}']
JSON_TOPICS = (names.METRICS_JSON, names.RESOURCES_JSON, names.HEALTH_JSON, names.SAFETY_STATUS_JSON,
               names.ROBOT_STATUS_JSON)


class AlertNodeBadInputTest(unittest.TestCase):
    def test_garbage_counted_no_crash(self):
        out = AlertOutputs()
        pubs = {topic: rospy.Publisher(topic, String, queue_size=50) for topic in (*JSON_TOPICS, names.TASK_COMMAND)}
        stats_pub = rospy.Publisher(names.INFERENCE_STATS, InferenceStats, queue_size=50)
        action_pub = rospy.Publisher(names.ACTION, Action, queue_size=50)
        wait_subscribed([*pubs.values(), stats_pub, action_pub])

        expected = {}
        for topic in JSON_TOPICS:
            for text in JSON_GARBAGE:
                pubs[topic].publish(String(data=text))
            expected[topic] = len(JSON_GARBAGE)
        pubs[names.TASK_COMMAND].publish(String(data="x" * 100_000))      # over the length limit
        pubs[names.TASK_COMMAND].publish(String(data="go\x00 to the cube"))  # a control character
        expected[names.TASK_COMMAND] = 2
        stats_pub.publish(InferenceStats(current_task="go", inference_ms_mean=math.nan))
        stats_pub.publish(InferenceStats(current_task="go", fps=math.inf))
        expected[names.INFERENCE_STATS] = 2
        action_pub.publish(Action(values=[math.nan, 0, 0, 0, 0, 0]))
        expected[names.ACTION] = 1

        def all_counted(values):
            return all(int(values.get(f"dropped {topic}", 0)) == n for topic, n in expected.items())

        values = out.diag.wait("inputs", all_counted, "every bad message counted under its topic")
        for topic in expected:
            self.assertIn(f"last bad {topic}", values)
        self.assertIn("field 'timestamp' must be a finite number", values[f"last bad {names.HEALTH_JSON}"])
        self.assertEqual(out.diag.message("inputs"), f"{sum(expected.values())} bad inputs dropped")
        self.assertEqual(out.events, [], "garbage raised an alert")

        # still evaluating: a valid e-stop raises its alert
        pubs[names.SAFETY_STATUS_JSON].publish(String(data=safety(True)))
        event = out.wait_event("emergency_stop", "firing")
        self.assertEqual((event["level"], event["robot_id"]), ("CRITICAL", ROBOT))

    def refused(self, name: str, *params: str) -> str:
        """The output of an alert_node `name` started with `params`, after it exited with the config exit code
        (a name of its own: private parameters stay on the master after the node)."""
        log = Path(tempfile.mkdtemp(prefix="alert_node_refused_")) / "alert_node.log"
        node = ProcessGroup(["rosrun", "vla_monitoring", "alert_node", f"__name:={name}", *params], log)
        try:
            wait_until(lambda: not node.alive(), 30.0, "alert_node to refuse its config", clock=rospy.get_time)
        finally:
            code = node.stop()
        self.assertEqual(code, 2, node.tail())
        return log.read_text()

    def test_bad_rule_file_refused(self):
        rules = Path(tempfile.mkdtemp(prefix="alert_rules_")) / "alerts.yaml"
        rules.write_text("rules:\n  high_cpu:\n    input: vla_resources\n    path: cpu_percent\n"
                         "    op: '>'\n    threshold: 90\n    severity: LOUD\n")
        text = self.refused("alert_node_bad_rules", f"_rules_file:={rules}")
        self.assertIn("invalid alert rules", text)
        self.assertIn(f"{rules}: ~rules/high_cpu/severity must be one of", text)

    def test_bad_parameter_refused(self):
        text = self.refused("alert_node_bad_rate", "_evaluate_rate:=0.0")
        self.assertIn("~evaluate_rate must be in [0.1, 100]", text)


if __name__ == "__main__":
    rospy.init_node("alert_node_bad_input_test")
    rostest.rosrun("vla_monitoring", "alert_node_bad_input", AlertNodeBadInputTest)
