#!/usr/bin/env python3
"""mono8 and 16UC1 frames are dropped and counted; the node keeps running and acts on rgb8 frames."""

import time
import unittest

import rospy
import rostest
from edge_harness import Camera, Recorder, wait_for_subscriber
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs.msg import InferenceStats


class WrongEncoding(unittest.TestCase):
    def test_bad_frames_counted_node_lives(self):
        stats = Recorder("vla/inference_stats", InferenceStats)
        cmds = Recorder("cmd_vel_vla", Twist)
        tasks = rospy.Publisher("task_command", String, queue_size=1, latch=True)
        self.assertTrue(wait_for_subscriber(tasks, 60.0), "inference_node never subscribed task_command")
        tasks.publish(String(data="go to the red cube"))
        for encoding in ("mono8", "16UC1"):
            cam = Camera(encoding).start()
            time.sleep(1.5)
            cam.stop()
        self.assertEqual(cmds.messages, [], "a policy action came from badly encoded frames")
        counted = stats.wait_for(lambda m: m.dropped_frames >= 10, 5.0)
        self.assertIsNotNone(counted, "dropped frames were not counted in vla/inference_stats")
        self.assertEqual(counted.action_count, 0)
        cam = Camera("rgb8").start()
        try:
            self.assertIsNotNone(cmds.wait_for(lambda m: True, 5.0), "node did not act on good frames afterwards")
        finally:
            cam.stop()


if __name__ == "__main__":
    rospy.init_node("test_wrong_encoding")
    rostest.rosrun("vla_edge", "wrong_encoding", WrongEncoding)
