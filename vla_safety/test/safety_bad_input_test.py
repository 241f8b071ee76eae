#!/usr/bin/env python3
"""Bad input: NaN/inf twists stop and are counted; malformed scans, clouds, stale stamps, empty messages and
trigger spam are dropped with a count while the node keeps publishing a safe output."""

import math
import unittest

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray
from safety_harness import SafetyHarness
from sensor_msgs.msg import LaserScan, PointCloud2, PointField
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from vla_msgs import names


class BadInputTest(unittest.TestCase):
    def test_bad_input(self):
        h = SafetyHarness()
        period_s = 1.0 / rospy.get_param("safety_node/output_rate")
        diags = {}

        def on_diag(msg):
            for s in msg.status:
                diags[s.name] = s

        rospy.Subscriber(names.DIAGNOSTICS, DiagnosticArray, on_diag)
        h.command = h.twist(0.4)
        h.wait(h.moving, 10, "the robot moving")

        for bad in (math.nan, math.inf, -math.inf):
            h.command = h.twist(0.4, 0, 0, 0, 0, bad)
            h.wait_status("STOPPED", "non-finite", 2)
            h.wait(h.stopped, 1, "a zero cmd_vel")
            count = h.status["rejected_commands"]
            h.wait(lambda c=count: h.status["rejected_commands"] > c, 2, "the refusals counted")
        self.assertIsNone(h.status["requested"]["angular.z"])  # JSON has no NaN
        h.command = h.twist(0.4)
        h.wait(h.moving, 2, "the robot moving again")

        # malformed sensors: ranges and angles disagree, an empty scan, a cloud without z, a stale stamp
        bad_scan = LaserScan(angle_min=0.0, angle_increment=0.5, range_min=0.1, range_max=10.0, ranges=[1.0] * 360)
        no_z = PointCloud2(height=1, width=1, point_step=8, row_step=8, data=bytes(8),
                           fields=[PointField("x", 0, 7, 1), PointField("y", 4, 7, 1)])
        stale = LaserScan(angle_min=0.0, angle_increment=0.01, range_min=0.1, range_max=10.0, ranges=[1.0] * 360)
        scan_pub = rospy.Publisher(names.SCAN, LaserScan, queue_size=10)
        cloud_pub = rospy.Publisher(names.POINTS, PointCloud2, queue_size=10)
        h.wait(lambda: scan_pub.get_num_connections() > 0 and cloud_pub.get_num_connections() > 0, 5,
               "safety_node subscribed to the test's own publishers")
        pace = rospy.Rate(50)  # the node keeps only the newest message: one at a time
        for _ in range(5):
            for msg in (bad_scan, LaserScan(), no_z):
                bad_scan.header.stamp = rospy.Time.now()
                (cloud_pub if msg is no_z else scan_pub).publish(msg)
                pace.sleep()

        # trigger spam at ~1 kHz latches once, and the output keeps its rate meanwhile
        spam_start_s = rospy.get_time()
        pace = rospy.Rate(1000)
        for _ in range(1000):
            h.trigger_pub.publish(Bool(data=True))
            pace.sleep()
        spam_end_s = rospy.get_time()
        h.wait_status("EMERGENCY_STOP", timeout_s=2)
        during = [t for t, _ in h.outputs_since(spam_start_s) if t <= spam_end_s]
        self.assertGreaterEqual(len(during), 0.7 * (spam_end_s - spam_start_s) / period_s)
        h.wait(h.stopped, 1, "a zero cmd_vel")
        reset = rospy.ServiceProxy(names.SAFETY_RESET, Trigger)
        h.wait(lambda: reset().success, 3, "reset accepted once the trigger's hold passed", poll_s=0.1)
        h.wait(h.moving, 3, "the robot moving after the reset")

        def inputs():
            return {kv.key: kv.value for s in diags.values() if s.name.endswith("inputs") for kv in s.values}

        wanted = {f"dropped {topic}" for topic in (names.SCAN, names.POINTS, names.CMD_VEL_VLA)}
        h.wait(lambda: wanted <= set(inputs()), 5, f"{wanted} in the diagnostics")

        # a scan stamped long ago is stale data, not a live sensor: dropped and counted with its reason
        pace = rospy.Rate(50)
        for _ in range(5):
            stale.header.stamp = rospy.Time.now() - rospy.Duration(5.0)
            scan_pub.publish(stale)
            pace.sleep()
        h.wait(lambda: "s old" in inputs().get(f"last bad {names.SCAN}", ""), 5, "the stale scan reported")
        ids = {s.hardware_id for s in diags.values() if "safety_node" in s.name}
        self.assertEqual(ids, {"test_robot"})


if __name__ == "__main__":
    rospy.init_node("safety_bad_input_test")
    rostest.rosrun("vla_safety", "safety_bad_input", BadInputTest)
