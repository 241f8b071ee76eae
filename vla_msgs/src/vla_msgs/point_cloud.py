"""Reading sensor_msgs/PointCloud2 into numpy, with every size and offset checked first.

Takes any object with the message's fields (fields, data, width, height, point_step, row_step,
is_bigendian), so it needs no rospy; a cloud whose numbers disagree with its data raises
PointCloudError instead of reading past the buffer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# sensor_msgs/PointField datatype → numpy dtype
DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32, 7: np.float32,
          8: np.float64}


class PointCloudError(ValueError):
    """A PointCloud2 that cannot be read as it claims to be laid out."""


def read_points(msg: Any, field_names: tuple[str, ...] = ("x", "y", "z")) -> np.ndarray:
    """The named fields of every point as a float64 array [N, len(field_names)], no per-point loop."""
    offsets = {}
    for f in msg.fields:
        if f.name in field_names:
            if f.datatype not in DTYPES or f.count != 1:
                raise PointCloudError(f"cloud field {f.name} has unsupported datatype {f.datatype}/count {f.count}")
            offsets[f.name] = (f.offset, DTYPES[f.datatype])
    missing = [n for n in field_names if n not in offsets]
    if missing:
        raise PointCloudError(f"cloud has no {'/'.join(missing)} field(s)")
    n = msg.width * msg.height
    if n == 0:
        return np.zeros((0, len(field_names)))
    if msg.point_step <= 0 or msg.row_step < msg.width * msg.point_step or len(msg.data) < msg.row_step * msg.height:
        raise PointCloudError(f"cloud data length {len(msg.data)} does not match {msg.height}x{msg.width} points "
                              f"of {msg.point_step} bytes (row_step {msg.row_step})")
    for name, (off, dt) in offsets.items():
        if off < 0 or off + np.dtype(dt).itemsize > msg.point_step:
            raise PointCloudError(f"cloud field {name} lies outside point_step {msg.point_step}")
    endian = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": list(field_names),
                      "formats": [np.dtype(offsets[k][1]).newbyteorder(endian) for k in field_names],
                      "offsets": [offsets[k][0] for k in field_names], "itemsize": msg.point_step})
    buf = np.frombuffer(bytes(msg.data) if isinstance(msg.data, list) else msg.data, dtype=np.uint8)
    rows = buf[: msg.row_step * msg.height].reshape(msg.height, msg.row_step)[:, : msg.width * msg.point_step]
    arr = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    out = np.empty((n, len(field_names)))
    for i, name in enumerate(field_names):
        out[:, i] = arr[name]
    return out


def read_xyz(msg: Any) -> np.ndarray:
    """Points [N, 3] float64."""
    return read_points(msg, ("x", "y", "z"))
