#!/usr/bin/env python3
"""A model that returns NaN never moves the robot: nothing on cmd_vel_vla, errors counted and logged."""

import json
import time
import unittest

import rospy
import rostest
from edge_harness import Camera, Recorder, wait_for_subscriber
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs.msg import Action, InferenceStats


class NanModel(unittest.TestCase):
    def test_nan_never_published(self):
        stats = Recorder("vla/inference_stats", InferenceStats)
        cmds = Recorder("cmd_vel_vla", Twist)
        actions = Recorder("vla/action", Action)
        logs = Recorder("vla_logs", String)
        tasks = rospy.Publisher("task_command", String, queue_size=1, latch=True)
        self.assertTrue(wait_for_subscriber(tasks, 60.0), "inference_node never subscribed task_command")
        cam = Camera("rgb8").start()
        try:
            tasks.publish(String(data="go to the red cube"))
            time.sleep(4.0)
            errors = stats.wait_for(lambda m: m.error_count >= 5, 5.0)
        finally:
            cam.stop()
        self.assertEqual(len(cmds.messages), 0, "a NaN chunk reached cmd_vel_vla")
        self.assertEqual(len(actions.messages), 0)
        self.assertIsNotNone(errors, "rejected NaN outputs were not counted")
        self.assertEqual(errors.action_count, 0)
        self.assertIsNotNone(logs.wait_for(lambda m: "NaN" in json.loads(m.data).get("message", ""), 2.0),
                             "no vla_logs error entry for the NaN output")


if __name__ == "__main__":
    rospy.init_node("test_nan_model")
    rostest.rosrun("vla_edge", "nan_model", NanModel)
