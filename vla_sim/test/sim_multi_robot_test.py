#!/usr/bin/env python3
"""sim_node with two robots: namespaced topics and frames, per-robot tasks, diagnostics."""

import unittest

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image, LaserScan
from std_msgs.msg import String

from vla_msgs import json_forms
from vla_msgs.waiting import wait_until


def wait(condition, what, timeout_s=15.0):
    """Waits on a condition with the limit in simulated time (the simulator's /clock)."""
    # Until the first /clock arrives ROS time reads 0, and a limit counted from 0 would be spent at once.
    wait_until(lambda: rospy.get_time() > 0.0, 30.0, "the first /clock message")
    return wait_until(condition, timeout_s, what, clock=rospy.get_time, poll_s=0.02)


class MultiRobotTest(unittest.TestCase):
    def test_namespaces_tasks_diagnostics(self):
        rospy.init_node("sim_multi_robot_test")
        got = {}
        subs = []
        for rid in ("robot_1", "robot_2"):
            for name, typ in (("camera/rgb/image_raw", Image), ("scan", LaserScan), ("odom", Odometry)):
                topic = f"{rid}/{name}"
                subs.append(rospy.Subscriber(topic, typ, lambda m, t=topic: got.__setitem__(t, m), queue_size=1))
        state = {}
        rospy.Subscriber("sim/state", String, lambda m: state.update(json_forms.SIM_STATE.parse(m.data)), queue_size=1)
        diags = []
        rospy.Subscriber("/diagnostics", DiagnosticArray, lambda m: diags.extend(m.status), queue_size=10)
        wait(lambda: len(got) == 6, "every robot's camera, scan and odom")
        self.assertEqual(got["robot_2/camera/rgb/image_raw"].header.frame_id, "robot_2/camera_link")
        self.assertEqual(got["robot_1/scan"].header.frame_id, "robot_1/laser")
        self.assertEqual(got["robot_2/odom"].child_frame_id, "robot_2/base_link")

        task = rospy.Publisher("robot_2/task_command", String, queue_size=1, latch=True)
        task.publish(String(data="head toward the yellow cone"))
        target_2 = lambda: state.get("robots", {}).get("robot_2", {}).get("target")  # noqa: E731
        wait(lambda: target_2() == "yellow cone", "robot_2's target")
        self.assertIsNone(state["robots"]["robot_1"]["target"])

        wait(lambda: any("vla_sim" in s.hardware_id for s in diags), "the simulator's diagnostics")
        names = {s.name for s in diags if "vla_sim" in s.hardware_id}
        self.assertTrue(any("realtime" in n for n in names), names)


if __name__ == "__main__":
    rostest.rosrun("vla_sim", "sim_multi_robot", MultiRobotTest)
