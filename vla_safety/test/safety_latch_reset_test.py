#!/usr/bin/env python3
"""Latch and reset: the trigger latches; reset is refused while a cause persists, accepted after."""

import time
import unittest

import rospy
import rostest
from safety_harness import SafetyHarness, wall_scan_ranges
from std_msgs.msg import Bool
from std_srvs.srv import Trigger


class LatchResetTest(unittest.TestCase):
    def test_latch_and_reset(self):
        h = SafetyHarness()
        rospy.wait_for_service("safety_node/reset", 10)
        reset = rospy.ServiceProxy("safety_node/reset", Trigger)
        trigger_srv = rospy.ServiceProxy("safety_node/trigger_emergency_stop", Trigger)
        h.command = h.twist(0.3)
        self.assertTrue(h.wait_for(h.moving, 10), "robot never moved")
        self.assertIs(h.estop, False)

        h.trigger_pub.publish(Bool(data=True))
        self.assertTrue(h.wait_status("EMERGENCY_STOP", "emergency_stop/trigger"), h.status)
        self.assertTrue(h.wait_for(lambda: h.estop is True))
        self.assertTrue(h.stopped())

        # false does not clear; a reset right after the trigger is refused with the reason
        h.trigger_pub.publish(Bool(data=False))
        resp = reset()
        self.assertFalse(resp.success)
        self.assertIn("emergency_stop/trigger was true", resp.message)
        time.sleep(1.2)  # trigger_hold is 1 s
        self.assertEqual(h.status["status"], "EMERGENCY_STOP")
        self.assertTrue(h.stopped())

        # an obstacle inside the threshold blocks the reset too
        h.scan_ranges = wall_scan_ranges(0.5)
        time.sleep(0.4)
        resp = reset()
        self.assertFalse(resp.success)
        self.assertIn("inside collision_threshold", resp.message)

        h.scan_ranges = wall_scan_ranges(None)
        time.sleep(0.4)
        resp = reset()
        self.assertTrue(resp.success, resp.message)
        self.assertTrue(h.wait_for(lambda: h.estop is False))
        self.assertTrue(h.wait_for(h.moving, 3))
        self.assertEqual(h.status["status"], "OK")

        # the service latches too, and its reset has no hold
        self.assertTrue(trigger_srv().success)
        self.assertTrue(h.wait_status("EMERGENCY_STOP", "service"))
        self.assertTrue(h.stopped())
        self.assertTrue(reset().success)
        self.assertTrue(h.wait_for(h.moving, 3))


if __name__ == "__main__":
    rospy.init_node("safety_latch_reset_test")
    rostest.rosrun("vla_safety", "safety_latch_reset", LatchResetTest)
