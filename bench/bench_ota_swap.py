#!/usr/bin/env python3
"""OTA hot-swap gap: from the updater's switch to the new policy serving, on a real master.

A private roscore, `update_server`, `inference_node` on `current/model/policy.pt` (10 Hz control) fed a
30 Hz synthetic camera, and `ota_updater_node` (health window 2 s, vla_health published healthy here).
Four swaps: update to 1.1.0, rollback on request to 1.0.0, update to 1.2.0, rollback to 1.0.0. Per swap:
the largest interval between consecutive vla/action messages around the swap (the control period is
0.1 s), the time from the updater's "loading the new policy" to the new policy's first action, and the
steps the node itself counts as missed (starved, skipped, stale) across the swap.

    python bench/bench_ota_swap.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rosgraph
import rospy
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_msgs import json_forms, names
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.msg import Action
from vla_msgs.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
MISSED = ("starved_steps", "skipped_steps", "stale_frames")


class Log:
    def __init__(self):
        self.lock = threading.Lock()
        self.actions: list[tuple[float, str]] = []   # (wall arrival, model_version)
        self.updates: list[tuple[float, dict]] = []
        self.perf: list[dict] = []
        rospy.Subscriber(names.ACTION, Action, self._on_action, queue_size=200)
        rospy.Subscriber(names.UPDATES, String, self._on_update, queue_size=200)
        rospy.Subscriber(names.PERFORMANCE, String, self._on_perf, queue_size=50)

    def _on_action(self, msg: Action) -> None:
        with self.lock:
            self.actions.append((time.monotonic(), msg.model_version))

    def _on_update(self, msg: String) -> None:
        with self.lock:
            self.updates.append((time.monotonic(), json_forms.UPDATES.parse(msg.data)))

    def _on_perf(self, msg: String) -> None:
        with self.lock:
            self.perf.append(json_forms.PERFORMANCE.parse(msg.data))


def publish_inputs(stop: threading.Event) -> None:
    cam = rospy.Publisher(names.CAMERA_IMAGE, Image, queue_size=1)
    health = rospy.Publisher(names.HEALTH_JSON, String, queue_size=5)
    data = np.full(96 * 96 * 3, 128, np.uint8).tobytes()
    n = 0
    while not stop.is_set():
        msg = Image(height=96, width=96, encoding="rgb8", step=96 * 3, data=data)
        msg.header.stamp = rospy.Time.now()
        cam.publish(msg)
        if n % 6 == 0:
            health.publish(String(data=json_forms.HEALTH.build(
                timestamp=rospy.get_time(), components={"vision": True}, overall_status=True, level="healthy")))
        n += 1
        stop.wait(1.0 / 30.0)


def swap(log: Log, service: str, version: str) -> dict:
    with log.lock:
        n_updates, start = len(log.updates), time.monotonic()
        before = dict(log.perf[-1])
    resp = rospy.ServiceProxy(service, Trigger)()
    assert resp.success, resp.message
    wait_until(lambda: len([1 for _t, m in log.actions if m == version and _t > start]) >= 30, 120.0,
               f"30 actions of {version}")
    with log.lock:
        after = dict(log.perf[-1])
        times = [t for t, _m in log.actions if t > start - 1.0]
        loading = next((t for t, d in log.updates[n_updates:]
                        if d.get("message") in ("loading the new policy",) or d["status"] == "rolled_back"), start)
        first_new = next(t for t, m in log.actions if m == version and t > start)
    return {"to": version, "max_interval_s": float(np.max(np.diff(times))),
            "switch_to_first_action_s": first_new - loading,
            **{k: after[k] - before[k] for k in MISSED}}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_ota_swap_"))
    model = subprocess.run([sys.executable, str(ROOT / "test" / "ota_setup.py"), str(work / "ota")],
                           check=True, capture_output=True, text=True).stdout
    master_port, port = free_port(), free_port()
    uri = f"http://127.0.0.1:{master_port}"
    os.environ["ROS_MASTER_URI"] = uri
    groups = [ProcessGroup(["roscore", "-p", str(master_port)], work / "roscore.log")]
    stop = threading.Event()
    try:
        wait_until(lambda: rosgraph.is_master_online(uri), 30.0, "the master")
        groups.append(ProcessGroup(["rosrun", "vla_fleet", "update_server", "--root", str(work / "ota" / "server"),
                                    "--host", "127.0.0.1", "--port", str(port)], work / "server.log"))
        groups.append(ProcessGroup(["rosrun", "vla_edge", "inference_node", f"_model_path:={model}",
                                    "_stats_rate:=10.0"], work / "inference.log"))
        groups.append(ProcessGroup([
            "rosrun", "vla_fleet", "ota_updater_node", f"_server_url:=http://127.0.0.1:{port}",
            f"_public_key_file:={work / 'ota' / 'keys' / 'ota_ed25519.pub'}",
            f"_releases_dir:={work / 'ota' / 'robot'}", "_health_window:=2.0", "_check_on_start:=false"],
            work / "updater.log"))
        rospy.init_node("bench_ota_swap", disable_signals=True)
        log = Log()
        threading.Thread(target=publish_inputs, args=(stop,), daemon=True).start()
        task = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
        wait_until(lambda: task.get_num_connections() > 0, 60.0, "inference_node")
        task.publish(String(data="go to the red cube"))
        wait_until(lambda: len(log.actions) > 30 and log.perf, 60.0, "the first policy acting")
        rospy.wait_for_service(names.OTA_CHECK_NOW, timeout=60.0)
        rows = [swap(log, names.OTA_CHECK_NOW, "1.1.0"), swap(log, names.OTA_ROLLBACK, "1.0.0")]
        for suffix in ("", ".sig"):
            shutil.copy(work / "ota" / "later" / f"vla-1.2.0.tar.gz{suffix}", work / "ota" / "server")
        rows += [swap(log, names.OTA_CHECK_NOW, "1.2.0"), swap(log, names.OTA_ROLLBACK, "1.0.0")]
    finally:
        stop.set()
        for group in reversed(groups):
            group.stop()
    print("| swap to | largest action interval around it [s] | switch to first new action [s] | "
          "starved | skipped | stale |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['to']} | {r['max_interval_s']:.3f} | {r['switch_to_first_action_s']:.3f} | "
              f"{r['starved_steps']} | {r['skipped_steps']} | {r['stale_frames']} |")


if __name__ == "__main__":
    main()
