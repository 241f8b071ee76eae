#!/usr/bin/env python3
"""scheduler_node fires schedules in ROS time, each slot once: a schedule made while the manager is down is
submitted once it is up; a one-shot not before its time; an interval until cancelled; bad requests are refused
with the reason and counted in diagnostics; /task_feedback on a submitted task is kept with its schedule.

The test serves /fleet_manager/submit_task itself (recording each call with its ROS time): the
fleet manager is another engineer's work in progress.
"""

import itertools
import json
import shutil
import threading
import unittest
from pathlib import Path

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String

from vla_fleet.schedule_store import ScheduleStore
from vla_msgs import json_forms, names
from vla_msgs.srv import CancelTask, ScheduleTask, SubmitTask, SubmitTaskResponse
from vla_msgs.waiting import wait_until


class StandInManager:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []  # (ROS time, description, priority, parameters_json)

    def serve(self):
        rospy.Service(names.FLEET_SUBMIT_TASK, SubmitTask, self._on_submit)

    def _on_submit(self, req):
        with self.lock:
            self.calls.append((rospy.get_time(), req.description, req.priority, req.parameters_json))
            return SubmitTaskResponse(success=True, message="queued", task_id=f"task-{len(self.calls)}")

    def times(self, description):
        with self.lock:
            return [t for t, d, _, _ in self.calls if d == description]


class SchedulerFiresTest(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        folder = Path(rospy.get_param("/scheduler_node/db_url")[len("sqlite:///"):]).parent
        if folder.parent == Path("/tmp"):  # this run's own folder (the .test file's $(anon ...))
            shutil.rmtree(folder, ignore_errors=True)

    def setUp(self):
        self.feedback = rospy.Publisher(names.TASK_FEEDBACK, String, queue_size=10)
        self.diagnostics = {}
        rospy.Subscriber("/diagnostics", DiagnosticArray, self._on_diagnostics, queue_size=10)
        rospy.wait_for_service(names.SCHEDULER_SCHEDULE_TASK, 20)
        self.schedule = rospy.ServiceProxy(names.SCHEDULER_SCHEDULE_TASK, ScheduleTask)
        self.cancel = rospy.ServiceProxy(names.SCHEDULER_CANCEL_TASK, CancelTask)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def wait(self, condition, timeout_s, what):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time, poll_s=0.02)

    def dropped(self, source):
        for name, values in self.diagnostics.items():
            if name.endswith("inputs") and f"dropped {source}" in values:
                return int(values[f"dropped {source}"])
        return None

    def test_schedules_fire_once_in_ros_time(self):
        manager = StandInManager()

        # made while the manager is down: retried, submitted once when it comes up
        resp = self.schedule(description="go to the red cube", priority=2, scheduled_time=0.0)
        self.assertTrue(resp.success, resp.message)
        down_until = rospy.get_time() + 1.0
        self.wait(lambda: rospy.get_time() >= down_until, 5, "a second with the manager down")
        manager.serve()
        self.wait(lambda: manager.times("go to the red cube"), 5, "the red cube task submitted")

        # a one-shot at a time: not before it, once
        due = rospy.get_time() + 1.5
        resp = self.schedule(description="go to the blue ball", priority=1, scheduled_time=due,
                             parameters_json=json.dumps({"place": "shelf"}))
        self.assertTrue(resp.success, resp.message)
        fired = self.wait(lambda: manager.times("go to the blue ball"), 5, "the blue ball task submitted")
        self.assertGreaterEqual(fired[0], due)
        self.assertLess(fired[0], due + 1.0)

        # an interval of 1 s: a submit per slot, none after it is cancelled
        start = rospy.get_time()
        every = self.schedule(description="patrol the hall", priority=5, scheduled_time=0.0,
                              parameters_json=json.dumps({"interval_s": 1.0}))
        self.assertTrue(every.success, every.message)
        self.wait(lambda: len(manager.times("patrol the hall")) >= 3, 10, "three patrols")
        cancelled = self.cancel(task_id=every.task_id)
        self.assertTrue(cancelled.success, cancelled.message)
        patrols = manager.times("patrol the hall")
        for earlier, later in itertools.pairwise(patrols):
            self.assertGreater(later - earlier, 0.5)  # one per slot, not a burst
        self.assertLessEqual(len(patrols), int(rospy.get_time() - start) + 2)

        # a later marker: once it has fired, every earlier schedule has had its chance to fire again
        marker = self.schedule(description="go to the green cylinder", priority=0, scheduled_time=0.0,
                               parameters_json=json.dumps({"delay_s": 1.5}))
        self.assertTrue(marker.success, marker.message)
        self.wait(lambda: manager.times("go to the green cylinder"), 5, "the marker submitted")
        self.assertEqual(len(manager.times("go to the red cube")), 1)
        self.assertEqual(len(manager.times("go to the blue ball")), 1)
        self.assertEqual(manager.times("patrol the hall"), patrols)
        with manager.lock:
            number, blue = next((i + 1, c) for i, c in enumerate(manager.calls) if c[1] == "go to the blue ball")
        params = json.loads(blue[3])
        key = params.pop("submit_key")  # the slot's idempotency key: the same on every try of that slot
        self.assertEqual((blue[2], params), (1, {"place": "shelf"}))
        self.assertTrue(key.startswith(f"{resp.task_id}@"), key)
        with manager.lock:
            patrol_keys = [json.loads(c[3])["submit_key"] for c in manager.calls if c[1] == "patrol the hall"]
        self.assertEqual(len(set(patrol_keys)), len(patrols))  # each slot its own key

        # a robot's report on that task is kept with its schedule (read from the node's database file)
        self.wait(lambda: self.feedback.get_num_connections() > 0, 5, "scheduler_node on /task_feedback")
        self.feedback.publish(String(data=json_forms.TASK_FEEDBACK.build(
            timestamp=rospy.get_time(), robot_id="robot_1", task_id=f"task-{number}", state="failed",
            reason="blocked")))
        store = ScheduleStore(rospy.get_param("/scheduler_node/db_url"))
        self.wait(lambda: store.get(resp.task_id).last_outcome == "failed: blocked", 5, "the outcome stored")
        store.close()

    def test_bad_requests_are_refused_and_counted(self):
        bad = [
            dict(description="go", priority=0, scheduled_time=0.0, parameters_json="{not json"),
            dict(description="go", priority=1001, scheduled_time=0.0, parameters_json=""),
            dict(description="go", priority=0, scheduled_time=0.0, parameters_json='{"cron": "0 0 30 2 *"}'),
            dict(description="go", priority=0, scheduled_time=0.0, parameters_json='{"interval_s": 1e-9}'),
        ]
        says = ["not valid JSON", "priority must be in", "never fires", "interval_s must be in"]
        for request, reason in zip(bad, says, strict=True):
            resp = self.schedule(**request)
            self.assertFalse(resp.success)
            self.assertIn(reason, resp.message)
            self.assertEqual(resp.task_id, "")
        self.wait(lambda: self.feedback.get_num_connections() > 0, 5, "scheduler_node on /task_feedback")
        self.feedback.publish(String(data="not json"))
        self.feedback.publish(String(data='{"timestamp": 1, "robot_id": "r", "task_id": "t", "state": "exploded"}'))
        resp = self.cancel(task_id="no-such-schedule")
        self.assertFalse(resp.success)
        self.assertIn("no schedule", resp.message)
        self.wait(lambda: self.dropped(names.SCHEDULER_SCHEDULE_TASK) == len(bad), 5,
                  "the refused schedules counted in diagnostics")
        self.wait(lambda: self.dropped(names.SCHEDULER_CANCEL_TASK) == 1, 5, "the refused cancel counted")
        self.wait(lambda: self.dropped(names.TASK_FEEDBACK) == 2, 5, "the bad feedback counted")


if __name__ == "__main__":
    rospy.init_node("scheduler_fires_test")
    rostest.rosrun("vla_fleet", "scheduler_fires", SchedulerFiresTest)
