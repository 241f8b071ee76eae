#!/usr/bin/env python3
"""The reference policy, run by inference_node through safety_node, reaches the named object in >= 8 of 10
seeded episodes of the simulator.

Each episode is fresh: standby, sim/reset with its seed, a state of the new layout, this task in
sim/state with `reached: false`, and only then `reached: true` for this task counts (reach_episode).
Times are simulated seconds (demo.launch runs every node on the simulator's /clock).
"""

import json
import sys
import threading
import unittest
from pathlib import Path

import rospy
import rostest
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.msg import InferenceStats
from vla_msgs.srv import ResetSim
from vla_msgs.tasks import parse_task_command, task_command_json
from vla_msgs.waiting import WaitTimeout, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reach_episode import EpisodeJudge, Phase

ROBOT = "robot_1"
TARGETS = ("red cube", "blue ball", "green cylinder", "yellow cone")
FIRST_SEED = 100000  # evaluation seeds: never used in training (see the sidecar)
EPISODES = 10
REQUIRED = 8
STARTUP_S = 180.0       # torch, the policy and the sentence model load while the simulator runs
SETTLE_S = 10.0         # a reset or a task shows in sim/state (published at 10 Hz) well within this
EPISODE_LIMIT_S = 45.0  # simulated seconds from the task to reached


class ReachTarget(unittest.TestCase):
    def setUp(self):
        self.state = None
        self.stats = None
        self.judge: EpisodeJudge | None = None
        self.lock = threading.Lock()
        rospy.Subscriber(names.SIM_STATE, String, self._on_state, queue_size=1)
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self._on_stats, queue_size=1)
        self.tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=10)

    def _on_state(self, msg):
        state = json.loads(msg.data)
        with self.lock:
            self.state = state
            if self.judge is not None:
                self.judge.feed(state)

    def _on_stats(self, msg):
        self.stats = msg

    def _robot(self) -> dict:
        with self.lock:
            return dict((self.state or {}).get("robots", {}).get(ROBOT, {}))

    def _wait(self, condition, timeout_s, what):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def _episode(self, reset, seed: int, target: str, episode: int) -> bool:
        self.tasks.publish(String(data="standby"))
        self._wait(lambda: self._robot() and self._robot().get("task") is None, SETTLE_S, "the task cleared")
        payload = task_command_json(f"go to the {target}", task_id=f"ep{episode}")
        with self.lock:
            judge = EpisodeJudge(ROBOT, seed, parse_task_command(payload).description, list(self.state["objects"]))
            self.judge = judge
        self.assertTrue(reset(seed).success)
        self._wait(lambda: judge.at_least(Phase.TASK_TAKEN), SETTLE_S, f"a state of seed {seed}'s layout")
        self.tasks.publish(String(data=payload))
        sent = rospy.get_time()
        try:
            self._wait(lambda: judge.at_least(Phase.DRIVING), SETTLE_S, "the task with reached false")
            self._wait(lambda: judge.phase is Phase.REACHED, EPISODE_LIMIT_S, f"the {target} reached")
            reached = True
        except WaitTimeout as exc:
            rospy.logwarn(f"episode {episode}: {exc}")
            reached = False
        elapsed = rospy.get_time() - sent
        fps = self.stats.fps if self.stats else float("nan")
        print(f"episode {episode} seed {seed} {target!r}: reached={reached} in {elapsed:.1f} s (start "
              f"{judge.first_distance} m, last {judge.last.get('distance_to_target')} m, {fps:.1f} Hz)", flush=True)
        return reached

    def test_reaches_named_object(self):
        self._wait(lambda: self.state is not None and self.stats is not None and self.tasks.get_num_connections() >= 2,
                   STARTUP_S, "the stack (sim/state, inference stats, task_command subscribers)")
        rospy.wait_for_service(names.SIM_RESET, timeout=30.0)
        reset = rospy.ServiceProxy(names.SIM_RESET, ResetSim)
        results = [self._episode(reset, FIRST_SEED + e, TARGETS[e % len(TARGETS)], e) for e in range(EPISODES)]
        self.tasks.publish(String(data="standby"))
        self.assertGreaterEqual(sum(results), REQUIRED, f"reached {sum(results)}/{EPISODES}: {results}")


if __name__ == "__main__":
    rospy.init_node("edge_reach_target")
    rostest.rosrun("vla_deployment", "edge_reach_target", ReachTarget)
