#!/usr/bin/env python3
"""scheduler_node with the real fleet_manager_node: each due slot becomes one task in the manager's queue, in
ROS time (the task's created_time at or after the slot), with its priority and parameters; a cancelled
interval adds no more; a task the manager refuses is reported failed by the scheduler, not resubmitted."""

import itertools
import json
import unittest

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray

from vla_msgs import names
from vla_msgs.srv import CancelTask, ListTasks, ScheduleTask
from vla_msgs.waiting import wait_until


class SchedulerManagerTest(unittest.TestCase):
    def setUp(self):
        self.schedules_status = {}
        rospy.Subscriber("/diagnostics", DiagnosticArray, self._on_diagnostics, queue_size=10)
        for service in (names.SCHEDULER_SCHEDULE_TASK, names.FLEET_LIST_TASKS):
            rospy.wait_for_service(service, 20)
        self.schedule = rospy.ServiceProxy(names.SCHEDULER_SCHEDULE_TASK, ScheduleTask)
        self.cancel = rospy.ServiceProxy(names.SCHEDULER_CANCEL_TASK, CancelTask)
        self.list_tasks = rospy.ServiceProxy(names.FLEET_LIST_TASKS, ListTasks)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.endswith("schedules"):
                self.schedules_status = {kv.key: kv.value for kv in status.values}

    def tasks(self, description):
        return sorted((t for t in self.list_tasks(state="").tasks if t.description == description),
                      key=lambda t: t.created_time)

    def wait(self, condition, timeout_s, what):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time, poll_s=0.05)

    def test_each_slot_one_task(self):
        due = rospy.get_time() + 1.5
        once = self.schedule(description="go to the red cube", priority=7, scheduled_time=due,
                             parameters_json=json.dumps({"location": [1.0, 2.0]}))
        self.assertTrue(once.success, once.message)
        every = self.schedule(description="patrol the hall", priority=3, scheduled_time=0.0,
                              parameters_json=json.dumps({"interval_s": 1.0}))
        self.assertTrue(every.success, every.message)
        # accepted by the scheduler, refused by the manager (no such place): failed, never resubmitted
        refused = self.schedule(description="go to narnia", priority=0, scheduled_time=0.0,
                                parameters_json=json.dumps({"place": "narnia"}))
        self.assertTrue(refused.success, refused.message)

        self.wait(lambda: len(self.tasks("patrol the hall")) >= 3, 10, "three patrol tasks")
        self.assertTrue(self.cancel(task_id=every.task_id).success)
        red = self.wait(lambda: self.tasks("go to the red cube"), 5, "the red cube task")
        self.assertGreaterEqual(red[0].created_time, due)
        self.assertLess(red[0].created_time, due + 1.0)
        self.assertEqual(red[0].priority, 7)
        self.assertEqual(json.loads(red[0].parameters_json).get("location"), [1.0, 2.0])
        patrols = [t.created_time for t in self.tasks("patrol the hall")]
        for earlier, later in itertools.pairwise(patrols):
            self.assertGreater(later - earlier, 0.5)  # one task per slot

        # a later marker: once it is queued, a repeat of anything above would have been too
        marker = self.schedule(description="go to the green cylinder", priority=0, scheduled_time=0.0,
                               parameters_json=json.dumps({"delay_s": 1.5}))
        self.assertTrue(marker.success, marker.message)
        self.wait(lambda: self.tasks("go to the green cylinder"), 5, "the marker task")
        self.assertEqual(len(self.tasks("go to the red cube")), 1)
        self.assertEqual([t.created_time for t in self.tasks("patrol the hall")], patrols)
        self.assertEqual(self.tasks("go to narnia"), [])
        self.wait(lambda: self.schedules_status.get("refused by the manager") == "1", 5,
                  "the refusal in the scheduler's diagnostics")
        self.assertEqual(self.schedules_status["failed submits (retried)"], "0")


if __name__ == "__main__":
    rospy.init_node("scheduler_manager_test")
    rostest.rosrun("vla_fleet", "scheduler_manager", SchedulerManagerTest)
