"""Message ↔ numpy conversions for the safety node (validation raises BadSensorDataError / ValueError)."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Twist
from sensor_msgs.msg import LaserScan, PointCloud2

from vla_safety.collision import BadSensorDataError, scan_points

# PointField datatype → numpy dtype
_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32, 7: np.float32,
           8: np.float64}


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


def cloud_xyz(msg: PointCloud2) -> np.ndarray:
    """Points [N, 3] float64 from a PointCloud2 without a per-point Python loop."""
    offsets = {}
    for f in msg.fields:
        if f.name in ("x", "y", "z"):
            if f.datatype not in _DTYPES or f.count != 1:
                raise BadSensorDataError(f"cloud field {f.name} has unsupported datatype {f.datatype}/count {f.count}")
            offsets[f.name] = (f.offset, _DTYPES[f.datatype])
    missing = [n for n in ("x", "y", "z") if n not in offsets]
    if missing:
        raise BadSensorDataError(f"cloud has no {'/'.join(missing)} field(s)")
    n = msg.width * msg.height
    if n == 0:
        return np.zeros((0, 3))
    if msg.point_step <= 0 or msg.row_step < msg.width * msg.point_step or len(msg.data) < msg.row_step * msg.height:
        raise BadSensorDataError(f"cloud data length {len(msg.data)} does not match {msg.height}x{msg.width} points "
                            f"of {msg.point_step} bytes")
    for name, (off, dt) in offsets.items():
        if off + np.dtype(dt).itemsize > msg.point_step:
            raise BadSensorDataError(f"cloud field {name} lies outside point_step {msg.point_step}")
    endian = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": ["x", "y", "z"],
                      "formats": [np.dtype(offsets[k][1]).newbyteorder(endian) for k in ("x", "y", "z")],
                      "offsets": [offsets[k][0] for k in ("x", "y", "z")], "itemsize": msg.point_step})
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    rows = buf[: msg.row_step * msg.height].reshape(msg.height, msg.row_step)[:, : msg.width * msg.point_step]
    arr = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    out = np.empty((n, 3))
    out[:, 0], out[:, 1], out[:, 2] = arr["x"], arr["y"], arr["z"]
    return out
