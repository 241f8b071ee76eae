#!/usr/bin/env python3
"""robot_agent_node in the simulator, driven by scripted /task_assignment messages (no fleet manager).

Scenario `reach`: garbage on /task_assignment is dropped; an assignment of the nearest target gives
started, then succeeded only after sim/state said this robot reached this task's target, exactly
once, and the robot is available again. Scenario `estop`: an e-stop mid-task hands the task back
(cancelled, reason emergency stop: the manager queues it again without spending a retry),
/robot_status says error, and a new assignment is handed back too (cancelled, not failed).
Times are simulated seconds (the launch runs every node on the simulator's /clock).
"""

import sys
import unittest
from pathlib import Path

import rosgraph
import rospy
import rostest
from std_msgs.msg import Bool, String

from vla_msgs import names
from vla_msgs.msg import InferenceStats
from vla_msgs.tasks import normalise

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_watch import FleetWatch, assignment

ROBOT = "robot_1"
STARTUP_S = 180.0   # torch, the policy and the sentence model load while the simulator runs
SETTLE_S = 10.0     # feedback and status (1 Hz) show well within this
REACH_S = 60.0      # simulated seconds from the task to reached, for the nearest target


class FleetAgent(unittest.TestCase):
    def setUp(self):
        self.watch = FleetWatch()
        self.stats = None
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self._on_stats, queue_size=1)
        self.assign = rospy.Publisher(names.TASK_ASSIGNMENT, String, queue_size=10)
        self.trigger = rospy.Publisher(names.EMERGENCY_STOP_TRIGGER, Bool, queue_size=1)
        self._wait_for_stack()

    def _on_stats(self, msg):
        self.stats = msg

    def _subscribers(self, topic: str) -> set[str]:
        _pubs, subs, _srvs = rosgraph.Master(rospy.get_name()).getSystemState()
        return {n for t, nodes in subs if t == rospy.resolve_name(topic) for n in nodes}

    def _wait_for_stack(self):
        w = self.watch
        w.wait(lambda: w.robot_status(ROBOT).get("status") == "available" and w.sim_robot(ROBOT)
               and self.stats is not None, STARTUP_S, "robot_1 available, sim/state and the policy running")
        w.wait(lambda: {f"/{names.SIM_NODE}", f"/{names.INFERENCE_NODE}"} <= self._subscribers(names.TASK_COMMAND)
               and f"/{names.ROBOT_AGENT_NODE}" in self._subscribers(names.TASK_ASSIGNMENT)
               and self.assign.get_num_connections() >= 1, SETTLE_S, "task_command and /task_assignment wired")

    def _start(self, task_id: str, target: str) -> str:
        description = f"go to the {target}"
        self.assign.publish(assignment(ROBOT, task_id, description))
        self.watch.wait(lambda: self.watch.states_of(task_id), SETTLE_S, f"feedback on {task_id}")
        self.assertEqual(self.watch.states_of(task_id), ["started"])
        self.watch.wait(lambda: self.watch.sim_robot(ROBOT).get("task") == normalise(description), SETTLE_S,
                        f"the simulator taking {description!r}")
        return description

    def test_reach(self):
        w = self.watch
        for garbage in ("not json", '{"timestamp": 1, "robot_id": "robot_1"}',
                        '{"timestamp": 1, "robot_id": "robot_1", "task": {"description": "go"}, "assignment_time": 1}'):
            self.assign.publish(String(data=garbage))
        target = w.nearest_target(ROBOT)
        description = self._start("reach-1", target)
        w.wait(lambda: len(w.states_of("reach-1")) >= 2, REACH_S, f"reach-1 ({target}) ending")
        self.assertEqual(w.states_of("reach-1"), ["started", "succeeded"])
        (feedback, arrived), = w.feedback_of("reach-1", "succeeded")
        reached = w.first_reached(ROBOT, normalise(description))
        self.assertIsNotNone(reached, "succeeded without sim/state ever saying reached")
        self.assertLessEqual(reached, arrived)
        self.assertEqual(feedback["robot_id"], ROBOT)
        w.wait(lambda: w.robot_status(ROBOT).get("status") == "available"
               and w.robot_status(ROBOT).get("current_task_id") is None, SETTLE_S, "robot_1 available again")
        status = w.robot_status(ROBOT)  # how the last task ended, for a manager that missed the feedback
        self.assertEqual((status["last_task_id"], status["last_task_state"]), ("reach-1", "succeeded"))
        w.wait(lambda: w.sim_robot(ROBOT).get("task") is None, SETTLE_S, "the simulator's task cleared")
        self.assertEqual(w.states_of("reach-1"), ["started", "succeeded"])  # nothing after the end

    def test_estop(self):
        w = self.watch
        far = [t for t in ("red cube", "blue ball", "green cylinder", "yellow cone") if t != w.nearest_target(ROBOT)]
        self._start("estop-1", far[0])
        w.wait(lambda: w.robot_status(ROBOT).get("status") == "busy", SETTLE_S, "robot_1 busy")
        self.assertEqual(w.robot_status(ROBOT)["current_task_id"], "estop-1")
        self.trigger.publish(Bool(data=True))
        w.wait(lambda: len(w.states_of("estop-1")) >= 2, SETTLE_S, "estop-1 handed back")
        self.assertEqual(w.states_of("estop-1"), ["started", "cancelled"])
        (feedback, _), = w.feedback_of("estop-1", "cancelled")
        self.assertIn("emergency stop", feedback["reason"])
        w.wait(lambda: w.robot_status(ROBOT).get("status") == "error", SETTLE_S, "robot_1 in error")
        self.assertIsNone(w.robot_status(ROBOT)["current_task_id"])
        self.assign.publish(assignment(ROBOT, "estop-2", f"go to the {far[1]}"))
        w.wait(lambda: w.states_of("estop-2"), SETTLE_S, "estop-2 answered")
        # handed back, not failed: the robot's state is at fault, not the task (no retry spent)
        self.assertEqual(w.states_of("estop-2"), ["cancelled"])
        (refusal, _), = w.feedback_of("estop-2", "cancelled")
        self.assertIn("handed back", refusal["reason"])
        self.assertIn("emergency stop", refusal["reason"])


if __name__ == "__main__":
    rospy.init_node("fleet_agent_test")
    scenario = next(a for a in sys.argv[1:] if a in ("reach", "estop"))
    # One scenario per .test file (each its own fresh stack): drop the other's method.
    for name in ("test_reach", "test_estop"):
        if name != f"test_{scenario}":
            delattr(FleetAgent, name)
    rostest.rosrun("vla_deployment", f"fleet_agent_{scenario}", FleetAgent)
