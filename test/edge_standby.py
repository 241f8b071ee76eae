#!/usr/bin/env python3
"""`standby` stops the robot within one control period: cmd_vel_vla and the safety node's cmd_vel go to
zero, and the policy publishes nothing more.

Every time is ROS time, which demo.launch makes the simulator's /clock: a loaded machine that runs
the simulation slower stretches these seconds with it instead of failing the test.
"""

import threading
import unittest

import rospy
import rostest
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.msg import InferenceStats
from vla_msgs.waiting import wait_until

CONTROL_PERIOD_S = 0.1   # inference_node's default control_rate, 10 Hz
SLACK_S = 0.05           # message transport and scheduling, in simulated seconds
SAFETY_PERIOD_S = 0.05   # safety_node republishes cmd_vel at its output_rate, 20 Hz
DRIVE_S = 1.0            # how long the robot drives before the standby
QUIET_S = 1.5            # how long after the stop nothing may move it again


def moving(t: Twist) -> bool:
    return abs(t.linear.x) + abs(t.linear.y) + abs(t.angular.z) > 1e-6


class Standby(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.vla: list[tuple[float, Twist]] = []
        self.out: list[tuple[float, Twist]] = []
        self.stats = []
        rospy.Subscriber(names.CMD_VEL_VLA, Twist, lambda m: self._add(self.vla, m), queue_size=50)
        rospy.Subscriber(names.CMD_VEL, Twist, lambda m: self._add(self.out, m), queue_size=50)
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self.stats.append, queue_size=1)
        self.tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=10)

    def _add(self, store, msg):
        with self.lock:
            store.append((rospy.get_time(), msg))

    def _mark(self, store) -> int:
        """Where the next message will go: arrival order, which the clock (10 ms steps of /clock) cannot tell."""
        with self.lock:
            return len(store)

    def _first(self, store, mark: int, want_moving: bool) -> tuple[int, float] | None:
        """(index, arrival time) of the first message from `mark` on that is (not) moving."""
        with self.lock:
            return next(((i, t0) for i, (t0, t) in enumerate(store) if i >= mark and moving(t) == want_moving), None)

    def _wait(self, condition, timeout_s, what):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def test_standby_stops_within_one_period(self):
        # inference_stats flows once the policy and the sentence model are loaded
        self._wait(lambda: self.stats and self.tasks.get_num_connections() >= 2, 180.0, "the stack")
        asked = self._mark(self.out)
        self.tasks.publish(String(data="go to the blue ball"))
        _, started = self._wait(lambda: self._first(self.out, asked, True), 60.0, "the robot to move")
        self._wait(lambda: rospy.get_time() >= started + DRIVE_S, 10.0 * DRIVE_S, f"{DRIVE_S} s of driving")

        vla_mark, out_mark = self._mark(self.vla), self._mark(self.out)
        sent = rospy.get_time()
        self.tasks.publish(String(data="standby"))
        vla_index, vla_stop = self._wait(lambda: self._first(self.vla, vla_mark, False), 2.0, "a zero cmd_vel_vla")
        out_index, out_stop = self._wait(lambda: self._first(self.out, out_mark, False), 2.0, "a zero cmd_vel")
        self._wait(lambda: rospy.get_time() >= max(vla_stop, out_stop) + QUIET_S, 10.0 * QUIET_S,
                   f"{QUIET_S} s after the stop")
        with self.lock:
            late_vla = [t0 for t0, _ in self.vla[vla_index + 1:]]
            late_out = [t0 for t0, t in self.out[out_index + 1:] if moving(t)]

        limit = CONTROL_PERIOD_S + SLACK_S
        self.assertLess(vla_stop - sent, limit, f"cmd_vel_vla zero after {vla_stop - sent:.3f} s")
        self.assertLess(out_stop - sent, limit + SAFETY_PERIOD_S, f"cmd_vel zero after {out_stop - sent:.3f} s")
        self.assertEqual(late_vla, [], "the policy kept publishing after its stop command")
        self.assertEqual(late_out, [], "the robot was commanded to move again after standby")


if __name__ == "__main__":
    rospy.init_node("edge_standby")
    rostest.rosrun("vla_deployment", "edge_standby", Standby)
