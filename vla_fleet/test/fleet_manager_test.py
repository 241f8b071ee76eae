#!/usr/bin/env python3
"""fleet_manager_node with scripted robots: a task goes to the capable, charged robot and completes once;
a silent robot's task moves to another robot; a failed task is retried, then failed; cancel and list;
garbage on every input is counted in diagnostics and the node keeps serving.
"""

import json
import threading
import unittest

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.srv import CancelTask, ListTasks, SubmitTask
from vla_msgs.waiting import wait_until


class Robots:
    """Scripted robots: each reports /robot_status every 0.2 s (ROS time) while `alive`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.robots = {}
        self.reports = 0
        self.pub = rospy.Publisher(names.ROBOT_STATUS_JSON, String, queue_size=100)
        self.timer = rospy.Timer(rospy.Duration(0.2), self._report)

    def set(self, robot_id, **fields):
        with self.lock:
            doc = self.robots.setdefault(robot_id, {"status": "available", "position": [0.0, 0.0, 0.0],
                                                    "battery": 90.0, "current_task_id": None, "capabilities": [],
                                                    "alive": True})
            doc.update(fields)

    def _report(self, _event):
        with self.lock:
            docs = [(rid, dict(d)) for rid, d in self.robots.items() if d["alive"]]
            self.reports += 1
        for rid, d in docs:
            d.pop("alive")
            self.pub.publish(String(data=json_forms.ROBOT_STATUS.build(timestamp=rospy.get_time(), robot_id=rid,
                                                                       **d)))


class FleetManagerTest(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.assignments = []
        self.diagnostics = {}
        rospy.Subscriber(names.TASK_ASSIGNMENT, String, self._on_assignment, queue_size=100)
        rospy.Subscriber(names.DIAGNOSTICS, DiagnosticArray, self._on_diagnostics, queue_size=10)
        self.feedback_pub = rospy.Publisher(names.TASK_FEEDBACK, String, queue_size=100)
        self.submit_json_pub = rospy.Publisher(names.FLEET_SUBMIT_JSON, String, queue_size=10)
        self.raw_status_pub = rospy.Publisher(names.ROBOT_STATUS_JSON, String, queue_size=10)
        rospy.wait_for_service(names.FLEET_SUBMIT_TASK, 20)
        self.submit = rospy.ServiceProxy(names.FLEET_SUBMIT_TASK, SubmitTask)
        self.cancel = rospy.ServiceProxy(names.FLEET_CANCEL_TASK, CancelTask)
        self.list = rospy.ServiceProxy(names.FLEET_LIST_TASKS, ListTasks)
        self.robots = Robots()

    def _on_assignment(self, msg):
        doc = json_forms.TASK_ASSIGNMENT.parse(msg.data)
        with self.lock:
            self.assignments.append((doc["robot_id"], doc["task"]["id"], doc["task"]["state"],
                                     doc["task"].get("attempt")))

    def _on_diagnostics(self, msg):
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def wait(self, condition, what, timeout_s=15.0):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def assigned_to(self, task_id):
        with self.lock:
            return [r for r, t, s, _ in self.assignments if t == task_id and s == "assigned"]

    def attempts(self, task_id):
        with self.lock:
            return {a for _, t, s, a in self.assignments if t == task_id and s == "assigned"}

    def state(self, task_id):
        return {t.id: t.state for t in self.list("").tasks}.get(task_id)

    def repeated_submits(self):
        key = "repeated submits (submit_key known)"
        return max((int(values[key]) for values in list(self.diagnostics.values()) if key in values), default=0)

    def feedback(self, robot_id, task_id, state, reason=""):
        self.feedback_pub.publish(String(data=json_forms.TASK_FEEDBACK.build(
            timestamp=rospy.get_time(), robot_id=robot_id, task_id=task_id, state=state, reason=reason)))

    def run_task(self, robot_id, task_id, outcome="succeeded"):
        self.robots.set(robot_id, status="busy", current_task_id=task_id)
        self.feedback(robot_id, task_id, "started")
        self.wait(lambda: self.state(task_id) == "running", f"{task_id} running")
        self.feedback(robot_id, task_id, outcome, "scripted")
        self.robots.set(robot_id, status="available", current_task_id=None)

    def test_a_submit_key_names_one_task(self):
        """A submit sent again with its submit_key (its answer lost) is the task stored the first time, through
        submit_task and the JSON submit topic alike; the key with another request is refused."""
        params = json.dumps({"submit_key": "retry-test@1"})
        first = self.submit("wait for nobody", 7, "nobody", params)
        self.assertTrue(first.success, first.message)
        again = self.submit("wait for nobody", 7, "nobody", params)
        self.assertEqual((again.success, again.task_id), (True, first.task_id))
        self.assertIn("already submitted", again.message)
        self.wait(lambda: self.submit_json_pub.get_num_connections() > 0, "the manager on the JSON submit topic")
        self.submit_json_pub.publish(String(data=json.dumps({
            "description": "wait for nobody", "priority": 7, "robot_id": "nobody",
            "parameters": {"submit_key": "retry-test@1"}})))
        # the topic's document handled: the manager counts it as the second repeated submit (no new task)
        self.wait(lambda: self.repeated_submits() >= 2, "the JSON submit answered with the stored task")
        other = self.submit("wait for somebody", 7, "nobody", params)
        self.assertFalse(other.success)
        self.assertIn(f"already names task {first.task_id}", other.message)
        self.assertEqual([t.id for t in self.list("").tasks if t.description == "wait for nobody"], [first.task_id])
        self.assertTrue(self.cancel(first.task_id).success)

    def test_fleet(self):
        self.wait(lambda: self.feedback_pub.get_num_connections() > 0, "the manager on /task_feedback")
        self.robots.set("weak", battery=10.0, capabilities=["camera"])
        self.robots.set("blind", position=[1.0, 0.0, 0.0])
        self.robots.set("seer", position=[5.0, 0.0, 0.0], capabilities=["camera"])

        refused = self.submit("go", 5000, "", "")
        self.assertFalse(refused.success)
        self.assertIn("priority", refused.message)
        ok = self.submit("look at the red cube", 1, "", json.dumps({"location": [0, 0], "capabilities": ["camera"]}))
        self.assertTrue(ok.success, ok.message)
        task = ok.task_id
        # only "seer" has the camera and the battery, although "weak" is nearer
        self.wait(lambda: self.assigned_to(task), "the camera task assigned")
        self.assertEqual(set(self.assigned_to(task)), {"seer"})
        self.run_task("seer", task)
        self.wait(lambda: self.state(task) == "succeeded", "the task succeeded")

        # a silent robot's task goes to another robot
        second = self.submit("go to the blue ball", 0, "", json.dumps({"location": [1, 0]})).task_id
        self.wait(lambda: self.assigned_to(second), "the second task assigned")
        first_robot = self.assigned_to(second)[0]
        self.assertEqual(first_robot, "blind")  # nearest
        self.robots.set("blind", status="busy", current_task_id=second)
        self.feedback("blind", second, "started")
        seen = self.robots.reports
        self.wait(lambda: self.robots.reports > seen + 1, "blind reported running it")
        self.robots.set("blind", alive=False)
        # within robot_timeout (1.5 s) and a round, well before the 10 s ack timeout could do it
        self.wait(lambda: set(self.assigned_to(second)) - {"blind"}, "the silent robot's task reassigned", 4.0)
        other = (set(self.assigned_to(second)) - {"blind"}).pop()
        self.run_task(other, second)
        self.wait(lambda: self.state(second) == "succeeded", "the reassigned task succeeded")

        # failed once, retried once (max_retries 1), then failed
        third = self.submit("open the door", 0, "seer", "").task_id
        for n in range(2):
            self.wait(lambda n=n: len(self.attempts(third)) > n, f"attempt {n + 1} of the failing task")
            self.run_task("seer", third, "failed")
        self.wait(lambda: self.state(third) == "failed", "the task failed for good")

        # cancel a pending task ("blind" is the only one it may run on, and it is gone)
        fourth = self.submit("wait for blind", 0, "blind", "").task_id
        self.assertTrue(self.cancel(fourth).success)
        self.assertEqual(self.state(fourth), "cancelled")
        self.assertFalse(self.cancel("no-such-task").success)

        # garbage everywhere: counted, the node keeps serving; the JSON submit topic works
        for text in ("not json", "[]", '{"robot_id": "x"}'):
            self.raw_status_pub.publish(String(data=text))
            self.feedback_pub.publish(String(data=text))
            self.submit_json_pub.publish(String(data=text))
        self.raw_status_pub.publish(String(data=json.dumps({
            "timestamp": 1.0, "robot_id": "absurd", "status": "available", "position": [0, 0, 0], "battery": 400,
            "current_task_id": None, "capabilities": []})))
        self.feedback("ghost", "x", "succeeded")
        self.submit_json_pub.publish(String(data=json.dumps({"description": "from rostopic", "priority": 3})))
        self.wait(lambda: [t for t in self.list("pending").tasks if t.description == "from rostopic"]
                  or [t for t in self.list("").tasks if t.description == "from rostopic"], "the topic's task")
        self.assertEqual(len(self.list("bogus").tasks), 0)

        def counted():
            inputs = self.diagnostics.get("fleet_manager_node: inputs") or next(
                (v for k, v in self.diagnostics.items() if k.endswith("inputs")), {})
            total = sum(int(v) for k, v in inputs.items() if k.startswith("dropped "))
            return total >= 10 and inputs
        inputs = self.wait(counted, "bad input counted in diagnostics")
        self.assertGreaterEqual(int(inputs[f"dropped {names.ROBOT_STATUS_JSON}"]), 4, inputs)
        self.assertIn("battery 400", inputs[f"last bad {names.ROBOT_STATUS_JSON}"])
        self.assertGreaterEqual(int(inputs[f"dropped {names.TASK_FEEDBACK}"]), 4, inputs)


if __name__ == "__main__":
    rospy.init_node("fleet_manager_test")
    rostest.rosrun("vla_fleet", "fleet_manager", FleetManagerTest)
