"""Shared driver of the safety_node rostests: synthetic sensors and commands, recorded outputs."""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import rospy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs import point_cloud2
from sensor_msgs.msg import LaserScan, PointCloud2
from std_msgs.msg import Bool, Header, String

BEAMS = 360


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



def wait_for(predicate, timeout: float = 5.0, period: float = 0.02) -> bool:
    """True as soon as predicate() holds; a predicate reading a message not yet received counts as false."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not rospy.is_shutdown():
        try:
            if predicate():
                return True
        except (TypeError, KeyError, AttributeError):
            pass
        time.sleep(period)
    return False

class SafetyHarness:
    """Publishes scan / cloud / odom at 10 Hz and a command at 10 Hz; records cmd_vel and status."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cmd_pub = rospy.Publisher("cmd_vel_vla", Twist, queue_size=10)
        self.scan_pub = rospy.Publisher("scan", LaserScan, queue_size=10)
        self.cloud_pub = rospy.Publisher("velodyne_points", PointCloud2, queue_size=10)
        self.odom_pub = rospy.Publisher("odom", Odometry, queue_size=10)
        self.trigger_pub = rospy.Publisher("emergency_stop/trigger", Bool, queue_size=100)
        self.cmd_vel: list[tuple[float, Twist]] = []
        self.status: dict | None = None
        self.estop: bool | None = None
        self.scan_ranges = wall_scan_ranges(None)
        self.cloud_points: list[tuple[float, float, float]] = [(9.0, 9.0, 0.5)]
        self.command: Twist | None = None
        self.sensors_on = {"scan": True, "velodyne_points": True, "odom": True}
        rospy.Subscriber("cmd_vel", Twist, self._on_cmd_vel, queue_size=100)
        rospy.Subscriber("vla_safety_status", String, self._on_status, queue_size=10)
        rospy.Subscriber("emergency_stop", Bool, self._on_estop, queue_size=10)
        rospy.Timer(rospy.Duration(0.1), self._publish)

    def _on_cmd_vel(self, msg: Twist) -> None:
        with self.lock:
            self.cmd_vel.append((time.monotonic(), msg))
            del self.cmd_vel[:-200]

    def _on_status(self, msg: String) -> None:
        self.status = json.loads(msg.data)

    def _on_estop(self, msg: Bool) -> None:
        self.estop = msg.data

    def _publish(self, _event) -> None:
        header = Header(stamp=rospy.Time.now(), frame_id="base_link")
        if self.sensors_on["scan"]:
            scan = LaserScan(header=header, angle_min=0.0, angle_increment=2 * math.pi / BEAMS,
                             angle_max=2 * math.pi * (BEAMS - 1) / BEAMS, range_min=0.05, range_max=10.0,
                             ranges=self.scan_ranges)
            scan.header.frame_id = "laser"
            self.scan_pub.publish(scan)
        if self.sensors_on["velodyne_points"]:
            self.cloud_pub.publish(point_cloud2.create_cloud_xyz32(header, self.cloud_points))
        if self.sensors_on["odom"]:
            odom = Odometry()
            odom.header = header
            self.odom_pub.publish(odom)
        if self.command is not None:
            self.cmd_pub.publish(self.command)

    @staticmethod
    def twist(vx=0.0, vy=0.0, vz=0.0, wx=0.0, wy=0.0, wz=0.0) -> Twist:
        t = Twist()
        t.linear.x, t.linear.y, t.linear.z = vx, vy, vz
        t.angular.x, t.angular.y, t.angular.z = wx, wy, wz
        return t

    def last_cmd(self) -> Twist | None:
        with self.lock:
            return self.cmd_vel[-1][1] if self.cmd_vel else None

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        return wait_for(predicate, timeout)

    def wait_status(self, status: str, reason_part: str = "", timeout: float = 5.0) -> bool:
        return self.wait_for(lambda: self.status["status"] == status and reason_part in self.status["reason"],
                             timeout)

    def moving(self) -> bool:
        c = self.last_cmd()
        return c is not None and abs(c.linear.x) > 1e-3

    def stopped(self) -> bool:
        c = self.last_cmd()
        return c is not None and c.linear.x == 0.0 and c.linear.y == 0.0 and c.angular.z == 0.0
