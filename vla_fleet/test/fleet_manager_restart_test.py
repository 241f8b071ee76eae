#!/usr/bin/env python3
"""fleet_manager_node killed with SIGKILL mid-run and started again on its SQLite file: a task whose robot
finished it while no manager listened is not run again, a running task stays with its robot, the queued
ones are assigned after the restart; every task succeeds once, each on one robot.
"""

import json
import os
import signal
import tempfile
import threading
import unittest
from pathlib import Path

import rospy
import rostest
from fleet_manager_test import Robots
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.launching import ProcessGroup
from vla_msgs.srv import ListTasks, SubmitTask
from vla_msgs.waiting import wait_until


class FleetManagerRestartTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="fleet_restart_"))
        self.db_url = f"sqlite:///{self.tmp / 'fleet.db'}"
        self.lock = threading.Lock()
        self.assignments = []
        rospy.Subscriber(names.TASK_ASSIGNMENT, String, self._on_assignment, queue_size=100)
        self.feedback_pub = rospy.Publisher(names.TASK_FEEDBACK, String, queue_size=100)
        self.robots = Robots()
        self.node = None

    def tearDown(self):
        if self.node is not None:
            self.node.stop()

    def start_node(self, n):
        self.node = ProcessGroup(["rosrun", "vla_fleet", "fleet_manager_node", f"_db_url:={self.db_url}",
                                  "_assign_period_s:=0.1", "_robot_timeout_s:=2.0", "_ack_timeout_s:=3.0",
                                  f"__name:={names.FLEET_MANAGER_NODE}"], self.tmp / f"node{n}.log")
        rospy.wait_for_service(names.FLEET_LIST_TASKS, 30)
        self.wait(lambda: self.feedback_pub.get_num_connections() > 0, "the manager on /task_feedback")

    def _on_assignment(self, msg):
        doc = json_forms.TASK_ASSIGNMENT.parse(msg.data)
        with self.lock:
            self.assignments.append((doc["robot_id"], doc["task"]["id"], doc["task"]["state"]))

    def wait(self, condition, what, timeout_s=20.0):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def robots_of(self, task_id):
        with self.lock:
            return {r for r, t, s in self.assignments if t == task_id and s == "assigned"}

    def states(self):
        return {t.id: t.state for t in rospy.ServiceProxy(names.FLEET_LIST_TASKS, ListTasks)("").tasks}

    def feedback(self, robot_id, task_id, state):
        self.feedback_pub.publish(String(data=json_forms.TASK_FEEDBACK.build(
            timestamp=rospy.get_time(), robot_id=robot_id, task_id=task_id, state=state)))

    def test_kill_9_and_restart(self):
        self.start_node(1)
        submit = rospy.ServiceProxy(names.FLEET_SUBMIT_TASK, SubmitTask)
        self.robots.set("r1", position=[0.0, 0.0, 0.0])
        self.robots.set("r2", position=[10.0, 0.0, 0.0])
        ids = [submit(f"task {i}", 0, "", json.dumps({"location": [0, 0] if i == 0 else [10, 0]})).task_id
               for i in range(4)]
        self.wait(lambda: len([t for t in ids if self.robots_of(t)]) == 2, "one task for each robot")
        first, second = sorted((t for t in ids if self.robots_of(t)), key=lambda t: min(self.robots_of(t)))
        self.assertEqual((self.robots_of(first), self.robots_of(second)), ({"r1"}, {"r2"}))
        self.assertEqual(first, ids[0])  # the nearest
        for robot, task in (("r1", first), ("r2", second)):
            self.robots.set(robot, status="busy", current_task_id=task)
            self.feedback(robot, task, "started")
        self.wait(lambda: self.states()[first] == "running" and self.states()[second] == "running", "both running")

        os.killpg(self.node.proc.pid, signal.SIGKILL)
        self.node.proc.wait(10)
        self.node.stop(grace_s=(1.0,))  # already dead: closes its log
        # while no manager listens: r1 finishes (its feedback is lost), r2 keeps running
        self.feedback("r1", first, "succeeded")
        self.robots.set("r1", status="available", current_task_id=None, last_task_id=first,
                        last_task_state="succeeded")
        seen = self.robots.reports
        self.wait(lambda: self.robots.reports > seen + 3, "robots reporting while the manager is down")

        self.start_node(2)
        self.wait(lambda: self.states()[first] == "succeeded", "the task finished while down recorded")
        self.feedback("r2", second, "succeeded")
        self.robots.set("r2", status="available", current_task_id=None, last_task_id=second,
                        last_task_state="succeeded")
        for task in [t for t in ids if t not in (first, second)]:
            self.wait(lambda task=task: self.robots_of(task), f"{task} assigned after the restart")
            robot = min(self.robots_of(task))
            self.robots.set(robot, status="busy", current_task_id=task)
            self.feedback(robot, task, "started")
            self.wait(lambda task=task: self.states()[task] == "running", f"{task} running")
            self.feedback(robot, task, "succeeded")
            self.robots.set(robot, status="available", current_task_id=None, last_task_id=task,
                            last_task_state="succeeded")
        self.wait(lambda: all(self.states()[t] == "succeeded" for t in ids), "every task succeeded")
        for task in ids:
            self.assertEqual(len(self.robots_of(task)), 1, (task, self.robots_of(task)))


if __name__ == "__main__":
    rospy.init_node("fleet_manager_restart_test")
    rostest.rosrun("vla_fleet", "fleet_manager_restart", FleetManagerRestartTest)
