#!/usr/bin/env python3
"""Collision scaling against a synthetic scan and cloud: LIMITED naming the point, STOPPED when
nothing safe remains, turning in place still allowed."""

import unittest

import rospy
import rostest
from safety_harness import SafetyHarness, wall_scan_ranges


class CollisionTest(unittest.TestCase):
    def test_collision_scaling(self):
        h = SafetyHarness()
        h.command = h.twist(1.0)
        h.wait(lambda: h.last_cmd() is not None and abs(h.last_cmd().linear.x - 1.0) < 1e-6, 10, "full speed")

        # a wall 1.5 m ahead in the scan: free travel 0.8 m over a 1.5 s horizon -> scale ~0.53
        h.scan_ranges = wall_scan_ranges(1.5)
        s = h.wait_status("LIMITED", "collision avoidance", 2)
        self.assertIn("(1.50, ", s["reason"])
        self.assertAlmostEqual(s["speed_scale"], 0.8 / 1.5, delta=0.06)
        self.assertAlmostEqual(s["commanded"]["linear.x"], s["speed_scale"], delta=1e-3)
        self.assertAlmostEqual(s["nearest_obstacle_m"], 1.3, delta=0.05)

        # the same obstacle, but only in the cloud (above the floor cut), and a floor point ignored
        h.scan_ranges = wall_scan_ranges(None)
        h.cloud_points = [(1.2, y / 20.0, 0.5) for y in range(-20, 21)] + [(0.5, 0.0, 0.0)]
        s = h.wait_status("LIMITED", "(1.20, ", 2)
        self.assertAlmostEqual(s["speed_scale"], 0.5 / 1.5, delta=0.06)

        # nothing safe ahead: stop (all zeros), but turning in place stays allowed; backing off is fine
        h.cloud_points = [(9.0, 9.0, 0.5)]
        h.scan_ranges = wall_scan_ranges(0.6)
        h.wait_status("STOPPED", "no safe motion", 2)
        h.wait(h.stopped, 1, "a zero cmd_vel")
        h.command = h.twist(1.0, 0, 0, 0, 0, 0.8)
        h.wait_status("LIMITED", "turning in place", 2)
        h.wait(lambda: abs(h.last_cmd().angular.z - 0.8) < 1e-6 and h.last_cmd().linear.x == 0, 2,
               "turning in place at 0.8 rad/s")
        h.command = h.twist(-0.5)
        h.wait_status("OK", timeout_s=2)
        h.wait(lambda: h.last_cmd().linear.x < -0.4, 2, "backing off")


if __name__ == "__main__":
    rospy.init_node("safety_collision_test")
    rostest.rosrun("vla_safety", "safety_collision", CollisionTest)
