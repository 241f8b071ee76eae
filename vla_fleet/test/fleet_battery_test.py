#!/usr/bin/env python3
"""Low battery -> not assigned, goes charging, returns: robot_1's battery (published by the test, as its
base would) is below robot_agent_node's ~battery_low_percent: it reports `charging` and drives to its dock
(its ~dock_command on task_command), the fleet manager gives a task beside robot_1 to robot_2 instead
and, with robot_2 busy, leaves the next one pending; charged to 50 % robot_1 still charges (until
~battery_resume_percent); at 85 % it reports available and the next round assigns it the waiting task,
which it runs to success. Times are ROS time; every wait is on a condition.
"""

import json
import threading
import unittest

import rospy
import rostest
from nav_msgs.msg import Odometry
from sensor_msgs.msg import BatteryState
from std_msgs.msg import Bool, String

from vla_msgs import json_forms, names
from vla_msgs.srv import ListTasks, SubmitTask
from vla_msgs.waiting import wait_until

ROBOTS = {"robot_1": (0.0, 0.0), "robot_2": (10.0, 0.0)}
WAIT_S = 20.0


class Bases:
    """The robots' bases: odom and battery_state of each robot at 5 Hz."""

    def __init__(self):
        self.lock = threading.Lock()
        self.battery = {"robot_1": 0.15, "robot_2": 0.9}
        self.odom = {r: rospy.Publisher(f"/{r}/{names.ODOM}", Odometry, queue_size=1) for r in ROBOTS}
        self.batt = {r: rospy.Publisher(f"/{r}/{names.BATTERY_STATE}", BatteryState, queue_size=1) for r in ROBOTS}
        self.timer = rospy.Timer(rospy.Duration(0.2), self._publish)

    def set_battery(self, robot_id: str, fraction: float) -> None:
        with self.lock:
            self.battery[robot_id] = fraction

    def _publish(self, _event) -> None:
        with self.lock:
            battery = dict(self.battery)
        for robot_id, (x, y) in ROBOTS.items():
            odom = Odometry()
            odom.header.stamp = rospy.Time.now()
            odom.pose.pose.position.x, odom.pose.pose.position.y = x, y
            odom.pose.pose.orientation.w = 1.0
            self.odom[robot_id].publish(odom)
            self.batt[robot_id].publish(BatteryState(percentage=battery[robot_id], present=True))


class FleetBattery(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.status: dict[str, list[tuple[float, dict]]] = {r: [] for r in ROBOTS}
        self.assignments: list[dict] = []
        self.feedback: list[dict] = []
        self.commands: list[str] = []
        rospy.Subscriber(names.ROBOT_STATUS_JSON, String, self._on_status, queue_size=100)
        rospy.Subscriber(names.TASK_ASSIGNMENT, String, self._on_assignment, queue_size=100)
        rospy.Subscriber(names.TASK_FEEDBACK, String, self._on_feedback, queue_size=100)
        rospy.Subscriber(f"/robot_1/{names.TASK_COMMAND}", String, self._on_command, queue_size=100)
        self.done = {r: rospy.Publisher(f"/{r}/task_done", Bool, queue_size=1, latch=True) for r in ROBOTS}
        self.bases = Bases()
        rospy.wait_for_service(names.FLEET_SUBMIT_TASK, WAIT_S)
        self.submit = rospy.ServiceProxy(names.FLEET_SUBMIT_TASK, SubmitTask)
        self.list = rospy.ServiceProxy(names.FLEET_LIST_TASKS, ListTasks)

    def _on_status(self, msg):
        doc = json_forms.ROBOT_STATUS.parse(msg.data)
        with self.lock:
            self.status.setdefault(doc["robot_id"], []).append((rospy.get_time(), doc))

    def _on_assignment(self, msg):
        doc = json_forms.TASK_ASSIGNMENT.parse(msg.data)
        with self.lock:
            self.assignments.append(doc)

    def _on_feedback(self, msg):
        doc = json_forms.TASK_FEEDBACK.parse(msg.data)
        with self.lock:
            self.feedback.append(doc)

    def _on_command(self, msg):
        with self.lock:
            self.commands.append(msg.data)

    def _status(self, robot_id):
        with self.lock:
            return self.status[robot_id][-1][1]["status"] if self.status[robot_id] else ""

    def _state(self, task_id):
        return next((t.state for t in self.list("").tasks if t.id == task_id), "")

    def _sent_to(self, task_id):
        with self.lock:
            return {a["robot_id"] for a in self.assignments
                    if a["task"].get("id") == task_id and a["task"].get("state") == "assigned"}

    def _fed_back(self, task_id, state):
        with self.lock:
            return [f["robot_id"] for f in self.feedback if f["task_id"] == task_id and f["state"] == state]

    def _wait(self, condition, what, timeout_s=WAIT_S):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def _submit_beside_robot_1(self, description):
        reply = self.submit(description, 1, "", json.dumps({"location": [0.5, 0.0]}))
        self.assertTrue(reply.success, reply.message)
        return reply.task_id

    def test_low_battery_not_assigned_charges_and_returns(self):
        self._wait(lambda: self._status("robot_1") == "charging" and self._status("robot_2") == "available",
                   "robot_1 charging, robot_2 available")
        self._wait(lambda: "go to the charging dock" in self.commands, "robot_1 sent to its dock")
        with self.lock:
            battery = self.status["robot_1"][-1][1]["battery"]
        self.assertAlmostEqual(battery, 15.0, places=1)

        # beside robot_1, yet robot_2 takes it: robot_1 is charging
        first = self._submit_beside_robot_1("go to the red cube")
        self._wait(lambda: self._fed_back(first, "started"), "the first task started")
        self.assertEqual(self._fed_back(first, "started"), ["robot_2"])
        self.assertEqual(self._sent_to(first), {"robot_2"})

        # robot_2 busy, robot_1 charging (at 50 %, still below ~battery_resume_percent): the next one waits
        second = self._submit_beside_robot_1("go to the blue ball")
        self.bases.set_battery("robot_1", 0.5)
        self._wait(lambda: any(d["battery"] == 50.0 for _t, d in self.status["robot_1"]), "robot_1 at 50 %")
        until = rospy.get_time() + 2.0
        states = []

        def two_seconds_pending():
            states.append((self._state(second), self._status("robot_1")))
            return rospy.get_time() >= until

        self._wait(two_seconds_pending, "two seconds of rounds")
        self.assertEqual(set(states), {("pending", "charging")})
        self.assertEqual(self._sent_to(second), set())

        # charged: available again, and the waiting task goes to robot_1
        self.bases.set_battery("robot_1", 0.85)
        self._wait(lambda: self._status("robot_1") in ("available", "busy"), "robot_1 available again")
        self._wait(lambda: self._fed_back(second, "started"), "the second task started")
        self.assertEqual(self._sent_to(second), {"robot_1"})
        with self.lock:
            available_at = next(t for t, d in self.status["robot_1"] if d["battery"] >= 80.0
                                and d["status"] == "available")
        self.assertLessEqual(available_at, rospy.get_time())
        self.done["robot_1"].publish(Bool(data=True))
        self.done["robot_2"].publish(Bool(data=True))
        self._wait(lambda: self._state(second) == "succeeded" and self._state(first) == "succeeded",
                   "both tasks succeeded")
        self.assertEqual(self._fed_back(second, "succeeded"), ["robot_1"])
        self.assertEqual(self._fed_back(first, "succeeded"), ["robot_2"])


if __name__ == "__main__":
    rospy.init_node("fleet_battery_test")
    rostest.rosrun("vla_fleet", "fleet_battery", FleetBattery)
