#!/usr/bin/env python3
"""Bad input: NaN/inf twists stop and are counted; malformed scans, clouds, empty messages and trigger
spam are dropped with a count while the node keeps publishing a safe output."""

import math
import time
import unittest

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray
from safety_harness import SafetyHarness
from sensor_msgs.msg import LaserScan, PointCloud2, PointField
from std_msgs.msg import Bool
from std_srvs.srv import Trigger


class BadInputTest(unittest.TestCase):
    def test_bad_input(self):
        h = SafetyHarness()
        diags = {}

        def on_diag(msg):
            for s in msg.status:
                diags[s.name] = s

        rospy.Subscriber("/diagnostics", DiagnosticArray, on_diag)
        h.command = h.twist(0.4)
        self.assertTrue(h.wait_for(h.moving, 10))

        for bad in (math.nan, math.inf, -math.inf):
            h.command = h.twist(0.4, 0, 0, 0, 0, bad)
            self.assertTrue(h.wait_status("STOPPED", "non-finite", 2), h.status)
            self.assertTrue(h.wait_for(h.stopped, 1))
            count = h.status["rejected_commands"]
            self.assertTrue(h.wait_for(lambda c=count: h.status["rejected_commands"] > c, 2))
        self.assertIsNone(h.status["requested"]["angular.z"])  # JSON has no NaN
        h.command = h.twist(0.4)
        self.assertTrue(h.wait_for(h.moving, 2))

        # malformed sensors: ranges and angles disagree, cloud without z, empty messages
        bad_scan = LaserScan(angle_min=0.0, angle_increment=0.5, range_min=0.1, range_max=10.0, ranges=[1.0] * 360)
        bad_scan.header.stamp = rospy.Time.now()
        scan_pub = rospy.Publisher("scan", LaserScan, queue_size=10)
        cloud_pub = rospy.Publisher("velodyne_points", PointCloud2, queue_size=10)
        time.sleep(0.5)
        no_z = PointCloud2(height=1, width=1, point_step=8, row_step=8, data=bytes(8),
                           fields=[PointField("x", 0, 7, 1), PointField("y", 4, 7, 1)])
        for _ in range(5):
            scan_pub.publish(bad_scan)
            scan_pub.publish(LaserScan())
            cloud_pub.publish(no_z)
            time.sleep(0.02)
        # trigger spam at ~1 kHz latches once and the node keeps ticking
        for _ in range(1000):
            h.trigger_pub.publish(Bool(data=True))
            time.sleep(0.001)
        self.assertTrue(h.wait_status("EMERGENCY_STOP", timeout=2), h.status)
        n0 = len(h.cmd_vel)
        time.sleep(0.5)
        self.assertGreaterEqual(len(h.cmd_vel) - n0, 7)
        self.assertTrue(h.stopped())
        time.sleep(1.1)
        self.assertTrue(rospy.ServiceProxy("safety_node/reset", Trigger)().success)
        self.assertTrue(h.wait_for(h.moving, 3))

        self.assertTrue(h.wait_for(lambda: "inputs" in " ".join(diags), 5), list(diags))
        self.assertTrue(h.wait_for(lambda: {"dropped scan", "dropped velodyne_points", "dropped cmd_vel_vla"} <= {
            kv.key for s in diags.values() if "inputs" in s.name for kv in s.values}, 5),
            [(s.name, s.values) for s in diags.values()])
        ids = {s.hardware_id for s in diags.values() if "safety_node" in s.name}
        self.assertEqual(ids, {"test_robot"})


if __name__ == "__main__":
    rospy.init_node("safety_bad_input_test")
    rostest.rosrun("vla_safety", "safety_bad_input", BadInputTest)
