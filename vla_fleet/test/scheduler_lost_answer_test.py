#!/usr/bin/env python3
"""scheduler_node submits a slot exactly once when the manager's answer is lost: the manager stores the task
and answers too late (after ~submit_timeout_s), the node gives up on the call, tries the slot again after its
backoff with the same submit_key, and gets the stored task's id back; one task, recorded on its schedule.

The test serves /fleet_manager/submit_task with the real manager core (vla_fleet.manager.FleetManager on an
in-memory store) and holds its first answer back: the one fake, since fleet_manager_node cannot be made to
lose an answer on cue.
"""

import shutil
import threading
import unittest
from pathlib import Path

import rospy
import rostest

from vla_fleet.manager import FleetManager, FleetManagerConfig
from vla_fleet.schedule_store import DONE, ScheduleStore
from vla_fleet.store import open_store
from vla_monitoring.config import build_config
from vla_msgs import names
from vla_msgs.srv import ScheduleTask, SubmitTask, SubmitTaskResponse
from vla_msgs.waiting import wait_until


class LateManager:
    """The manager core behind submit_task; the first call's task is stored at once, its answer held back."""

    def __init__(self):
        url = "sqlite:///:memory:"
        self.core = FleetManager(open_store(url), build_config(FleetManagerConfig, {"db_url": url}), rospy.get_time)
        self.lock = threading.Lock()
        self.answers = []          # (task id, new) of each call, in order
        self.release = threading.Event()
        rospy.Service(names.FLEET_SUBMIT_TASK, SubmitTask, self._on_submit)

    def _on_submit(self, req):
        with self.lock:  # the core is not thread-safe; rospy serves each connection on a thread of its own
            task, new = self.core.submit_once(req.description, req.priority, req.robot_id, req.parameters_json)
            self.answers.append((task.id, new))
            first = len(self.answers) == 1
        if first:
            self.release.wait(30)  # stored, and answered after the scheduler has given up on this call
        return SubmitTaskResponse(success=True, message="queued" if new else "already submitted", task_id=task.id)

    def calls(self):
        with self.lock:
            return list(self.answers)


class SchedulerLostAnswerTest(unittest.TestCase):
    def setUp(self):
        self.db_url = rospy.get_param("/scheduler_node/db_url")
        rospy.wait_for_service(names.SCHEDULER_SCHEDULE_TASK, 20)
        self.schedule = rospy.ServiceProxy(names.SCHEDULER_SCHEDULE_TASK, ScheduleTask)
        self.manager = LateManager()

    def tearDown(self):
        self.manager.release.set()
        folder = Path(self.db_url[len("sqlite:///"):]).parent
        if folder.parent == Path("/tmp"):  # this run's own folder (the .test file's $(anon ...))
            shutil.rmtree(folder, ignore_errors=True)

    def test_a_slot_whose_answer_was_lost_is_one_task(self):
        resp = self.schedule(description="go to the red cube", priority=1, scheduled_time=0.0)
        self.assertTrue(resp.success, resp.message)
        calls = wait_until(lambda: len(self.manager.calls()) >= 2 and self.manager.calls(), 15,
                           "the slot tried again after the first answer was held back", clock=rospy.get_time)
        (first_id, first_new), (again_id, again_new) = calls[:2]
        self.assertEqual((first_new, again_new), (True, False))
        self.assertEqual(again_id, first_id)
        store = ScheduleStore(self.db_url)
        try:
            row = wait_until(lambda: (s := store.get(resp.task_id)) is not None and s.state == DONE and s, 10,
                             "the schedule done", clock=rospy.get_time)
        finally:
            store.close()
        self.assertEqual((row.runs, row.last_task_id), (1, first_id))
        self.assertEqual([t.id for t in self.manager.core.store.list_tasks()], [first_id])
        self.assertEqual(len(self.manager.calls()), 2)  # done: no further try


if __name__ == "__main__":
    rospy.init_node("scheduler_lost_answer_test")
    rostest.rosrun("vla_fleet", "scheduler_lost_answer", SchedulerLostAnswerTest)
