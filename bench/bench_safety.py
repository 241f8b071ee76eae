#!/usr/bin/env python3
"""safety_node through a real master: e-stop, command and obstacle reaction, CPU share under full sensor load,
and the cost of the collision core per message and per decision.

Starts its own rosmaster on a free port and a safety_node (its package defaults; trigger_hold 0 so the
e-stop trigger/reset cycles need no pause), feeds a 360-beam scan and a 30,000-point cloud at 10 Hz and a
command at 20 Hz, and prints a table. Wall time throughout: measuring it is a benchmark's job.

Usage: python bench/bench_safety.py [--triggers N] [--command-trials N] [--obstacle-trials N] [--cpu-seconds S]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from procstat import cpu_seconds

from vla_msgs import launching, names, waiting

BEAMS = 360
CLOUD_POINTS = 30000
SCAN_PERIOD_S = 0.1  # the aim's sensor period; the bench publishes slightly slower to vary the phase
CMD_PERIOD_S = 0.05
NOTE = (
    "E-stop: publishing `true` on `emergency_stop/trigger` -> first all-zero `cmd_vel` received, robot driving; "
    "the node outputs the zero from the trigger callback. Command: a slower `cmd_vel_vla` (1.0 -> 0.5 m/s, braking "
    "is never delayed) published at a random phase -> first `cmd_vel` at 0.5 m/s received. Obstacle: a wall 1.5 m "
    "ahead appears in the next published scan while driving at 1 m/s -> first `cmd_vel` below 0.99 m/s (decided "
    "at the next output: a command or the least rate, whichever comes first). CPU: utime+stime of the node "
    "process over the window, a 2 m wall inside the cloud keeping the collision check busy. Core: the same "
    "30,000-point cloud reduced to obstacle points in the bench process, and one safest-command decision "
    "for a request its wall limits (the request, its slides and stop weighed, each checked)."
)


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


def core_costs(trials: int) -> tuple[list[float], list[float]]:
    """Seconds per cloud reduction and per safest-command decision, in this process."""
    from vla_safety.config import SafetyConfig
    from vla_safety.supervisor import SafetySupervisor

    sup = SafetySupervisor(SafetyConfig())
    cloud = room_cloud().astype(np.float64)
    reduce_s, decide_s = [], []
    for _ in range(trials):
        start = time.perf_counter()
        pts = sup.obstacle_points(names.POINTS, cloud)
        reduce_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        sup.checker.safest((1.0, 0.3, 0.0), pts)  # into the wall at an angle: scaled, slides and stop weighed
        decide_s.append(time.perf_counter() - start)
    return reduce_s, decide_s


class Bench:
    def __init__(self):
        import rospy
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import LaserScan, PointCloud2, PointField
        from std_msgs.msg import Bool
        from std_srvs.srv import Trigger

        self.rospy, self.Twist, self.Bool = rospy, Twist, Bool
        self.lock = threading.Lock()
        self.cmd_lock = threading.Lock()  # the command loop and a trial's own publish never cross
        self.last_cmd: Twist | None = None
        self.t_trigger: float | None = None
        self.t_zero: float | None = None
        self.t_slow_sent: float | None = None
        self.t_slow: float | None = None
        self.t_obstacle: float | None = None
        self.t_limited: float | None = None
        self.wall_m: float | None = None
        self.command = self.twist(1.0)
        self.cmd_pub = rospy.Publisher(names.CMD_VEL_VLA, Twist, queue_size=1)
        self.scan_pub = rospy.Publisher(names.SCAN, LaserScan, queue_size=1)
        self.cloud_pub = rospy.Publisher(names.POINTS, PointCloud2, queue_size=1)
        self.trigger_pub = rospy.Publisher(names.EMERGENCY_STOP_TRIGGER, Bool, queue_size=10)
        rospy.Subscriber(names.CMD_VEL, Twist, self._on_cmd_vel, queue_size=10)
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
        self._cos = np.cos(np.arange(BEAMS) * (2 * math.pi / BEAMS))
        self.reset = rospy.ServiceProxy(names.SAFETY_RESET, Trigger)
        threading.Thread(target=self._sensor_loop, daemon=True).start()
        threading.Thread(target=self._cmd_loop, daemon=True).start()

    def twist(self, vx: float):
        t = self.Twist()
        t.linear.x = vx
        return t

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
            if self.t_slow_sent is not None and self.t_slow is None and abs(msg.linear.x - 0.5) < 1e-9:
                self.t_slow = now
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
            # a period that is no multiple of the 50 ms output period, so trials see every phase between them
            next_t += SCAN_PERIOD_S + 0.0137
            time.sleep(max(0.0, next_t - time.perf_counter()))

    def _cmd_loop(self) -> None:
        while not self.rospy.is_shutdown():
            with self.cmd_lock:
                self.cmd_pub.publish(self.command)
            time.sleep(CMD_PERIOD_S)

    def wait(self, condition, timeout_s: float, what: str) -> None:
        waiting.wait_until(condition, timeout_s, what, poll_s=0.0005)

    def moving_at(self, vx: float) -> bool:
        c = self.last_cmd
        return c is not None and abs(c.linear.x - vx) < 1e-9

    def estop_reaction(self, n: int) -> list[float]:
        samples = []
        for _ in range(n):
            self.wait(lambda: self.last_cmd is not None and self.last_cmd.linear.x > 0.05, 3.0, "a moving output")
            with self.lock:
                self.t_zero = None
                self.t_trigger = time.perf_counter()
            self.trigger_pub.publish(self.Bool(data=True))
            self.wait(lambda: self.t_zero is not None, 2.0, "a zero cmd_vel after the trigger")
            with self.lock:
                samples.append(self.t_zero - self.t_trigger)
                self.t_trigger = None
            self.wait(lambda: self.reset().success, 1.0, "the reset")
        return samples

    def command_reaction(self, n: int) -> list[float]:
        samples = []
        self.cloud = self.clouds["far"]  # nothing limits 1 m/s
        for _ in range(n):
            self.command = self.twist(1.0)
            self.wait(lambda: self.moving_at(1.0), 3.0, "full speed")
            time.sleep(np.random.uniform(0.0, CMD_PERIOD_S))  # a random phase against the node's output loop
            with self.cmd_lock:
                self.command = self.twist(0.5)
                with self.lock:
                    self.t_slow, self.t_slow_sent = None, time.perf_counter()
                self.cmd_pub.publish(self.command)
            self.wait(lambda: self.t_slow is not None, 2.0, "the slower command in cmd_vel")
            with self.lock:
                samples.append(self.t_slow - self.t_slow_sent)
                self.t_slow_sent = None
        self.command = self.twist(1.0)
        return samples

    def obstacle_reaction(self, n: int) -> list[float]:
        samples = []
        self.cloud = self.clouds["far"]  # only the scan's wall limits
        for _ in range(n):
            with self.lock:
                self.wall_m, self.t_obstacle, self.t_limited = None, None, None
            self.wait(lambda: self.moving_at(1.0), 3.0, "full speed in free space")
            time.sleep(np.random.uniform(0.0, SCAN_PERIOD_S))  # a random phase against the output loop
            with self.lock:
                self.wall_m = 1.5
            self.wait(lambda: self.t_limited is not None, 2.0, "a limited cmd_vel after the obstacle")
            with self.lock:
                samples.append(self.t_limited - self.t_obstacle)
        with self.lock:
            self.wall_m = None
        self.cloud = self.clouds["near"]
        return samples



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--command-trials", type=int, default=200)
    parser.add_argument("--obstacle-trials", type=int, default=50)
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--core-trials", type=int, default=50, help="0: leave out the in-process core costs")
    args = parser.parse_args()

    port = launching.free_port()
    tmp = Path(tempfile.mkdtemp(prefix="bench_safety_"))
    env = dict(os.environ, ROS_MASTER_URI=f"http://127.0.0.1:{port}", ROS_HOME=str(tmp), ROS_LOG_DIR=str(tmp))
    os.environ.update({k: env[k] for k in ("ROS_MASTER_URI", "ROS_HOME", "ROS_LOG_DIR")})
    master = launching.ProcessGroup(["rosmaster", "--core", "-p", str(port)], tmp / "master.log", env=env)
    node = None
    try:
        import rosgraph
        import rospy

        waiting.wait_until(rosgraph.is_master_online, 10.0, "rosmaster")
        rospy.init_node("bench_safety", disable_signals=True)
        for key, value in (("trigger_hold", 0.0), ("robot_id", "bench")):
            rospy.set_param(f"/{names.SAFETY_NODE}/{key}", value)
        node = launching.ProcessGroup([sys.executable, "-c", "from vla_safety.ros.safety_node import main; main()",
                             f"__name:={names.SAFETY_NODE}"], tmp / "safety_node.log", env=env)
        bench = Bench()
        rospy.wait_for_service(names.SAFETY_RESET, 15)

        cpu0, t0 = cpu_seconds(node.proc.pid), time.perf_counter()
        time.sleep(args.cpu_seconds)
        cpu_share = (cpu_seconds(node.proc.pid) - cpu0) / (time.perf_counter() - t0) * 100.0

        estop = bench.estop_reaction(args.triggers)
        command = bench.command_reaction(args.command_trials)
        obstacle = bench.obstacle_reaction(args.obstacle_trials)
    finally:
        if node is not None:
            node.stop()
        master.stop()

    rows = [("e-stop trigger -> first zero cmd_vel", estop, "p99 < 20 ms"),
            ("slower cmd_vel_vla -> cmd_vel", command, "forwarded on arrival"),
            ("obstacle in scan -> limited cmd_vel", obstacle, f"<= {SCAN_PERIOD_S * 1000 + 10:.0f} ms")]
    if args.core_trials:
        reduce_s, decide_s = core_costs(args.core_trials)
        rows += [(f"core: {CLOUD_POINTS}-point cloud -> obstacle points", reduce_s, ""),
                 ("core: safest command, request limited by the wall", decide_s, "")]
    lines = ["| measurement | n | p50 [ms] | p99 [ms] | max [ms] | aim |", "|---|---|---|---|---|---|"]
    for label, xs, aim in rows:
        p50, p99, worst = percentiles(xs)
        lines.append(f"| {label} | {len(xs)} | {p50:.2f} | {p99:.2f} | {worst:.2f} | {aim} |")
    lines.append(f"| safety_node CPU, 20 Hz commands, 10 Hz 360-beam scan + 10 Hz {CLOUD_POINTS}-point cloud, "
                 f"{args.cpu_seconds:.0f} s | | {cpu_share:.1f} % of one core | | | < 10 % |")
    lines += ["", NOTE, "",
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}; bench process and node share the machine."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
