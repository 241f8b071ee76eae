"""Shared driver of the safety_node rostests: synthetic sensors and commands, outputs recorded in ROS time.

Every wait is vla_msgs.waiting.wait_until on rospy.get_time: a condition, never a fixed sleep.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import rospy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs import point_cloud2
from sensor_msgs.msg import LaserScan, PointCloud2
from std_msgs.msg import Bool, Header, String

from vla_msgs import json_forms, names, waiting

BEAMS = 360
T = TypeVar("T")


def wall_scan_ranges(distance: float | None) -> list[float]:
    """360 beams from straight ahead, counter-clockwise; a wall across x = distance (None: nothing)."""
    ranges = np.full(BEAMS, np.inf)
    if distance is not None:
        a = np.arange(BEAMS) * (2 * math.pi / BEAMS)
        c = np.cos(a)
        ahead = c > 0.2
        ranges[ahead] = distance / c[ahead]
    ranges[ranges > 10.0] = np.inf
    return ranges.tolist()


class SafetyHarness:
    """Publishes scan / cloud / odom and the command at 10 Hz; records cmd_vel (ROS time) and the status."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cmd_pub = rospy.Publisher(names.CMD_VEL_VLA, Twist, queue_size=10)
        self.scan_pub = rospy.Publisher(names.SCAN, LaserScan, queue_size=10)
        self.cloud_pub = rospy.Publisher(names.POINTS, PointCloud2, queue_size=10)
        self.odom_pub = rospy.Publisher(names.ODOM, Odometry, queue_size=10)
        self.trigger_pub = rospy.Publisher(names.EMERGENCY_STOP_TRIGGER, Bool, queue_size=100)
        self.cmd_vel: list[tuple[float, Twist]] = []  # (ROS time received, twist)
        self.status: dict | None = None
        self.estop: bool | None = None
        self.scan_ranges = wall_scan_ranges(None)
        self.cloud_points: list[tuple[float, float, float]] = [(9.0, 9.0, 0.5)]
        self.command: Twist | None = None
        self.command_sent_s: float | None = None  # ROS time of the last command published
        self.sensors_on = {names.SCAN: True, names.POINTS: True, names.ODOM: True}
        rospy.Subscriber(names.CMD_VEL, Twist, self._on_cmd_vel, queue_size=100)
        rospy.Subscriber(names.SAFETY_STATUS_JSON, String, self._on_status, queue_size=10)
        rospy.Subscriber(names.EMERGENCY_STOP, Bool, self._on_estop, queue_size=10)
        rospy.Timer(rospy.Duration(0.1), self._publish)

    def _on_cmd_vel(self, msg: Twist) -> None:
        with self.lock:
            self.cmd_vel.append((rospy.get_time(), msg))
            del self.cmd_vel[:-400]

    def _on_status(self, msg: String) -> None:
        self.status = json_forms.SAFETY_STATUS.parse(msg.data)  # the node must write the form

    def _on_estop(self, msg: Bool) -> None:
        self.estop = msg.data

    def _publish(self, _event) -> None:
        header = Header(stamp=rospy.Time.now(), frame_id="base_link")
        if self.sensors_on[names.SCAN]:
            scan = LaserScan(header=header, angle_min=0.0, angle_increment=2 * math.pi / BEAMS,
                             angle_max=2 * math.pi * (BEAMS - 1) / BEAMS, range_min=0.05, range_max=10.0,
                             ranges=self.scan_ranges)
            scan.header.frame_id = "laser"
            self.scan_pub.publish(scan)
        if self.sensors_on[names.POINTS]:
            self.cloud_pub.publish(point_cloud2.create_cloud_xyz32(header, self.cloud_points))
        if self.sensors_on[names.ODOM]:
            odom = Odometry()
            odom.header = header
            self.odom_pub.publish(odom)
        command = self.command
        if command is not None:
            self.cmd_pub.publish(command)
            self.command_sent_s = rospy.get_time()

    @staticmethod
    def twist(vx=0.0, vy=0.0, vz=0.0, wx=0.0, wy=0.0, wz=0.0) -> Twist:
        t = Twist()
        t.linear.x, t.linear.y, t.linear.z = vx, vy, vz
        t.angular.x, t.angular.y, t.angular.z = wx, wy, wz
        return t

    # ------------------------------------------------------------------ waiting
    def wait(self, condition: Callable[[], T], timeout_s: float = 5.0, what: str = "condition",
             poll_s: float = 0.01) -> T:
        """The condition's first truthy value within `timeout_s` of ROS time; fails naming the last status."""
        try:
            return waiting.wait_until(condition, timeout_s, what, clock=rospy.get_time, poll_s=poll_s)
        except waiting.WaitTimeout as exc:
            raise waiting.WaitTimeout(f"{exc}; last status: {self.status}") from None

    def wait_status(self, status: str, reason_part: str = "", timeout_s: float = 5.0) -> dict:
        return self.wait(lambda: self.status if self.status is not None and self.status["status"] == status
                         and reason_part in self.status["reason"] else None,
                         timeout_s, f"status {status} with '{reason_part}'")

    # ------------------------------------------------------------------ outputs
    def last_cmd(self) -> Twist | None:
        with self.lock:
            return self.cmd_vel[-1][1] if self.cmd_vel else None

    def outputs_since(self, t_s: float) -> list[tuple[float, Twist]]:
        with self.lock:
            return [(t, m) for t, m in self.cmd_vel if t >= t_s]

    def moving(self) -> bool:
        c = self.last_cmd()
        return c is not None and abs(c.linear.x) > 1e-3

    def stopped(self) -> bool:
        c = self.last_cmd()
        return c is not None and is_zero(c)


def is_zero(t: Twist) -> bool:
    return not any((t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z))
