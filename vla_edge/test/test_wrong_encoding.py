#!/usr/bin/env python3
"""mono8, 16UC1 and unstamped frames are dropped and counted; the node keeps running and acts on good frames."""

import unittest

import rospy
import rostest
from edge_harness import Camera, Recorder, wait_for_subscriber
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.msg import InferenceStats

FRAMES_PER_KIND = 5


class WrongEncoding(unittest.TestCase):
    def test_bad_frames_counted_node_lives(self):
        stats = Recorder(names.INFERENCE_STATS, InferenceStats)
        cmds = Recorder(names.CMD_VEL_VLA, Twist)
        tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
        wait_for_subscriber(tasks)
        tasks.publish(String(data="go to the red cube"))
        dropped = 0
        for encoding, stamped in (("mono8", True), ("16UC1", True), ("rgb8", False)):
            cam = Camera(encoding, stamped=stamped).start()
            try:
                counted = stats.wait_for(lambda m, d=dropped: m.dropped_frames >= d + FRAMES_PER_KIND, 30.0,
                                         f"{FRAMES_PER_KIND} more dropped frames ({encoding}, stamped={stamped})")
            finally:
                cam.stop()
            dropped = counted.dropped_frames
            self.assertEqual(counted.action_count, 0)
        self.assertEqual(cmds.snapshot(), [], "a policy action came from refused frames")
        cam = Camera("rgb8").start()
        try:
            cmds.wait_for(lambda m: True, 30.0, "an action on good frames afterwards")
        finally:
            cam.stop()


if __name__ == "__main__":
    rospy.init_node("test_wrong_encoding")
    rostest.rosrun("vla_edge", "wrong_encoding", WrongEncoding)
