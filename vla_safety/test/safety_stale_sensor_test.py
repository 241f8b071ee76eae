#!/usr/bin/env python3
"""Stale sensor: a required sensor older than sensor_timeout stops the robot and says which one."""

import unittest

import rospy
import rostest
from safety_harness import SafetyHarness


class StaleSensorTest(unittest.TestCase):
    def test_stale_sensor(self):
        h = SafetyHarness()
        h.command = h.twist(0.4)
        self.assertTrue(h.wait_for(h.moving, 10))
        h.sensors_on["velodyne_points"] = False
        self.assertTrue(h.wait_status("STOPPED", "velodyne_points", 2), h.status)
        self.assertIn("stale sensor", h.status["reason"])
        self.assertNotIn("no scan", h.status["reason"])
        self.assertTrue(h.wait_for(h.stopped, 1))
        h.sensors_on["velodyne_points"] = True
        self.assertTrue(h.wait_for(h.moving, 2))
        h.sensors_on["scan"] = False
        self.assertTrue(h.wait_status("STOPPED", "no scan for", 2), h.status)
        self.assertTrue(h.wait_for(h.stopped, 1))
        # odom is not required by default: losing it changes nothing
        h.sensors_on["scan"] = True
        h.sensors_on["odom"] = False
        self.assertTrue(h.wait_for(h.moving, 2))
        self.assertTrue(h.wait_status("OK", timeout=2), h.status)


if __name__ == "__main__":
    rospy.init_node("safety_stale_sensor_test")
    rostest.rosrun("vla_safety", "safety_stale_sensor", StaleSensorTest)
