"""Shared helpers of the vla_edge rostests: a synthetic camera and topic recorders."""

from __future__ import annotations

import threading
import time

import numpy as np
import rospy
from sensor_msgs.msg import Image


def image_msg(encoding: str = "rgb8", value: int = 128, size: int = 96) -> Image:
    msg = Image()
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

    def __init__(self, encoding: str = "rgb8", rate_hz: float = 30.0):
        self.encoding = encoding
        self.pub = rospy.Publisher("camera/rgb/image_raw", Image, queue_size=1)
        self._rate_hz = rate_hz
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Camera:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set() and not rospy.is_shutdown():
            self.pub.publish(image_msg(self.encoding))
            self.sent += 1
            self._stop.wait(1.0 / self._rate_hz)


class Recorder:
    """Keeps every message of one topic with its arrival time."""

    def __init__(self, topic: str, msg_type):
        self.messages: list = []
        self.times: list[float] = []
        self._lock = threading.Lock()
        self.sub = rospy.Subscriber(topic, msg_type, self._on_msg, queue_size=100)

    def _on_msg(self, msg) -> None:
        with self._lock:
            self.messages.append(msg)
            self.times.append(time.monotonic())

    def wait_for(self, predicate, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not rospy.is_shutdown():
            with self._lock:
                for msg in reversed(self.messages):
                    if predicate(msg):
                        return msg
            time.sleep(0.05)
        return None


def wait_for_subscriber(pub, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while pub.get_num_connections() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    return pub.get_num_connections() > 0
