#!/usr/bin/env python3
"""Stale sensor: a required sensor older than sensor_timeout stops the robot and says which one."""

import unittest

import rospy
import rostest
from safety_harness import SafetyHarness

from vla_msgs import names


class StaleSensorTest(unittest.TestCase):
    def test_stale_sensor(self):
        h = SafetyHarness()
        h.command = h.twist(0.4)
        h.wait(h.moving, 10, "the robot moving")
        h.sensors_on[names.POINTS] = False
        status = h.wait_status("STOPPED", names.POINTS, 2)
        self.assertIn("stale sensor", status["reason"])
        self.assertNotIn("no scan", status["reason"])
        h.wait(h.stopped, 1, "a zero cmd_vel")
        h.sensors_on[names.POINTS] = True
        h.wait(h.moving, 2, "the robot moving again")
        h.sensors_on[names.SCAN] = False
        h.wait_status("STOPPED", "no scan for", 2)
        h.wait(h.stopped, 1, "a zero cmd_vel")
        # odom is not required by default: losing it changes nothing
        h.sensors_on[names.SCAN] = True
        h.sensors_on[names.ODOM] = False
        h.wait(h.moving, 2, "the robot moving without odom")
        h.wait_status("OK", timeout_s=2)


if __name__ == "__main__":
    rospy.init_node("safety_stale_sensor_test")
    rostest.rosrun("vla_safety", "safety_stale_sensor", StaleSensorTest)
