#!/usr/bin/env python3
"""sim_node with two robots: namespaced topics and frames, per-robot tasks, diagnostics."""

import json
import unittest

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from polling import wait_for
from sensor_msgs.msg import Image, LaserScan
from std_msgs.msg import String


class MultiRobotTest(unittest.TestCase):
    def wait_for(self, predicate, timeout_s=15.0):
        return wait_for(predicate, timeout_s)

    def test_namespaces_tasks_diagnostics(self):
        rospy.init_node("sim_multi_robot_test")
        got = {}
        subs = []
        for rid in ("robot_1", "robot_2"):
            for name, typ in (("camera/rgb/image_raw", Image), ("scan", LaserScan), ("odom", Odometry)):
                topic = f"{rid}/{name}"
                subs.append(rospy.Subscriber(topic, typ, lambda m, t=topic: got.__setitem__(t, m), queue_size=1))
        state = {}
        rospy.Subscriber("sim/state", String, lambda m: state.update(json.loads(m.data)), queue_size=1)
        diags = []
        rospy.Subscriber("/diagnostics", DiagnosticArray, lambda m: diags.extend(m.status), queue_size=10)
        self.assertTrue(self.wait_for(lambda: len(got) == 6), sorted(got))
        self.assertEqual(got["robot_2/camera/rgb/image_raw"].header.frame_id, "robot_2/camera_link")
        self.assertEqual(got["robot_1/scan"].header.frame_id, "robot_1/laser")
        self.assertEqual(got["robot_2/odom"].child_frame_id, "robot_2/base_link")

        task = rospy.Publisher("robot_2/task_command", String, queue_size=1, latch=True)
        task.publish(String(data="head toward the yellow cone"))
        target_2 = lambda: state.get("robots", {}).get("robot_2", {}).get("target")  # noqa: E731
        self.assertTrue(self.wait_for(lambda: target_2() == "yellow cone"))
        self.assertIsNone(state["robots"]["robot_1"]["target"])

        self.assertTrue(self.wait_for(lambda: any("vla_sim" in s.hardware_id for s in diags)), "no diagnostics")
        names = {s.name for s in diags if "vla_sim" in s.hardware_id}
        self.assertTrue(any("realtime" in n for n in names), names)


if __name__ == "__main__":
    rostest.rosrun("vla_sim", "sim_multi_robot", MultiRobotTest)
