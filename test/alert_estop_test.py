#!/usr/bin/env python3
"""A latched e-stop is a CRITICAL alert within 2 s of ROS time: the real safety_node latches on
emergency_stop/trigger, alert_node reads its vla_safety_status with the deployed rules.

The test drives /clock itself (5 ms steps at about real time), so the 2 s are simulated seconds: a
loaded machine that starves the nodes starves the clock too."""

import threading
import time
import unittest

import rospy
import rostest
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool, String

from vla_msgs import json_forms, names
from vla_msgs.msg import Alert
from vla_msgs.waiting import wait_until

STEP_S = 0.005
LIMIT_S = 2.0


class SimClock:
    """Publishes /clock from 1 s on in STEP_S steps, one step per STEP_S of wall time at most."""

    def __init__(self):
        self.pub = rospy.Publisher(names.CLOCK, Clock, queue_size=1)
        self.now_ns = 1_000_000_000
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not rospy.is_shutdown():
            self.now_ns += int(STEP_S * 1e9)
            self.pub.publish(Clock(clock=rospy.Time(nsecs=self.now_ns)))
            time.sleep(STEP_S)  # wall-time pacing of the simulated clock itself


class AlertEstopTest(unittest.TestCase):
    def test_estop_is_critical_within_two_seconds(self):
        clock = SimClock()
        lock = threading.Lock()
        events: list[tuple[float, dict]] = []
        typed: list[Alert] = []
        status: dict = {}

        def on_alert(msg: String) -> None:
            with lock:
                events.append((rospy.get_time(), json_forms.ALERTS.parse(msg.data)))

        def on_status(msg: String) -> None:
            status.update(json_forms.SAFETY_STATUS.parse(msg.data))

        rospy.Subscriber(names.ALERTS_JSON, String, on_alert, queue_size=20)
        rospy.Subscriber(names.ALERTS, Alert, typed.append, queue_size=20)
        rospy.Subscriber(names.SAFETY_STATUS_JSON, String, on_status, queue_size=20)
        trigger = rospy.Publisher(names.EMERGENCY_STOP_TRIGGER, Bool, queue_size=1)
        wait_until(lambda: clock.pub.get_num_connections() >= 2, 30.0, "the nodes on /clock", wall_limit_s=60.0)
        wait_until(lambda: trigger.get_num_connections() > 0, 30.0, "safety_node on the trigger",
                   clock=rospy.get_time)
        wait_until(lambda: status.get("emergency_stop") is False, 30.0, "safety_node's status without e-stop",
                   clock=rospy.get_time)
        self.assertEqual(events, [], "an alert before the e-stop")

        triggered = rospy.get_time()
        trigger.publish(Bool(data=True))

        def critical():
            with lock:
                return next(((t, e) for t, e in events if e["type"] == "emergency_stop"), None)

        arrived, event = wait_until(critical, LIMIT_S + 3.0, "the emergency_stop alert", clock=rospy.get_time)
        rospy.loginfo("emergency_stop alert %.3f s (ROS time) after the trigger", arrived - triggered)
        self.assertEqual((event["level"], event["state"], event["robot_id"]), ("CRITICAL", "firing", "robot_1"))
        self.assertLessEqual(arrived - triggered, LIMIT_S, f"the CRITICAL alert came {arrived - triggered:.2f} s "
                                                           "(ROS time) after the trigger")
        self.assertTrue(status["emergency_stop"])
        wait_until(lambda: any(m.type == "emergency_stop" for m in typed), 5.0, "vla/alerts", clock=rospy.get_time)
        self.assertEqual(next(m for m in typed if m.type == "emergency_stop").level, Alert.CRITICAL)


if __name__ == "__main__":
    rospy.init_node("alert_estop_test")
    rostest.rosrun("vla_deployment", "alert_estop", AlertEstopTest)
