"""Message <-> numpy conversions for the safety node (a bad scan raises BadSensorDataError).

PointCloud2 is read by vla_msgs.point_cloud.read_xyz, the suite's one reader.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Twist
from sensor_msgs.msg import LaserScan

from vla_safety.collision import scan_points


def twist_to_array(msg: Twist) -> np.ndarray:
    return np.array([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z],
                    dtype=np.float64)


def array_to_twist(v: np.ndarray, msg: Twist | None = None) -> Twist:
    msg = msg or Twist()
    msg.linear.x, msg.linear.y, msg.linear.z = float(v[0]), float(v[1]), float(v[2])
    msg.angular.x, msg.angular.y, msg.angular.z = float(v[3]), float(v[4]), float(v[5])
    return msg


def laserscan_points(msg: LaserScan) -> np.ndarray:
    """Points [N, 2] in the scan's frame."""
    return scan_points(np.asarray(msg.ranges, dtype=np.float64), msg.angle_min, msg.angle_increment,
                       msg.range_min, msg.range_max)
