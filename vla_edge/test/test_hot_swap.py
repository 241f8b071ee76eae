#!/usr/bin/env python3
"""Hot swap through ~load_model: the new policy runs without a gap in the actions; a corrupt one is refused."""

import tempfile
import time
import unittest
from pathlib import Path

import rospy
import rostest
from edge_harness import Camera, Recorder, wait_for_subscriber
from std_msgs.msg import String
from std_srvs.srv import Trigger
from vla_edge.testing import write_policy

from vla_msgs.msg import Action

PERIOD_S = 0.1


class HotSwap(unittest.TestCase):
    def test_swap_without_gap_and_refusal(self):
        actions = Recorder("vla/action", Action)
        tasks = rospy.Publisher("task_command", String, queue_size=1, latch=True)
        self.assertTrue(wait_for_subscriber(tasks, 60.0))
        rospy.wait_for_service("inference_node/load_model", timeout=30.0)
        load = rospy.ServiceProxy("inference_node/load_model", Trigger)
        cam = Camera("rgb8").start()
        try:
            tasks.publish(String(data="go to the red cube"))
            self.assertIsNotNone(actions.wait_for(lambda m: m.model_version == "test-1", 10.0))
            workdir = Path(tempfile.mkdtemp(prefix="vla_edge_swap_"))
            rospy.set_param("inference_node/model_path", str(write_policy("corrupt", workdir / "bad")))
            refused = load()
            self.assertFalse(refused.success)
            self.assertIn("not a loadable TorchScript model", refused.message)
            rospy.set_param("inference_node/model_path",
                            str(write_policy("image", workdir / "new", version="test-2")))
            swapped = load()
            self.assertTrue(swapped.success, swapped.message)
            self.assertIsNotNone(actions.wait_for(lambda m: m.model_version == "test-2", 5.0))
            time.sleep(1.0)
        finally:
            cam.stop()
        times = actions.times
        versions = [m.model_version for m in actions.messages]
        first_new = versions.index("test-2")
        self.assertNotIn("test-1", versions[first_new:], "the old model acted after the swap")
        gap = times[first_new] - times[first_new - 1]
        self.assertLess(gap, 2 * PERIOD_S, f"{gap:.3f} s without an action around the swap")


if __name__ == "__main__":
    rospy.init_node("test_hot_swap")
    rostest.rosrun("vla_edge", "hot_swap", HotSwap)
