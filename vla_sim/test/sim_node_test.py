#!/usr/bin/env python3
"""sim_node with one robot: sensor topics (type, rate in simulated time, frame), sim/state, task_command,
cmd_vel, sim/reset. Every wait is on a condition, every limit in simulated time (the node's /clock)."""

import json
import math
import threading
import unittest

import rospy
import rostest
import rostopic
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import BatteryState, Image, LaserScan, PointCloud2
from std_msgs.msg import String

from vla_msgs import json_forms
from vla_msgs.srv import ResetSim
from vla_msgs.waiting import wait_until

# topic: (type, nominal rate Hz of simulated time, expected frame_id)
SENSORS = {
    "camera/rgb/image_raw": (Image, 30.0, "camera_link"),
    "scan": (LaserScan, 10.0, "laser"),
    "velodyne_points": (PointCloud2, 10.0, "base_link"),
    "odom": (Odometry, 50.0, "odom"),
    "battery_state": (BatteryState, 1.0, "base_link"),
}
RATE_WINDOW_S = 3.0  # simulated seconds of stamps the rates are measured over


def wait(condition, timeout_s, what):
    """Waits on a condition with the limit in simulated time."""
    # Until the first /clock arrives ROS time reads 0, and a limit counted from 0 would be spent at once.
    wait_until(lambda: rospy.get_time() > 0.0, 30.0, "the first /clock message")
    return wait_until(condition, timeout_s, what, clock=rospy.get_time, poll_s=0.02)


class SimNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rospy.init_node("sim_node_test")
        cls.lock = threading.Lock()
        cls.msgs = {name: [] for name in SENSORS}
        cls.subs = [
            rospy.Subscriber(name, typ, cls._record, callback_args=name, queue_size=100)
            for name, (typ, _, _) in SENSORS.items()
        ]
        cls.state = None
        rospy.Subscriber("sim/state", String, cls._on_state, queue_size=1)
        cls.diag = {}
        rospy.Subscriber("/diagnostics", DiagnosticArray, cls._on_diag, queue_size=10)
        rospy.wait_for_service("sim/reset", 30)

    @classmethod
    def _record(cls, msg, name):
        with cls.lock:
            cls.msgs[name].append(msg)

    @classmethod
    def _on_state(cls, msg):
        cls.state = json_forms.SIM_STATE.parse(msg.data)

    @classmethod
    def _on_diag(cls, msg):
        for status in msg.status:
            if "vla_sim" in status.hardware_id:
                cls.diag[status.name.split(": ")[-1]] = {kv.key: kv.value for kv in status.values}

    def robot(self) -> dict:
        return self.state["robots"]["robot_1"]

    def diag_value(self, task: str, key: str) -> str | None:
        return self.diag.get(task, {}).get(key)

    def test_1_sensor_topics(self):
        def stamp_span(name):
            with self.lock:
                msgs = self.msgs[name]
                return msgs[-1].header.stamp.to_sec() - msgs[0].header.stamp.to_sec() if len(msgs) > 1 else 0.0

        wait(lambda: all(stamp_span(n) >= RATE_WINDOW_S for n in SENSORS), 30.0,
             f"{RATE_WINDOW_S} s of stamps on every sensor topic")
        with self.lock:
            snapshot = {k: list(v) for k, v in self.msgs.items()}
        now = rospy.get_time()
        for name, (typ, rate, frame) in SENSORS.items():
            topic_type, _, _ = rostopic.get_topic_type("/" + name)
            self.assertEqual(topic_type, typ._type, name)
            stamps = [m.header.stamp.to_sec() for m in snapshot[name]]
            self.assertEqual(stamps, sorted(stamps), f"{name}: stamps go back")
            got = (len(stamps) - 1) / (stamps[-1] - stamps[0])
            # Stamps are simulated time, so a loaded machine slows the clock, not the rate; the band
            # allows the 100 Hz physics tick's quantisation (30 Hz is every 3 or 4 ticks).
            self.assertGreater(got, 0.85 * rate, f"{name}: {got:.1f} Hz of simulated time, nominal {rate}")
            self.assertLess(got, 1.15 * rate, f"{name}: {got:.1f} Hz of simulated time, nominal {rate}")
            self.assertLess(abs(stamps[-1] - now), 2.0, f"{name}: stamp {stamps[-1]:.2f} is not /clock time {now:.2f}")
            self.assertEqual(snapshot[name][-1].header.frame_id, frame, name)
        img = snapshot["camera/rgb/image_raw"][-1]
        self.assertEqual((img.height, img.width, img.encoding), (96, 96, "rgb8"))
        self.assertEqual(len(img.data), 96 * 96 * 3)
        scan = snapshot["scan"][-1]
        self.assertEqual(len(scan.ranges), 360)
        self.assertTrue(any(math.isfinite(r) for r in scan.ranges))
        cloud = snapshot["velodyne_points"][-1]
        self.assertEqual([f.name for f in cloud.fields], ["x", "y", "z"])
        self.assertGreater(cloud.width, 100)
        self.assertEqual(snapshot["odom"][-1].child_frame_id, "base_link")
        self.assertTrue(0.0 <= snapshot["battery_state"][-1].percentage <= 1.0)

    def test_2_state_and_tasks(self):
        wait(lambda: self.state is not None, 10.0, "sim/state")
        robot = self.robot()
        for key in ("x", "y", "yaw", "collisions", "task", "target", "distance_to_target", "reached"):
            self.assertIn(key, robot)
        self.assertIsNone(robot["distance_to_target"])
        names = {o["name"] for o in self.state["objects"]}
        self.assertTrue({"red cube", "blue ball", "green cylinder", "yellow cone"} <= names)

        task = rospy.Publisher("task_command", String, queue_size=10, latch=True)
        task.publish(String(data=json.dumps({"description": "go to the blue ball", "id": "t1"})))
        wait(lambda: self.robot()["target"] == "blue ball", 10.0, "the blue ball as target")
        self.assertGreaterEqual(self.robot()["distance_to_target"], 0.0)
        # the idle words of vla_msgs' grammar clear the task, as they idle the policy
        for idle in ("halt", "Stop.", "standby"):
            task.publish(String(data="go to the red cube"))
            wait(lambda: self.robot()["target"] == "red cube", 10.0, "the red cube as target")
            task.publish(String(data=idle))
            wait(lambda: self.robot()["target"] is None and self.robot()["task"] is None, 10.0,
                 f"{idle!r} to clear the task")
        # a task addressed to another robot is refused and counted; the robot stays idle
        task.publish(String(data=json.dumps({"description": "go to the blue ball", "robot_id": "robot_9"})))
        wait(lambda: self.diag_value("robots", "robot_1 bad_task_commands") == "1", 10.0,
             "the refused task in diagnostics")
        self.assertIsNone(self.robot()["target"])

    def test_3_motion(self):
        wait(lambda: self.state is not None, 10.0, "sim/state")
        cmd = rospy.Publisher("cmd_vel", Twist, queue_size=1)
        wait(lambda: cmd.get_num_connections() > 0, 10.0, "sim_node on cmd_vel")
        start = dict(self.robot())
        nan = Twist()
        nan.linear.x = float("nan")

        def refused_nan() -> bool:
            cmd.publish(nan)
            return self.diag_value("robots", "robot_1 rejected_twists") not in (None, "0")

        wait(refused_nan, 10.0, "NaN twists counted in diagnostics")
        # NaN twists are ignored: a state stamped a while after them shows the robot where it was
        after_s = rospy.get_time() + 0.3
        wait(lambda: self.state["timestamp"] >= after_s, 10.0, "a newer sim/state")
        self.assertAlmostEqual(self.robot()["x"], start["x"], places=3)
        self.assertAlmostEqual(self.robot()["y"], start["y"], places=3)
        # a real twist turns the robot
        turn = Twist()
        turn.angular.z = 0.8

        def turned() -> bool:
            cmd.publish(turn)
            return abs(math.remainder(self.robot()["yaw"] - start["yaw"], math.tau)) > 0.2

        wait(turned, 10.0, "the robot to turn")

    def test_4_reset(self):
        wait(lambda: self.state is not None, 10.0, "sim/state")
        reset = rospy.ServiceProxy("sim/reset", ResetSim)
        resp = reset(seed=-1)
        self.assertFalse(resp.success)
        self.assertIn("seed", resp.message)
        before = [(o["x"], o["y"]) for o in self.state["objects"]]
        clock_before = rospy.get_time()
        resp = reset(seed=11)
        self.assertTrue(resp.success, resp.message)
        wait(lambda: [(o["x"], o["y"]) for o in self.state["objects"]] != before, 10.0, "the new layout")
        self.assertGreaterEqual(rospy.get_time(), clock_before)  # /clock goes on across a reset


if __name__ == "__main__":
    rostest.rosrun("vla_sim", "sim_node_topics", SimNodeTest)
