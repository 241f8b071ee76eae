#!/usr/bin/env python3
"""mono8, 16UC1 and unstamped frames are dropped and counted; the node keeps running and acts on good frames,
and an idle word stops it with exactly one zero command."""

import unittest

import rospy
import rostest
from edge_harness import Camera, Recorder, wait_for_subscriber
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.msg import InferenceStats

FRAMES_PER_KIND = 5
QUIET_S = 1.0


def moving(t: Twist) -> bool:
    return any(abs(v) > 1e-9 for v in (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z))


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
            cmds.wait_for(lambda m: moving(m), 30.0, "an action on good frames afterwards")
            # an idle word of the one grammar (vla_msgs.tasks) halts the policy: one zero command, then silence
            n = len(cmds.snapshot())
            tasks.publish(String(data="Halt."))
            cmds.wait_for(lambda m: not moving(m), 10.0, "a zero command after 'Halt.'")
            quiet_from = stats.newest().header.stamp
            stats.wait_for(lambda m: m.header.stamp.to_sec() >= quiet_from.to_sec() + QUIET_S, 30.0,
                           f"{QUIET_S} s of statistics after the stop")
        finally:
            cam.stop()
        after = [moving(m) for m in cmds.snapshot()[n:]]
        stop = after.index(False)  # before it, at most the action of a step that was already in flight
        self.assertEqual(after[stop:], [False], "the policy published again after its one zero command")


if __name__ == "__main__":
    rospy.init_node("test_wrong_encoding")
    rostest.rosrun("vla_edge", "wrong_encoding", WrongEncoding)
