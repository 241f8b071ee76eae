#!/usr/bin/env python3
"""safety_node through a real master: e-stop reaction, obstacle reaction, CPU share under full sensor load.

Starts its own rosmaster on a free port and a safety_node (config/safety.yaml, trigger_hold 0 so the
1000 trigger/reset cycles need no pause), feeds a 360-beam scan and a 30,000-point cloud at 10 Hz and a
command at 20 Hz, and prints a table.

Usage: python bench/bench_safety.py [--triggers N] [--obstacle-trials N] [--cpu-seconds S] [--update-docs]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
BEAMS = 360
CLOUD_POINTS = 30000
NOTE = (
    "E-stop: time from publishing `true` on `emergency_stop/trigger` to the first all-zero `cmd_vel` received, "
    "robot driving at the time; the node publishes the zero from the trigger callback. Obstacle: a wall 1.5 m "
    "ahead appears in the next published scan while the robot drives at 1 m/s; time to the first `cmd_vel` "
    "below 0.99 m/s. The output runs on its fixed 20 Hz tick, so this is transport plus up to one tick. "
    "CPU: utime+stime of the node process over the window, with a 2 m wall inside the cloud keeping the "
    "collision check busy."
)
SCAN_PERIOD_S = 0.1  # the aim's scan period; the bench publishes slightly slower to vary the phase


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(xs: list[float]) -> tuple[float, float, float]:
    a = np.asarray(xs) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def room_cloud(n_rings: int = 16, beams: int = CLOUD_POINTS // 16, wall_m: float = 2.0) -> np.ndarray:
    """A velodyne-like cloud: a wall `wall_m` ahead, a far room elsewhere, floor hits for low rings."""
    az = np.linspace(-math.pi, math.pi, beams, endpoint=False)
    c = np.cos(az)
    dist = np.where(c > 0.3, wall_m / np.maximum(c, 1e-6), 6.0)
    pts = []
    for el in np.radians(np.linspace(-15, 15, n_rings)):
        d = dist.copy()
        if el < 0:
            d = np.minimum(d, 0.25 / -math.tan(el))
        z = np.maximum(0.25 + d * math.tan(el), 0.0)
        pts.append(np.stack([d * np.cos(az), d * np.sin(az), z], axis=1))
    return np.concatenate(pts).astype(np.float32)


class Bench:
    def __init__(self):
        import rospy
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import LaserScan, PointCloud2, PointField
        from std_msgs.msg import Bool
        from std_srvs.srv import Trigger

        self.rospy, self.Twist, self.Bool = rospy, Twist, Bool
        self.lock = threading.Lock()
        self.last_cmd: Twist | None = None
        self.t_trigger: float | None = None
        self.t_zero: float | None = None
        self.t_obstacle: float | None = None
        self.t_limited: float | None = None
        self.wall_m: float | None = None
        self.command = Twist()
        self.command.linear.x = 1.0
        self.cmd_pub = rospy.Publisher("cmd_vel_vla", Twist, queue_size=1)
        self.scan_pub = rospy.Publisher("scan", LaserScan, queue_size=1)
        self.cloud_pub = rospy.Publisher("velodyne_points", PointCloud2, queue_size=1)
        self.trigger_pub = rospy.Publisher("emergency_stop/trigger", Bool, queue_size=10)
        rospy.Subscriber("cmd_vel", Twist, self._on_cmd_vel, queue_size=10)
        fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
        # near: a wall 2 m ahead keeps collision checks busy (CPU phase); far: nothing within reach, so the
        # obstacle phase sees only the scan's obstacle
        self.clouds = {}
        for name, wall_m in (("near", 2.0), ("far", 4.0)):
            pts = room_cloud(wall_m=wall_m)
            self.clouds[name] = PointCloud2(height=1, width=len(pts), fields=fields, point_step=12,
                                            row_step=12 * len(pts), data=pts.tobytes(), is_dense=True)
        self.cloud = self.clouds["near"]
        self.scan = LaserScan(angle_min=0.0, angle_increment=2 * math.pi / BEAMS,
                              angle_max=2 * math.pi * (BEAMS - 1) / BEAMS, range_min=0.05, range_max=8.0)
        self.scan.header.frame_id = "laser"
        a = np.arange(BEAMS) * (2 * math.pi / BEAMS)
        self._cos = np.cos(a)
        self.reset = rospy.ServiceProxy("safety_node/reset", Trigger)
        threading.Thread(target=self._sensor_loop, daemon=True).start()
        threading.Thread(target=self._cmd_loop, daemon=True).start()

    def scan_ranges(self, wall_m: float | None) -> list[float]:
        r = np.full(BEAMS, 6.0)  # a far room all round
        if wall_m is not None:
            ahead = self._cos > 0.2
            r[ahead] = np.minimum(r[ahead], wall_m / self._cos[ahead])
        return r.tolist()

    def _on_cmd_vel(self, msg) -> None:
        now = time.perf_counter()
        with self.lock:
            self.last_cmd = msg
            zero = msg.linear.x == 0.0 and msg.linear.y == 0.0 and msg.angular.z == 0.0
            if zero and self.t_trigger is not None and self.t_zero is None:
                self.t_zero = now
            if self.t_obstacle is not None and self.t_limited is None and msg.linear.x < 0.99:
                self.t_limited = now

    def _sensor_loop(self) -> None:
        next_t = time.perf_counter()
        while not self.rospy.is_shutdown():
            stamp = self.rospy.Time.now()
            with self.lock:
                wall = self.wall_m
                obstacle_pending = wall is not None and self.t_obstacle is None
            self.scan.ranges = self.scan_ranges(wall)
            self.scan.header.stamp = stamp
            self.cloud.header.stamp = stamp
            if obstacle_pending:
                with self.lock:
                    self.t_obstacle = time.perf_counter()
            self.scan_pub.publish(self.scan)
            self.cloud_pub.publish(self.cloud)
            # a period that is no multiple of the 50 ms output tick, so trials see every phase between them
            next_t += SCAN_PERIOD_S + 0.0137
            time.sleep(max(0.0, next_t - time.perf_counter()))

    def _cmd_loop(self) -> None:
        while not self.rospy.is_shutdown():
            self.cmd_pub.publish(self.command)
            time.sleep(0.05)

    def wait(self, pred, timeout_s: float) -> bool:
        end = time.perf_counter() + timeout_s
        while time.perf_counter() < end:
            if pred():
                return True
            time.sleep(0.001)
        return False

    def moving(self) -> bool:
        c = self.last_cmd
        return c is not None and c.linear.x > 0.05

    def estop_reaction(self, n: int) -> list[float]:
        samples = []
        for _ in range(n):
            if not self.wait(self.moving, 3.0):
                raise RuntimeError("safety_node output never became non-zero")
            with self.lock:
                self.t_zero = None
                self.t_trigger = time.perf_counter()
            self.trigger_pub.publish(self.Bool(data=True))
            if not self.wait(lambda: self.t_zero is not None, 2.0):
                raise RuntimeError("no zero cmd_vel within 2 s of a trigger")
            with self.lock:
                samples.append(self.t_zero - self.t_trigger)
                self.t_trigger = None
            for _attempt in range(50):
                if self.reset().success:
                    break
                time.sleep(0.01)
        return samples

    def obstacle_reaction(self, n: int) -> list[float]:
        samples = []
        self.cloud = self.clouds["far"]
        time.sleep(0.3)
        for _ in range(n):
            with self.lock:
                self.wall_m, self.t_obstacle, self.t_limited = None, None, None
            if not self.wait(lambda: self.last_cmd is not None and self.last_cmd.linear.x >= 0.999, 3.0):
                raise RuntimeError("output never reached full speed in free space")
            time.sleep(np.random.uniform(0.0, 0.1))  # random phase against the output timer
            with self.lock:
                self.wall_m = 1.5
            if not self.wait(lambda: self.t_limited is not None, 2.0):
                raise RuntimeError("no limited command within 2 s of the obstacle")
            with self.lock:
                samples.append(self.t_limited - self.t_obstacle)
        with self.lock:
            self.wall_m = None
        return samples


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def update_docs(table: str, command: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = (f"## Safety supervisor (`bench/bench_safety.py`)\n\n<!-- bench_safety:start -->\n"
               f"Command: `{command}`\n\n{table}\n<!-- bench_safety:end -->\n")
    pattern = re.compile(r"## Safety supervisor \(`bench/bench_safety.py`\)\n\n<!-- bench_safety:start -->.*?"
                         r"<!-- bench_safety:end -->\n", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--obstacle-trials", type=int, default=50)
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--update-docs", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()

    port = free_port()
    tmp = tempfile.mkdtemp(prefix="bench_safety_")
    env = dict(os.environ, ROS_MASTER_URI=f"http://127.0.0.1:{port}", ROS_HOME=tmp, ROS_LOG_DIR=tmp)
    os.environ.update({k: env[k] for k in ("ROS_MASTER_URI", "ROS_HOME", "ROS_LOG_DIR")})
    master = subprocess.Popen(["rosmaster", "--core", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = None
    try:
        import rosgraph
        import rospy

        deadline = time.monotonic() + 10
        while not rosgraph.is_master_online():
            if time.monotonic() > deadline:
                raise RuntimeError("rosmaster did not come up")
            time.sleep(0.1)
        params = yaml.safe_load((ROOT / "config" / "safety.yaml").read_text())
        params.update(trigger_hold=0.0, robot_id="bench")
        rospy.init_node("bench_safety", disable_signals=True)
        for k, v in params.items():
            rospy.set_param(f"/safety_node/{k}", v)
        node = subprocess.Popen([sys.executable, "-c", "from vla_safety.ros.safety_node import main; main()",
                                 "__name:=safety_node"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        bench = Bench()
        rospy.wait_for_service("safety_node/reset", 15)

        cpu0, t0 = cpu_seconds(node.pid), time.perf_counter()
        time.sleep(args.cpu_seconds)
        cpu_share = (cpu_seconds(node.pid) - cpu0) / (time.perf_counter() - t0) * 100.0

        estop = bench.estop_reaction(args.triggers)
        obstacle = bench.obstacle_reaction(args.obstacle_trials)
    finally:
        if node is not None:
            node.terminate()
            node.wait(10)
        master.terminate()
        master.wait(10)

    e50, e99, emax = percentiles(estop)
    o50, o99, omax = percentiles(obstacle)
    rows = [
        ("e-stop trigger -> first zero cmd_vel", f"{len(estop)}", f"{e50:.2f}", f"{e99:.2f}", f"{emax:.2f}",
         "p99 < 20 ms"),
        ("obstacle in scan -> limited cmd_vel", f"{len(obstacle)}", f"{o50:.1f}", f"{o99:.1f}", f"{omax:.1f}",
         f"<= {SCAN_PERIOD_S * 1000 + 10:.0f} ms"),
    ]
    lines = ["| measurement | n | p50 [ms] | p99 [ms] | max [ms] | aim |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append(f"| safety_node CPU, 20 Hz output, 10 Hz 360-beam scan + 10 Hz {CLOUD_POINTS}-point cloud, "
                 f"{args.cpu_seconds:.0f} s | | {cpu_share:.1f} % of one core | | | < 10 % |")
    lines.append("")
    lines.append(NOTE)
    lines.append("")
    lines.append(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                 f"Python {platform.python_version()}; bench process and node share the machine.")
    table = "\n".join(lines)
    print(table)
    if args.update_docs:
        update_docs(table, "python bench/bench_safety.py --update-docs")


if __name__ == "__main__":
    main()
