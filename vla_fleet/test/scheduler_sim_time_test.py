#!/usr/bin/env python3
"""scheduler_node on simulated time: /clock, published here at ten times wall speed, decides when a schedule is
due. A one-shot 20 s ahead fires within a poll of its simulated time (on wall time it would fire ~180 simulated
seconds late); an interval of 5 s fires once per simulated slot.

The test serves /fleet_manager/submit_task itself (recording each call with its ROS time).
"""

import itertools
import json
import threading
import time
import unittest

import rospy
import rostest
from rosgraph_msgs.msg import Clock

from vla_msgs import names
from vla_msgs.srv import CancelTask, ScheduleTask, SubmitTask, SubmitTaskResponse
from vla_msgs.waiting import wait_until

START_S = 1000.0
SPEED = 10.0     # simulated seconds per wall second
STEP_S = 0.01    # wall seconds between /clock messages


class SimTimeTest(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.calls = []
        self.stop = threading.Event()
        pub = rospy.Publisher("/clock", Clock, queue_size=10)
        self.clock = threading.Thread(target=self._publish_clock, args=(pub,), daemon=True)
        self.clock.start()
        rospy.Service(names.FLEET_SUBMIT_TASK, SubmitTask, self._on_submit)
        rospy.wait_for_service(names.SCHEDULER_SCHEDULE_TASK, 20)
        self.schedule = rospy.ServiceProxy(names.SCHEDULER_SCHEDULE_TASK, ScheduleTask)
        self.cancel = rospy.ServiceProxy(names.SCHEDULER_CANCEL_TASK, CancelTask)

    def tearDown(self):
        self.stop.set()

    def _publish_clock(self, pub):
        wall0 = time.monotonic()
        while not self.stop.is_set() and not rospy.is_shutdown():
            pub.publish(Clock(clock=rospy.Time.from_sec(START_S + SPEED * (time.monotonic() - wall0))))
            self.stop.wait(STEP_S)  # the clock's own pace, in wall time: this thread is the simulator

    def _on_submit(self, req):
        with self.lock:
            self.calls.append((rospy.get_time(), req.description))
            return SubmitTaskResponse(success=True, message="queued", task_id=f"task-{len(self.calls)}")

    def times(self, description):
        with self.lock:
            return [t for t, d in self.calls if d == description]

    def wait(self, condition, timeout_s, what):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time, poll_s=0.01)

    def test_simulated_time_decides(self):
        self.wait(lambda: rospy.get_time() > START_S, 5, "the simulated clock")
        due = rospy.get_time() + 20.0
        resp = self.schedule(description="go to the red cube", priority=0, scheduled_time=due)
        self.assertTrue(resp.success, resp.message)
        fired = self.wait(lambda: self.times("go to the red cube"), 30, "the one-shot submitted")
        self.assertGreaterEqual(fired[0], due)
        self.assertLess(fired[0], due + 2.0)  # a poll is 0.05 s; ten times that in clock steps is plenty

        every = self.schedule(description="patrol the hall", priority=0, scheduled_time=0.0,
                              parameters_json=json.dumps({"interval_s": 5.0}))
        self.assertTrue(every.success, every.message)
        patrols = self.wait(lambda: (lambda t: t if len(t) >= 4 else None)(self.times("patrol the hall")), 40,
                            "four patrols")
        self.assertTrue(self.cancel(task_id=every.task_id).success)
        for earlier, later in itertools.pairwise(patrols[:4]):
            self.assertAlmostEqual(later - earlier, 5.0, delta=1.0)


if __name__ == "__main__":
    rospy.init_node("scheduler_sim_time_test")
    rostest.rosrun("vla_fleet", "scheduler_sim_time", SimTimeTest)
