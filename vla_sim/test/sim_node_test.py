#!/usr/bin/env python3
"""sim_node with one robot: sensor topics (type, rate, frame), sim/state, task_command, cmd_vel, sim/reset."""

import json
import math
import threading
import time
import unittest

import rospy
import rostest
import rostopic
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from polling import wait_for
from sensor_msgs.msg import BatteryState, Image, LaserScan, PointCloud2
from std_msgs.msg import String

from vla_msgs.srv import ResetSim

# topic: (type, nominal rate Hz, expected frame_id)
SENSORS = {
    "camera/rgb/image_raw": (Image, 30.0, "camera_link"),
    "scan": (LaserScan, 10.0, "laser"),
    "velodyne_points": (PointCloud2, 10.0, "base_link"),
    "odom": (Odometry, 50.0, "odom"),
    "battery_state": (BatteryState, 1.0, "base_link"),
}


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
        rospy.wait_for_service("sim/reset", 20)

    @classmethod
    def _record(cls, msg, name):
        with cls.lock:
            cls.msgs[name].append((time.monotonic(), msg))

    @classmethod
    def _on_state(cls, msg):
        cls.state = json.loads(msg.data)

    def wait_for(self, predicate, timeout_s=10.0):
        return wait_for(predicate, timeout_s)

    def test_1_sensor_topics(self):
        self.assertTrue(self.wait_for(lambda: all(self.msgs.values()), 20), "some sensor topic is silent")
        with self.lock:
            for name in self.msgs:
                self.msgs[name].clear()
        window_s = 4.0
        time.sleep(window_s)
        with self.lock:
            snapshot = {k: list(v) for k, v in self.msgs.items()}
        for name, (typ, rate, frame) in SENSORS.items():
            topic_type, _, _ = rostopic.get_topic_type("/" + name)
            self.assertEqual(topic_type, typ._type, name)
            got = len(snapshot[name]) / window_s
            # CI machines are shared: allow a wide band, but a wrong rate (e.g. 10 vs 30 Hz) still fails.
            self.assertGreater(got, 0.6 * rate - 0.5, f"{name}: {got:.1f} Hz, nominal {rate}")
            self.assertLess(got, 1.3 * rate + 0.5, f"{name}: {got:.1f} Hz, nominal {rate}")
            msg = snapshot[name][-1][1]
            self.assertEqual(msg.header.frame_id, frame, name)
        img = snapshot["camera/rgb/image_raw"][-1][1]
        self.assertEqual((img.height, img.width, img.encoding), (96, 96, "rgb8"))
        self.assertEqual(len(img.data), 96 * 96 * 3)
        scan = snapshot["scan"][-1][1]
        self.assertEqual(len(scan.ranges), 360)
        self.assertTrue(any(math.isfinite(r) for r in scan.ranges))
        cloud = snapshot["velodyne_points"][-1][1]
        self.assertEqual([f.name for f in cloud.fields], ["x", "y", "z"])
        self.assertGreater(cloud.width, 100)
        self.assertEqual(snapshot["odom"][-1][1].child_frame_id, "base_link")
        self.assertTrue(0.0 <= snapshot["battery_state"][-1][1].percentage <= 1.0)

    def test_2_state_task_motion_reset(self):
        self.assertTrue(self.wait_for(lambda: self.state is not None), "no sim/state")
        s = self.state
        self.assertIsInstance(s["timestamp"], float)
        robot = s["robots"]["robot_1"]
        for key in ("x", "y", "yaw", "collisions", "task", "target", "distance_to_target", "reached"):
            self.assertIn(key, robot)
        self.assertIsNone(robot["distance_to_target"])
        names = {o["name"] for o in s["objects"]}
        self.assertTrue({"red cube", "blue ball", "green cylinder", "yellow cone"} <= names)

        task = rospy.Publisher("task_command", String, queue_size=1, latch=True)
        task.publish(String(data=json.dumps({"description": "go to the blue ball", "id": "t1"})))
        self.assertTrue(self.wait_for(lambda: self.state["robots"]["robot_1"]["target"] == "blue ball"))
        self.assertGreaterEqual(self.state["robots"]["robot_1"]["distance_to_target"], 0.0)

        # NaN twists are ignored: the node lives on and the robot does not move
        cmd = rospy.Publisher("cmd_vel", Twist, queue_size=1)
        self.wait_for(lambda: cmd.get_num_connections() > 0, 5)
        start = dict(self.state["robots"]["robot_1"])
        nan = Twist()
        nan.linear.x = float("nan")
        for _ in range(5):
            cmd.publish(nan)
            time.sleep(0.05)
        time.sleep(0.3)
        now = self.state["robots"]["robot_1"]
        self.assertAlmostEqual(now["x"], start["x"], places=3)
        self.assertAlmostEqual(now["y"], start["y"], places=3)
        # a real twist turns the robot
        turn = Twist()
        turn.angular.z = 0.8
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            cmd.publish(turn)
            time.sleep(0.05)
        time.sleep(0.2)
        self.assertGreater(abs(self.state["robots"]["robot_1"]["yaw"] - start["yaw"]), 0.2)

        task.publish(String(data="stop"))
        self.assertTrue(self.wait_for(lambda: self.state["robots"]["robot_1"]["target"] is None))

        reset = rospy.ServiceProxy("sim/reset", ResetSim)
        resp = reset(seed=-1)
        self.assertFalse(resp.success)
        self.assertIn("seed", resp.message)
        before = [(o["x"], o["y"]) for o in self.state["objects"]]
        resp = reset(seed=11)
        self.assertTrue(resp.success, resp.message)
        time.sleep(0.3)
        self.assertNotEqual([(o["x"], o["y"]) for o in self.state["objects"]], before)


if __name__ == "__main__":
    rostest.rosrun("vla_sim", "sim_node_topics", SimNodeTest)
