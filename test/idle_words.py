#!/usr/bin/env python3
"""`halt`, `Stop.` and `standby` idle the simulator and the policy alike (vla_msgs.tasks, one grammar).

For each idle word, after a task that has the policy driving: sim/state's task and target are
cleared, and inference_node, after its one zero cmd_vel_vla, publishes no cmd_vel_vla and no
vla/action. Times are simulated seconds.
"""

import json
import threading
import unittest

import rosgraph
import rospy
import rostest
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.msg import Action
from vla_msgs.waiting import wait_until

ROBOT = "robot_1"
TASK = "go to the red cube"
IDLE_WORDS = ("halt", "Stop.", "standby")
STARTUP_S = 180.0     # torch, the policy and the sentence model load
SETTLE_S = 10.0       # a task shows in sim/state (10 Hz) and the policy acts on it (10 Hz) well within this
STOP_GRACE_S = 0.5    # after the idle word: in-flight messages and the one zero command (5 control periods)
QUIET_S = 1.0         # then nothing at all for 10 control periods


def moving(t: Twist) -> bool:
    return any(abs(v) > 1e-6 for v in (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z))


class IdleWords(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.robot: dict = {}
        self.cmds: list[tuple[float, Twist]] = []
        self.actions: list[tuple[float, Action]] = []
        rospy.Subscriber(names.SIM_STATE, String, self._on_state, queue_size=1)
        rospy.Subscriber(names.CMD_VEL_VLA, Twist, lambda m: self._add(self.cmds, m), queue_size=100)
        rospy.Subscriber(names.ACTION, Action, lambda m: self._add(self.actions, m), queue_size=100)
        self.tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=10)

    def _on_state(self, msg):
        robot = json.loads(msg.data)["robots"][ROBOT]
        with self.lock:
            self.robot = robot

    def _add(self, store, msg):
        with self.lock:
            store.append((rospy.get_time(), msg))

    def _mark(self, store) -> int:
        """Where the next message will go: arrival order, which the clock (10 ms steps of /clock) cannot tell."""
        with self.lock:
            return len(store)

    def _from(self, store, mark: int) -> list:
        with self.lock:
            return [m for _, m in store[mark:]]

    def _after(self, store, t: float) -> list:
        with self.lock:
            return [m for t0, m in store if t0 > t]

    def _wait(self, condition, timeout_s, what):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def _subscribers(self, topic: str) -> set[str]:
        """The nodes the master lists as subscribers of `topic` (other nodes read task_command too)."""
        _pubs, subs, _srvs = rosgraph.Master(rospy.get_name()).getSystemState()
        resolved = rospy.resolve_name(topic)
        return next((set(nodes) for name, nodes in subs if name == resolved), set())

    def test_idle_words_idle_simulator_and_policy(self):
        readers = {rospy.resolve_name(names.SIM_NODE), rospy.resolve_name(names.INFERENCE_NODE)}
        self._wait(lambda: self.robot and readers <= self._subscribers(names.TASK_COMMAND), STARTUP_S,
                   "sim/state, and sim_node and inference_node on task_command")
        self._wait(lambda: self.tasks.get_num_connections() >= len(readers), STARTUP_S,
                   "this test's task_command connected to them")
        for word in IDLE_WORDS:
            with self.subTest(word=word):
                self._drive_then_idle(word)

    def _drive_then_idle(self, word: str) -> None:
        asked = self._mark(self.actions)
        self.tasks.publish(String(data=TASK))
        self._wait(lambda: self.robot.get("task") == TASK and self.robot.get("target"), SETTLE_S,
                   f"sim/state to carry {TASK!r}")
        self._wait(lambda: any(a.task == TASK for a in self._from(self.actions, asked)), STARTUP_S,
                   "the policy to act on the task")

        cmd_mark = self._mark(self.cmds)
        sent = rospy.get_time()
        self.tasks.publish(String(data=word))
        self._wait(lambda: self.robot.get("task") is None, SETTLE_S, f"sim/state's task cleared by {word!r}")
        self.assertIsNone(self.robot.get("target"), f"{word!r} left the simulator's target")
        quiet_from = sent + STOP_GRACE_S
        self._wait(lambda: rospy.get_time() >= quiet_from + QUIET_S, 10.0 * (STOP_GRACE_S + QUIET_S),
                   f"{STOP_GRACE_S + QUIET_S} s after {word!r}")
        stops = [t for t in self._from(self.cmds, cmd_mark) if not moving(t)]
        self.assertTrue(stops, f"no zero cmd_vel_vla after {word!r}")
        self.assertEqual(self._after(self.cmds, quiet_from), [], f"cmd_vel_vla kept coming after {word!r}")
        self.assertEqual(self._after(self.actions, quiet_from), [], f"vla/action kept coming after {word!r}")


if __name__ == "__main__":
    rospy.init_node("idle_words")
    rostest.rosrun("vla_deployment", "idle_words", IdleWords)
