#!/usr/bin/env python3
"""The reference policy, run by inference_node through safety_node, reaches the named object in >= 8 of 10
seeded episodes of the simulator."""

import json
import threading
import time
import unittest

import rospy
import rostest
from std_msgs.msg import String

from vla_msgs.msg import InferenceStats
from vla_msgs.srv import ResetSim

ROBOT = "robot_1"
TARGETS = ("red cube", "blue ball", "green cylinder", "yellow cone")
FIRST_SEED = 100000  # evaluation seeds: never used in training (see the sidecar)
EPISODES = 10
REQUIRED = 8
EPISODE_LIMIT_S = 45.0


class ReachTarget(unittest.TestCase):
    def setUp(self):
        self.state = None
        self.stats = None
        self.lock = threading.Lock()
        rospy.Subscriber("sim/state", String, self._on_state, queue_size=1)
        rospy.Subscriber("vla/inference_stats", InferenceStats, self._on_stats, queue_size=1)
        self.tasks = rospy.Publisher("task_command", String, queue_size=10)

    def _on_state(self, msg):
        with self.lock:
            self.state = json.loads(msg.data)["robots"][ROBOT]

    def _on_stats(self, msg):
        self.stats = msg

    def _wait(self, predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not rospy.is_shutdown():
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def test_reaches_named_object(self):
        self.assertTrue(self._wait(lambda: self.state is not None and self.stats is not None
                                   and self.tasks.get_num_connections() >= 2, 180.0), "the stack did not come up")
        rospy.wait_for_service("sim/reset", timeout=30.0)
        reset = rospy.ServiceProxy("sim/reset", ResetSim)
        results = []
        for episode in range(EPISODES):
            seed = FIRST_SEED + episode
            target = TARGETS[episode % len(TARGETS)]
            self.tasks.publish(String(data="standby"))
            time.sleep(0.3)
            self.assertTrue(reset(seed).success)
            time.sleep(0.5)
            self.tasks.publish(String(data=json.dumps({"description": f"go to the {target}", "id": f"ep{episode}"})))
            start = time.monotonic()
            reached = self._wait(lambda: bool(self.state and self.state.get("reached")), EPISODE_LIMIT_S)
            elapsed = time.monotonic() - start
            dist = (self.state or {}).get("distance_to_target")
            results.append(reached)
            rospy.loginfo(f"episode {episode} seed {seed} {target!r}: reached={reached} in {elapsed:.1f} s "
                          f"(distance {dist}, control {self.stats.fps:.1f} Hz)")
            print(f"episode {episode} seed {seed} {target!r}: reached={reached} {elapsed:.1f} s", flush=True)
        self.tasks.publish(String(data="standby"))
        self.assertGreaterEqual(sum(results), REQUIRED, f"reached {sum(results)}/{EPISODES}: {results}")


if __name__ == "__main__":
    rospy.init_node("edge_reach_target")
    rostest.rosrun("vla_deployment", "edge_reach_target", ReachTarget)
