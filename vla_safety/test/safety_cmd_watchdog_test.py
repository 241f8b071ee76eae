#!/usr/bin/env python3
"""Command watchdog: no cmd_vel_vla for cmd_timeout -> zero output, STOPPED with the reason; resumes after."""

import time
import unittest

import rospy
import rostest
from safety_harness import SafetyHarness


class CmdWatchdogTest(unittest.TestCase):
    def test_watchdog(self):
        h = SafetyHarness()
        self.assertTrue(h.wait_status("STOPPED", "no cmd_vel_vla received yet", 10), h.status)
        h.command = h.twist(0.4)
        self.assertTrue(h.wait_for(h.moving, 5))
        self.assertTrue(h.wait_status("OK"))
        h.command = None
        stopped_at = time.monotonic()
        self.assertTrue(h.wait_status("STOPPED", "command watchdog", 2), h.status)
        self.assertTrue(h.stopped())
        self.assertLess(time.monotonic() - stopped_at, 0.5 + 0.25)
        # output keeps coming at ~20 Hz, all zeros
        n0 = len(h.cmd_vel)
        time.sleep(1.0)
        self.assertGreaterEqual(len(h.cmd_vel) - n0, 15)
        self.assertTrue(h.stopped())
        h.command = h.twist(0.4)
        self.assertTrue(h.wait_for(h.moving, 2))


if __name__ == "__main__":
    rospy.init_node("safety_cmd_watchdog_test")
    rostest.rosrun("vla_safety", "safety_cmd_watchdog", CmdWatchdogTest)
