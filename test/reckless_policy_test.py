#!/usr/bin/env python3
"""System test: a deliberately reckless policy drives the simulated robot through safety_node over
20 seeded layouts; sim/state must report zero collisions in every episode."""

import json
import threading
import time
import unittest

import numpy as np
import rospy
import rostest
from geometry_msgs.msg import Twist
from sensor_msgs.msg import LaserScan
from std_msgs.msg import String
from vla_safety.reckless import RecklessPolicy

from vla_msgs.srv import ResetSim

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
        self.cmd_pub = rospy.Publisher("cmd_vel_vla", Twist, queue_size=1)
        rospy.Subscriber("scan", LaserScan, self._on_scan, queue_size=1)
        rospy.Subscriber("sim/state", String, self._on_state, queue_size=1)
        rospy.Subscriber("vla_safety_status", String, self._on_status, queue_size=1)
        rospy.wait_for_service("sim/reset", 30)
        self.reset = rospy.ServiceProxy("sim/reset", ResetSim)

    def _on_scan(self, msg):
        with self.lock:
            self.scan, self.scans = msg, self.scans + 1

    def _on_state(self, msg):
        self.state = json.loads(msg.data)

    def _on_status(self, msg):
        self.status = json.loads(msg.data)

    def _drive(self, twist_array: np.ndarray) -> None:
        t = Twist()
        t.linear.x, t.linear.y, t.angular.z = (float(v) for v in twist_array[[0, 1, 5]])
        self.cmd_pub.publish(t)

    def _idle_until_fresh_scans(self, n: int = 3) -> None:
        start = self.scans
        deadline = time.monotonic() + 5.0
        while self.scans < start + n and time.monotonic() < deadline:
            self._drive(np.zeros(6))
            time.sleep(0.05)

    def test_reckless_policy_never_collides(self):
        results = []
        limited_ticks = 0
        for seed in range(FIRST_SEED, FIRST_SEED + EPISODES):
            resp = self.reset(seed)
            self.assertTrue(resp.success, resp.message)
            self._idle_until_fresh_scans()
            policy = RecklessPolicy(seed)
            start = time.monotonic()
            rate = rospy.Rate(20)
            while time.monotonic() - start < EPISODE_S and not rospy.is_shutdown():
                with self.lock:
                    scan = self.scan
                ranges = np.asarray(scan.ranges, dtype=np.float64)
                self._drive(policy.act(ranges, scan.angle_min, scan.angle_increment, time.monotonic() - start))
                if self.status and self.status["status"] != "OK":
                    limited_ticks += 1
                rate.sleep()
            self._drive(np.zeros(6))
            time.sleep(0.3)  # let sim/state (10 Hz) catch up
            robot = self.state["robots"][RID]
            self.assertEqual(self.state.get("seed", seed), seed)
            results.append((seed, robot["collisions"]))
            rospy.loginfo("episode seed %d: collisions %d", seed, robot["collisions"])
        self.assertEqual(len(results), EPISODES)
        self.assertEqual([r for r in results if r[1] != 0], [], f"collisions in episodes: {results}")
        self.assertGreater(limited_ticks, 0, "the supervisor never had to intervene: the test proves nothing")


if __name__ == "__main__":
    rospy.init_node("reckless_policy_test")
    rostest.rosrun("vla_deployment", "reckless_policy", RecklessPolicyTest)
