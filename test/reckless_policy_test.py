#!/usr/bin/env python3
"""System test: a deliberately reckless policy drives the simulated robot through safety_node over
20 seeded layouts; sim/state must report zero collisions in every episode. Episodes last simulated
seconds and every wait is on a condition in ROS time, so a loaded machine only makes it slower."""

import threading
import unittest

import numpy as np
import rospy
import rostest
from geometry_msgs.msg import Twist
from sensor_msgs.msg import LaserScan
from std_msgs.msg import String

from vla_msgs import json_forms, names, waiting
from vla_msgs.srv import ResetSim
from vla_safety.reckless import RecklessPolicy

EPISODES = 20
FIRST_SEED = 5000
EPISODE_S = 7.0
RID = "robot_1"


class RecklessPolicyTest(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.scan: LaserScan | None = None
        self.scans = 0
        self.state: dict | None = None
        self.status: dict | None = None
        self.cmd_pub = rospy.Publisher(names.CMD_VEL_VLA, Twist, queue_size=1)
        rospy.Subscriber(names.SCAN, LaserScan, self._on_scan, queue_size=1)
        rospy.Subscriber(names.SIM_STATE, String, self._on_state, queue_size=1)
        rospy.Subscriber(names.SAFETY_STATUS_JSON, String, self._on_status, queue_size=1)
        rospy.wait_for_service(names.SIM_RESET, 30)
        self.reset = rospy.ServiceProxy(names.SIM_RESET, ResetSim)

    def _on_scan(self, msg):
        with self.lock:
            self.scan, self.scans = msg, self.scans + 1

    def _on_state(self, msg):
        self.state = json_forms.SIM_STATE.parse(msg.data)

    def _on_status(self, msg):
        self.status = json_forms.SAFETY_STATUS.parse(msg.data)

    def wait(self, condition, timeout_s: float, what: str):
        return waiting.wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def _drive(self, twist_array: np.ndarray) -> None:
        t = Twist()
        t.linear.x, t.linear.y, t.angular.z = (float(v) for v in twist_array[[0, 1, 5]])
        self.cmd_pub.publish(t)

    def test_reckless_policy_never_collides(self):
        results = []
        intervened = 0
        for seed in range(FIRST_SEED, FIRST_SEED + EPISODES):
            resp = self.reset(seed)
            self.assertTrue(resp.success, resp.message)
            self._drive(np.zeros(6))
            with self.lock:
                seen = self.scans
            self.wait(lambda s=seen: self.scans >= s + 3, 5.0, "three scans of the new layout")
            policy = RecklessPolicy(seed)
            start = rospy.get_time()
            rate = rospy.Rate(20)
            while rospy.get_time() - start < EPISODE_S and not rospy.is_shutdown():
                with self.lock:
                    scan = self.scan
                ranges = np.asarray(scan.ranges, dtype=np.float64)
                self._drive(policy.act(ranges, scan.angle_min, scan.angle_increment, rospy.get_time() - start))
                if self.status and self.status["status"] != "OK":
                    intervened += 1
                rate.sleep()
            self._drive(np.zeros(6))
            end = rospy.get_time()
            # the robot stopped (the zero is forwarded on arrival) before sim/state's next report but one
            state = self.wait(lambda e=end + 0.2: self.state if self.state and self.state["timestamp"] >= e else None,
                              2.0, "sim/state after the episode")
            robot = state["robots"][RID]
            results.append((seed, robot["collisions"]))
            rospy.loginfo("episode seed %d: collisions %d", seed, robot["collisions"])
        self.assertEqual(len(results), EPISODES)
        self.assertEqual([r for r in results if r[1] != 0], [], f"collisions in episodes: {results}")
        self.assertGreater(intervened, 0, "the supervisor never had to intervene: the test proves nothing")


if __name__ == "__main__":
    rospy.init_node("reckless_policy_test")
    rostest.rosrun("vla_deployment", "reckless_policy", RecklessPolicyTest)
