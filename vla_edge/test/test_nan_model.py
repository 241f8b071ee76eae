#!/usr/bin/env python3
"""A model that returns NaN never moves the robot: nothing on cmd_vel_vla, errors counted and logged."""

import unittest

import rospy
import rostest
from edge_harness import Camera, Recorder, wait_for_subscriber
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.msg import Action, InferenceStats

FORWARD_PASSES = 10


class NanModel(unittest.TestCase):
    def test_nan_never_published(self):
        stats = Recorder(names.INFERENCE_STATS, InferenceStats)
        cmds = Recorder(names.CMD_VEL_VLA, Twist)
        actions = Recorder(names.ACTION, Action)
        logs = Recorder(names.LOGS_JSON, String)
        tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
        wait_for_subscriber(tasks)
        cam = Camera("rgb8").start()
        try:
            tasks.publish(String(data="go to the red cube"))
            counted = stats.wait_for(lambda m: m.inference_count >= FORWARD_PASSES, 60.0,
                                     f"{FORWARD_PASSES} forward passes")
        finally:
            cam.stop()
        self.assertEqual(len(cmds.snapshot()), 0, "a NaN chunk reached cmd_vel_vla")
        self.assertEqual(len(actions.snapshot()), 0)
        self.assertEqual(counted.action_count, 0)
        # the worker counts a forward pass before the control step collects (and counts) its refused output
        self.assertGreaterEqual(counted.error_count, counted.inference_count - 1, "NaN outputs were not counted")
        entry = logs.wait_for(lambda m: json_forms.LOGS.parse(m.data).get("error_type") == "non_finite_output",
                              10.0, "a vla_logs error entry for the NaN output")
        doc = json_forms.LOGS.parse(entry.data)
        self.assertEqual(doc["type"], "error")
        self.assertIn("NaN", doc["error_message"])


if __name__ == "__main__":
    rospy.init_node("test_nan_model")
    rostest.rosrun("vla_edge", "nan_model", NanModel)
