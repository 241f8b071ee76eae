#!/usr/bin/env python3
"""Command watchdog: cmd_timeout of ROS time after the last cmd_vel_vla the output is zero, STOPPED with
the reason; zeros keep coming at the least output rate; the robot resumes with the next command."""

import unittest

import rospy
import rostest
from safety_harness import SafetyHarness, is_zero


class CmdWatchdogTest(unittest.TestCase):
    def test_watchdog(self):
        h = SafetyHarness()
        timeout_s = rospy.get_param("safety_node/cmd_timeout")
        period_s = 1.0 / rospy.get_param("safety_node/output_rate")
        h.wait_status("STOPPED", "no cmd_vel_vla received yet", 10)
        h.command = h.twist(0.4)
        h.wait(h.moving, 5, "the robot moving")
        h.wait_status("OK")

        h.command = None
        h.wait_status("STOPPED", "command watchdog", timeout_s + 2.0)
        last_sent_s = h.command_sent_s  # no command goes out after this one
        first_zero_s = h.wait(lambda: next((t for t, m in h.outputs_since(last_sent_s) if is_zero(m)), None),
                              1.0, "the zero cmd_vel")
        # measured in ROS time: never before the timeout, and at the latest one output period (plus the
        # transport both ways) after it
        self.assertGreater(first_zero_s - last_sent_s, timeout_s)
        self.assertLess(first_zero_s - last_sent_s, timeout_s + period_s + 0.15)

        # zeros keep coming at the least output rate
        since_s = rospy.get_time()
        outputs = h.wait(lambda: h.outputs_since(since_s)[:21] if len(h.outputs_since(since_s)) > 20 else None,
                         3.0, "21 more outputs")
        self.assertTrue(all(is_zero(m) for _, m in outputs))
        self.assertLess(outputs[-1][0] - outputs[0][0], 20 * period_s * 1.5)

        h.command = h.twist(0.4)
        h.wait(h.moving, 2, "the robot moving again")


if __name__ == "__main__":
    rospy.init_node("safety_cmd_watchdog_test")
    rostest.rosrun("vla_safety", "safety_cmd_watchdog", CmdWatchdogTest)
