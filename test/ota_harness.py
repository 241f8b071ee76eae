"""Shared parts of the OTA rostests: topic recorders, a synthetic camera, a vla_health publisher, and the
update server and ota_updater_node started as processes (their port and parameters are known only at run
time). Waits are on ROS time through vla_msgs.waiting.wait_until."""

import json
import os
import shutil
import threading
import urllib.request
from pathlib import Path

import numpy as np
import rospy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.waiting import wait_until

BAD_RELEASE = "1.2.0"


class Recorder:
    """Every message of one topic (parse: a JSON form's parser for a JSON topic)."""

    def __init__(self, topic: str, msg_type, parse=None):
        self.parse = parse
        self._messages: list = []
        self._lock = threading.Lock()
        rospy.Subscriber(topic, msg_type, self._on_msg, queue_size=100)
        self.topic = topic

    def _on_msg(self, msg) -> None:
        with self._lock:
            self._messages.append(self.parse(msg.data) if self.parse else msg)

    def snapshot(self) -> list:
        with self._lock:
            return list(self._messages)

    def wait_for(self, predicate, timeout_s: float, what: str):
        return wait_until(lambda: next((m for m in reversed(self.snapshot()) if predicate(m)), None), timeout_s,
                          f"{what} on {self.topic}", clock=rospy.get_time)


class Camera:
    """96x96 rgb8 frames at 30 Hz on camera/rgb/image_raw."""

    def __init__(self):
        self.pub = rospy.Publisher(names.CAMERA_IMAGE, Image, queue_size=1)
        self._stop = threading.Event()
        wait_until(lambda: self.pub.get_num_connections() > 0, 60.0, "inference_node on the camera topic",
                   clock=rospy.get_time)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        data = np.full(96 * 96 * 3, 128, np.uint8).tobytes()
        while not self._stop.is_set() and not rospy.is_shutdown():
            msg = Image(height=96, width=96, encoding="rgb8", step=96 * 3, data=data)
            msg.header.stamp = rospy.Time.now()
            self.pub.publish(msg)
            self._stop.wait(1.0 / 30.0)  # pacing of a test publisher, not an assertion

    def stop(self) -> None:
        self._stop.set()


class Health:
    """vla_health at 5 Hz: healthy, except while the active release is BAD_RELEASE."""

    def __init__(self, current_link: Path):
        self.current = current_link
        self.pub = rospy.Publisher(names.HEALTH_JSON, String, queue_size=5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and not rospy.is_shutdown():
            ok = Path(os.readlink(self.current)).name != BAD_RELEASE
            self.pub.publish(String(data=json_forms.HEALTH.build(
                timestamp=rospy.get_time(), components={"vision": ok, "action": ok}, overall_status=ok,
                level="healthy" if ok else "critical")))
            self._stop.wait(0.2)  # pacing of a test publisher, not an assertion

    def stop(self) -> None:
        self._stop.set()


class UpdateServer:
    """`rosrun vla_fleet update_server` on a free loopback port, serving DIR/server; with tokens (robot_id ->
    token) it runs with --token-file and reads its fleet view with the first of them."""

    def __init__(self, directory: Path, tokens: dict[str, str] | None = None):
        self.logs = Path(str(directory) + "-logs")
        self.logs.mkdir(exist_ok=True)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        extra = []
        self.token = ""
        if tokens:
            token_file = self.logs / "server_tokens"
            token_file.write_text("".join(f"{rid} {token}\n" for rid, token in tokens.items()))
            extra, self.token = ["--token-file", str(token_file)], next(iter(tokens.values()))
        self.group = ProcessGroup(["rosrun", "vla_fleet", "update_server", "--root", str(directory / "server"),
                                   "--host", "127.0.0.1", "--port", str(port), *extra], self.logs / "server.log")
        wait_until(self.fleet, 60.0, "the update server to answer")

    def fleet(self) -> dict | None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url + "/api/fleet", headers=headers),
                                        timeout=5) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    def stop(self) -> None:
        self.group.stop()


def updater_node(directory: Path, url: str, health_window: float, log_name: str = "updater.log",
                 token_file: Path | None = None) -> ProcessGroup:
    """ota_updater_node for robot_1 on DIR/robot, checking only when asked (with ~token_file if given)."""
    return ProcessGroup([
        "rosrun", "vla_fleet", "ota_updater_node", f"_server_url:={url}",
        f"_public_key_file:={directory / 'keys' / 'ota_ed25519.pub'}", f"_releases_dir:={directory / 'robot'}",
        f"_health_window:={health_window}", "_check_on_start:=false", "_robot_id:=robot_1",
        *([f"_token_file:={token_file}"] if token_file else [])],
        Path(str(directory) + "-logs") / log_name)


def clean(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(str(directory) + "-logs", ignore_errors=True)
