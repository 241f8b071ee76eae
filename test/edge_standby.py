#!/usr/bin/env python3
"""`standby` stops the robot within one control period: cmd_vel_vla and the safety node's cmd_vel go to
zero, and the policy publishes nothing more."""

import threading
import time
import unittest

import rospy
import rostest
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs.msg import InferenceStats

CONTROL_PERIOD_S = 0.1   # config/inference.yaml control_rate 10 Hz
SLACK_S = 0.05           # message transport and scheduling on a loaded 2-core machine


def moving(t: Twist) -> bool:
    return abs(t.linear.x) + abs(t.linear.y) + abs(t.angular.z) > 1e-6


class Standby(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.vla: list[tuple[float, Twist]] = []
        self.out: list[tuple[float, Twist]] = []
        rospy.Subscriber("cmd_vel_vla", Twist, lambda m: self._add(self.vla, m), queue_size=50)
        rospy.Subscriber("cmd_vel", Twist, lambda m: self._add(self.out, m), queue_size=50)
        self.tasks = rospy.Publisher("task_command", String, queue_size=10)
        self.stats = []
        rospy.Subscriber("vla/inference_stats", InferenceStats, self.stats.append, queue_size=1)

    def _add(self, store, msg):
        with self.lock:
            store.append((time.monotonic(), msg))

    def _wait(self, predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not rospy.is_shutdown():
            if predicate():
                return True
            time.sleep(0.01)
        return False

    def test_standby_stops_within_one_period(self):
        # inference_stats flows once the policy and the sentence model are loaded
        self.assertTrue(self._wait(lambda: self.stats and self.tasks.get_num_connections() >= 2, 180.0),
                        "stack not up")
        self.tasks.publish(String(data="go to the blue ball"))
        self.assertTrue(self._wait(lambda: any(moving(t) for _, t in self.out[-5:]), 60.0),
                        "the robot never started moving")
        time.sleep(1.0)
        sent = time.monotonic()
        self.tasks.publish(String(data="standby"))
        limit = CONTROL_PERIOD_S + SLACK_S
        self.assertTrue(self._wait(lambda: any(t0 > sent and not moving(t) for t0, t in self.vla), 2.0))
        with self.lock:
            vla_stop = min(t0 for t0, t in self.vla if t0 > sent and not moving(t))
        time.sleep(1.5)
        with self.lock:
            out_stop = min((t0 for t0, t in self.out if t0 > sent and not moving(t)), default=None)
            late_vla = [t for t0, t in self.vla if t0 > vla_stop + CONTROL_PERIOD_S + SLACK_S and moving(t)]
            late_out = [t for t0, t in self.out if out_stop is not None and t0 > out_stop and moving(t)]
        self.assertLess(vla_stop - sent, limit, f"cmd_vel_vla zero after {vla_stop - sent:.3f} s")
        self.assertIsNotNone(out_stop, "safety_node never commanded zero")
        # the safety node republishes at its own rate (20 Hz): allow one of its periods on top
        self.assertLess(out_stop - sent, limit + 0.05, f"cmd_vel zero after {out_stop - sent:.3f} s")
        self.assertEqual(late_vla, [], "the policy kept publishing after standby")
        self.assertEqual(late_out, [], "the robot was commanded to move again after standby")


if __name__ == "__main__":
    rospy.init_node("edge_standby")
    rostest.rosrun("vla_deployment", "edge_standby", Standby)
