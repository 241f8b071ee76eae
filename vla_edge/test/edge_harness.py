"""Shared helpers of the vla_edge rostests: a synthetic camera and topic recorders.

Waits go through vla_msgs.waiting.wait_until on ROS time: no fixed sleeps, and a run on a slower
clock (a simulator's) is given the same ROS-time budget.
"""

from __future__ import annotations

import threading

import numpy as np
import rospy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.waiting import wait_until


def image_msg(encoding: str = "rgb8", value: int = 128, size: int = 96, stamped: bool = True) -> Image:
    msg = Image()
    if stamped:
        msg.header.stamp = rospy.Time.now()
    msg.header.frame_id = "camera_link"
    msg.height = msg.width = size
    msg.encoding = encoding
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "16UC1": 2, "rgba8": 4}[encoding]
    msg.step = size * channels
    msg.data = np.full(size * size * channels, value, np.uint8).tobytes()
    return msg


class Camera:
    """Publishes frames of one encoding at rate_hz on camera/rgb/image_raw until stopped."""

    def __init__(self, encoding: str = "rgb8", rate_hz: float = 30.0, stamped: bool = True):
        self.encoding = encoding
        self.stamped = stamped
        self.pub = rospy.Publisher(names.CAMERA_IMAGE, Image, queue_size=1)
        self._rate_hz = rate_hz
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Camera:
        wait_until(lambda: self.pub.get_num_connections() > 0, 60.0, "inference_node to subscribe the camera",
                   clock=rospy.get_time)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set() and not rospy.is_shutdown():
            self.pub.publish(image_msg(self.encoding, stamped=self.stamped))
            self.sent += 1
            self._stop.wait(1.0 / self._rate_hz)  # pacing of a test publisher, not an assertion


class Recorder:
    """Keeps every message of one topic with its arrival in ROS time."""

    def __init__(self, topic: str, msg_type):
        self.messages: list = []
        self.times: list[float] = []
        self._lock = threading.Lock()
        self.sub = rospy.Subscriber(topic, msg_type, self._on_msg, queue_size=100)

    def _on_msg(self, msg) -> None:
        with self._lock:
            self.messages.append(msg)
            self.times.append(rospy.get_time())

    def snapshot(self) -> list:
        with self._lock:
            return list(self.messages)

    def newest(self, predicate=lambda _m: True):
        for msg in reversed(self.snapshot()):
            if predicate(msg):
                return msg
        return None

    def wait_for(self, predicate, timeout_s: float, what: str = "a matching message"):
        """The newest message that satisfies predicate, waiting up to timeout_s of ROS time; fails the test
        (WaitTimeout, an AssertionError) if none comes."""
        return wait_until(lambda: self.newest(predicate), timeout_s, f"{what} on {self.sub.name}",
                          clock=rospy.get_time)


class Performance(Recorder):
    """vla_performance documents, parsed."""

    def __init__(self):
        super().__init__(names.PERFORMANCE, String)

    def _on_msg(self, msg) -> None:
        super()._on_msg(json_forms.PERFORMANCE.parse(msg.data))


def wait_for_subscriber(pub, timeout_s: float = 60.0) -> None:
    wait_until(lambda: pub.get_num_connections() > 0, timeout_s, f"a subscriber of {pub.name}",
               clock=rospy.get_time)
