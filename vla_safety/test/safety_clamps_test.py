#!/usr/bin/env python3
"""Clamps and magnitude refusal: per-axis limits (set in safety_clamps.test); an oversized command is refused."""

import unittest

import rospy
import rostest
from safety_harness import SafetyHarness


class ClampsTest(unittest.TestCase):
    def test_clamps_and_refusal(self):
        h = SafetyHarness()
        h.command = h.twist(1.5, -0.9, 0.8, 0.7, -0.7, 1.4)
        h.wait(lambda: h.last_cmd() is not None and abs(h.last_cmd().linear.x - 1.0) < 1e-6, 10,
               "linear.x clamped to 1.0")
        c = h.last_cmd()
        self.assertAlmostEqual(c.linear.y, -0.5)
        self.assertAlmostEqual(c.linear.z, 0.5)
        self.assertAlmostEqual(c.angular.x, 0.5)
        self.assertAlmostEqual(c.angular.y, -0.5)
        self.assertAlmostEqual(c.angular.z, 1.0)
        status = h.wait_status("LIMITED", "clamped linear.x")
        self.assertAlmostEqual(status["requested"]["linear.x"], 1.5)

        h.command = h.twist(1.8, 1.8)  # 2.55 m/s > max_linear_magnitude 2.0
        status = h.wait_status("STOPPED", "linear magnitude", 2)
        h.wait(h.stopped, 1, "a zero cmd_vel")
        self.assertGreaterEqual(status["rejected_commands"], 1)
        h.command = h.twist(0, 0, 0, 0, 0, 2.5)
        h.wait_status("STOPPED", "angular magnitude", 2)
        h.command = h.twist(0.3)
        h.wait_status("OK", timeout_s=2)
        h.wait(lambda: abs(h.last_cmd().linear.x - 0.3) < 1e-6, 2, "linear.x 0.3")


if __name__ == "__main__":
    rospy.init_node("safety_clamps_test")
    rostest.rosrun("vla_safety", "safety_clamps", ClampsTest)
