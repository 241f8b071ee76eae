"""PointCloud2 reading: layouts read right (padding, row_step, big-endian), and every bad size is refused."""

from types import SimpleNamespace

import numpy as np
import pytest

from vla_msgs.point_cloud import PointCloudError, read_points, read_xyz

FLOAT32, FLOAT64, INT16 = 7, 8, 3


def field(name, offset, datatype=FLOAT32, count=1):
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


def cloud(points, point_step=16, row_pad=0, height=1, bigendian=False, fields=None, dtype="f4"):
    """A cloud of float xyz points (x at 0, y at 4, z at 8), each row padded by `row_pad` bytes."""
    points = np.asarray(points, dtype=np.float64).reshape(height, -1, 3)
    width = points.shape[1]
    order = ">" if bigendian else "<"
    row_step = width * point_step + row_pad
    data = bytearray(row_step * height)
    size = np.dtype(dtype).itemsize
    for r in range(height):
        for c in range(width):
            for k in range(3):
                start = r * row_step + c * point_step + k * size
                data[start:start + size] = np.array(points[r, c, k], dtype=order + dtype).tobytes()
    return SimpleNamespace(fields=fields or [field("x", 0), field("y", 4), field("z", 8)], data=bytes(data),
                           width=width, height=height, point_step=point_step, row_step=row_step,
                           is_bigendian=bigendian)


PTS = [[1.0, 2.0, 3.0], [-4.0, 5.5, 0.25], [7.0, -8.0, 9.0], [0.0, 0.5, -1.0]]


def test_reads_xyz_with_point_padding_and_row_padding():
    msg = cloud(PTS, point_step=20, row_pad=12, height=2)
    out = read_xyz(msg)
    assert out.dtype == np.float64 and out.shape == (4, 3)
    np.testing.assert_array_equal(out, PTS)


def test_big_endian():
    np.testing.assert_array_equal(read_xyz(cloud(PTS, bigendian=True)), PTS)
    # The same bytes read as little-endian would be garbage: the flag is honoured.
    msg = cloud(PTS, bigendian=True)
    msg.is_bigendian = False
    assert not np.allclose(read_xyz(msg), PTS)


def test_other_datatypes_and_field_order():
    msg = cloud(PTS, point_step=32, dtype="f8",
                fields=[field("z", 16, FLOAT64), field("x", 0, FLOAT64), field("y", 8, FLOAT64)])
    np.testing.assert_array_equal(read_xyz(msg), PTS)
    data = np.array([(1, 2), (-3, 4)], dtype="<i2").tobytes()
    msg = SimpleNamespace(fields=[field("ring", 0, INT16), field("i", 2, INT16)], data=data, width=2, height=1,
                          point_step=4, row_step=8, is_bigendian=False)
    np.testing.assert_array_equal(read_points(msg, ("i", "ring")), [[2, 1], [4, -3]])


def test_data_as_a_list_of_ints_and_an_empty_cloud():
    msg = cloud(PTS)
    msg.data = list(msg.data)
    np.testing.assert_array_equal(read_xyz(msg), PTS)
    empty = cloud(np.zeros((0, 3)))
    assert read_xyz(empty).shape == (0, 3)


def test_short_data_is_refused():
    msg = cloud(PTS)
    msg.data = msg.data[:-1]
    with pytest.raises(PointCloudError, match="data length 63 does not match 1x4 points of 16 bytes"):
        read_xyz(msg)


def test_row_step_shorter_than_a_row_is_refused():
    msg = cloud(PTS, height=2)
    msg.row_step = msg.width * msg.point_step - 1
    with pytest.raises(PointCloudError, match="row_step 31"):
        read_xyz(msg)


def test_zero_point_step_is_refused():
    msg = cloud(PTS)
    msg.point_step = 0
    with pytest.raises(PointCloudError, match="does not match"):
        read_xyz(msg)


@pytest.mark.parametrize("offset", [13, 16, 100, -1])
def test_a_field_outside_point_step_is_refused(offset):
    msg = cloud(PTS, fields=[field("x", 0), field("y", 4), field("z", offset)])
    with pytest.raises(PointCloudError, match="field z lies outside point_step 16"):
        read_xyz(msg)


def test_missing_and_unsupported_fields_are_refused():
    with pytest.raises(PointCloudError, match="no z field"):
        read_xyz(cloud(PTS, fields=[field("x", 0), field("y", 4)]))
    with pytest.raises(PointCloudError, match="unsupported datatype 9"):
        read_xyz(cloud(PTS, fields=[field("x", 0), field("y", 4), field("z", 8, datatype=9)]))
    with pytest.raises(PointCloudError, match="count 3"):
        read_xyz(cloud(PTS, fields=[field("x", 0, count=3), field("y", 4), field("z", 8)]))
