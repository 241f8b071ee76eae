#!/usr/bin/env python3
"""fleet_manager_node and a coordinated task, the robots scripted by the test: /vla_coordination announces
the start on the two robots nearest their first steps, each step goes out on /task_assignment with its
phase; one robot finishing phase 0 gets nothing until the other has finished too; the other falls silent
mid-step: the group pauses, the third robot replaces it and redoes that slot's phase-0 step, then phase 1
runs on the two robots and the task succeeds. Times are ROS time; every wait is on a condition.
"""

import json
import threading
import unittest

import rospy
import rostest
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.srv import ListTasks, SubmitTask
from vla_msgs.waiting import wait_until

WAIT_S = 15.0


class Robots:
    """Scripted robots: each reports /robot_status every 0.2 s (ROS time) while alive."""

    def __init__(self, positions):
        self.lock = threading.Lock()
        self.robots = {r: {"status": "available", "position": [x, y, 0.0], "battery": 90.0,
                           "current_task_id": None, "capabilities": ["camera"], "alive": True}
                       for r, (x, y) in positions.items()}
        self.pub = rospy.Publisher(names.ROBOT_STATUS_JSON, String, queue_size=100)
        self.timer = rospy.Timer(rospy.Duration(0.2), self._report)

    def set(self, robot_id, **fields):
        with self.lock:
            self.robots[robot_id].update(fields)

    def _report(self, _event):
        with self.lock:
            docs = [(r, dict(d)) for r, d in self.robots.items() if d["alive"]]
        for robot_id, doc in docs:
            doc.pop("alive")
            self.pub.publish(String(data=json_forms.ROBOT_STATUS.build(timestamp=rospy.get_time(),
                                                                       robot_id=robot_id, **doc)))


class ManagerCoordination(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.coordination: list[dict] = []
        self.steps: list[dict] = []   # each /task_assignment of a step: robot_id, task
        rospy.Subscriber(names.COORDINATION, String, self._on_coordination, queue_size=100)
        rospy.Subscriber(names.TASK_ASSIGNMENT, String, self._on_assignment, queue_size=100)
        self.feedback_pub = rospy.Publisher(names.TASK_FEEDBACK, String, queue_size=100)
        rospy.wait_for_service(names.FLEET_SUBMIT_TASK, WAIT_S)
        self.submit = rospy.ServiceProxy(names.FLEET_SUBMIT_TASK, SubmitTask)
        self.list = rospy.ServiceProxy(names.FLEET_LIST_TASKS, ListTasks)
        self.robots = Robots({"r1": (0.0, 0.0), "r2": (10.0, 0.0), "r3": (5.0, 20.0)})

    def _on_coordination(self, msg):
        doc = json_forms.COORDINATION.parse(msg.data)
        with self.lock:
            self.coordination.append(doc)

    def _on_assignment(self, msg):
        doc = json_forms.TASK_ASSIGNMENT.parse(msg.data)
        if doc["task"].get("coordination") and doc["task"].get("state") == "assigned":
            with self.lock:
                if all(s["task"]["id"] != doc["task"]["id"] for s in self.steps):  # resends counted once
                    self.steps.append(doc)

    def _wait(self, condition, what, timeout_s=WAIT_S):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def _events(self):
        with self.lock:
            return [(d["event"], d["phase"], d["robots"]) for d in self.coordination]

    def _step(self, robot_id, phase):
        with self.lock:
            found = [s["task"] for s in self.steps
                     if s["robot_id"] == robot_id and s["task"]["coordination"]["phase"] == phase]
        return found[-1] if found else None

    def _run(self, robot_id, task, outcome=None):
        """The robot takes the step up (status and `started`), and ends it when `outcome` is given."""
        self.robots.set(robot_id, status="busy", current_task_id=task["id"])
        self._feedback(robot_id, task["id"], "started")
        if outcome:
            self._feedback(robot_id, task["id"], outcome)
            self.robots.set(robot_id, status="available", current_task_id=None)

    def _feedback(self, robot_id, task_id, state):
        self.feedback_pub.publish(String(data=json_forms.TASK_FEEDBACK.build(
            timestamp=rospy.get_time(), robot_id=robot_id, task_id=task_id, state=state, reason="scripted")))

    def test_coordinated_task_with_a_robot_replaced(self):
        self._wait(lambda: self.feedback_pub.get_num_connections() > 0, "the manager on /task_feedback")
        sequence = [[{"description": "go to the red cube", "location": [0.5, 0.0]},
                     {"description": "go to the blue ball", "location": [9.5, 0.0]}],
                    ["go to the green cylinder", "go to the yellow cone"]]
        reply = self.submit("survey in pairs", 1, "", json.dumps({"robots": 2, "action_sequence": sequence}))
        self.assertTrue(reply.success, reply.message)
        self._wait(lambda: self._step("r1", 0) and self._step("r2", 0), "phase 0 sent to r1 and r2")
        self.assertEqual(self._events(), [("started", 0, ["r1", "r2"])])
        self.assertEqual(self._step("r1", 0)["description"], "go to the red cube")
        self.assertEqual(self._step("r1", 0)["coordination"]["task"], reply.task_id)

        self._run("r1", self._step("r1", 0), "succeeded")
        self._run("r2", self._step("r2", 0))
        # r2 falls silent mid-step: paused, then r3 takes slot 1 and redoes its phase-0 step
        self.robots.set("r2", alive=False)
        self._wait(lambda: self._step("r3", 0), "phase 0's slot 1 sent to r3")
        self.assertEqual([e[:2] for e in self._events()], [("started", 0), ("paused", 0), ("resumed", 0)])
        self.assertEqual(self._events()[1][2], ["r1", ""])
        self.assertEqual(self._events()[2][2], ["r1", "r3"])
        self.assertEqual(self._step("r3", 0)["description"], "go to the blue ball")
        self.assertIsNone(self._step("r1", 1), "phase 1 before every robot finished phase 0")

        self._run("r3", self._step("r3", 0), "succeeded")
        self._wait(lambda: self._step("r1", 1) and self._step("r3", 1), "phase 1 sent to r1 and r3")
        self.assertEqual(self._events()[-1], ("phase", 1, ["r1", "r3"]))
        self._run("r1", self._step("r1", 1), "succeeded")
        self._run("r3", self._step("r3", 1), "succeeded")
        self._wait(lambda: self._events()[-1][0] == "succeeded", "the coordinated task succeeded")
        parent = [t for t in self.list("").tasks if t.id == reply.task_id]
        self.assertEqual(parent[0].state, "succeeded")
        with self.lock:
            self.assertEqual(sorted(s["robot_id"] for s in self.steps), ["r1", "r1", "r2", "r3", "r3"])


if __name__ == "__main__":
    rospy.init_node("fleet_manager_coordination_test")
    rostest.rosrun("vla_fleet", "fleet_manager_coordination", ManagerCoordination)
