#!/usr/bin/env python3
"""Latch and reset: the trigger latches; reset is refused while a cause persists (the trigger's hold, an
obstacle inside the threshold), accepted after."""

import unittest

import rospy
import rostest
from safety_harness import SafetyHarness, wall_scan_ranges
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from vla_msgs import names


class LatchResetTest(unittest.TestCase):
    def test_latch_and_reset(self):
        h = SafetyHarness()
        hold_s = rospy.get_param("safety_node/trigger_hold")
        threshold = rospy.get_param("safety_node/collision_threshold")
        rospy.wait_for_service(names.SAFETY_RESET, 10)
        reset = rospy.ServiceProxy(names.SAFETY_RESET, Trigger)
        trigger_srv = rospy.ServiceProxy(names.SAFETY_TRIGGER_ESTOP, Trigger)
        h.command = h.twist(0.3)
        h.wait(h.moving, 10, "the robot moving")
        h.wait(lambda: h.estop is False, 2, "emergency_stop false")

        triggered_s = rospy.get_time()
        h.trigger_pub.publish(Bool(data=True))
        h.wait_status("EMERGENCY_STOP", names.EMERGENCY_STOP_TRIGGER)
        h.wait(lambda: h.estop is True, 2, "emergency_stop true")
        h.wait(h.stopped, 1, "a zero cmd_vel")

        # false does not clear; a reset right after the trigger is refused with the reason
        h.trigger_pub.publish(Bool(data=False))
        resp = reset()
        self.assertFalse(resp.success)
        self.assertIn("emergency_stop/trigger was true", resp.message)

        # an obstacle inside the threshold blocks the reset too, after the trigger's hold as well
        h.scan_ranges = wall_scan_ranges(0.5)
        h.wait(lambda: 0.0 <= h.status["nearest_obstacle_m"] < threshold, 2, "the wall inside the threshold")

        def refusal_without_the_trigger() -> str | None:
            resp = reset()
            self.assertFalse(resp.success, "reset accepted with an obstacle inside the threshold")
            return None if "emergency_stop/trigger was true" in resp.message else resp.message

        message = h.wait(refusal_without_the_trigger, hold_s + 3.0, "the trigger's hold to pass", poll_s=0.1)
        self.assertGreaterEqual(rospy.get_time() - triggered_s, hold_s)
        self.assertIn("inside collision_threshold", message)
        self.assertEqual(h.status["status"], "EMERGENCY_STOP")  # a false on the trigger cleared nothing
        h.wait(h.stopped, 1, "a zero cmd_vel")

        h.scan_ranges = wall_scan_ranges(None)
        h.wait(lambda: h.status["nearest_obstacle_m"] == -1.0, 2, "the wall gone from the status")
        resp = reset()
        self.assertTrue(resp.success, resp.message)
        h.wait(lambda: h.estop is False, 2, "emergency_stop false")
        h.wait(h.moving, 3, "the robot moving again")
        h.wait_status("OK", timeout_s=2)

        # the service latches too, and its reset has no hold
        self.assertTrue(trigger_srv().success)
        h.wait_status("EMERGENCY_STOP", "service")
        h.wait(h.stopped, 1, "a zero cmd_vel")
        self.assertTrue(reset().success)
        h.wait(h.moving, 3, "the robot moving after the service's reset")


if __name__ == "__main__":
    rospy.init_node("safety_latch_reset_test")
    rostest.rosrun("vla_safety", "safety_latch_reset", LatchResetTest)
