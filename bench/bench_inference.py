#!/usr/bin/env python3
"""Benchmarks inference_node in the simulator with the reference policy and prints a table.

Per control rate (default 10, 20, 30, 50 Hz) it starts sim + safety (robot.launch without the
inference node) once, then runs inference_node with that ~control_rate for --duration seconds on
"go to the <target>" and measures:
- node overhead: per step, tick → cmd_vel_vla publication minus the time blocked on the model
  worker (the node's own measurement, vla/inference_stats over the whole run);
- frame staleness: age of the newest camera frame when a control step acts on it (vla_performance);
- end-to-end: the camera frame each vla/action was computed from (its header stamp) → safety_node's
  output that forwards that action (matched by the requested twist in vla/safety_status, published
  right after that cmd_vel), both received here and timed on the wall clock, whatever clock the
  nodes run on (sim.launch sets /use_sim_time);
- CPU (% of one core) and resident memory of the inference node, CPU of the safety node (/proc);
- sustained rate: actions per second / requested rate, with stale and starved steps.
Usage: python bench/bench_inference.py [--rates 10,20,30,50] [--duration 30] [--model PATH]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rosgraph
import rospy
from geometry_msgs.msg import Twist
from procstat import cpu_seconds, node_pid, rss_mb
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vla_msgs import launching, names, waiting
from vla_msgs.msg import Action, InferenceStats, SafetyStatus

ROOT = Path(__file__).resolve().parent.parent


def wait(condition, timeout_s: float, what: str) -> None:
    waiting.wait_until(condition, timeout_s, what, poll_s=0.05)





def stamp_us(stamp: rospy.Time) -> int:
    """A stamp to the microsecond: inference_node passes it through float seconds, which can move the
    last nanosecond."""
    return round(stamp.to_nsec() / 1000)


def twist_key(t: Twist) -> tuple[float, ...]:
    return (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z)


class Probe:
    """Receipt times (wall clock) of camera frames, actions and safety decisions, plus the node's stats."""

    def __init__(self):
        self.lock = threading.Lock()
        self.frames: collections.OrderedDict[int, float] = collections.OrderedDict()  # stamp us -> receipt
        self.actions: list[tuple[int, tuple[float, ...]]] = []  # (image stamp us, requested twist)
        self.decisions: list[tuple[float, tuple[float, ...]]] = []  # (receipt, requested twist)
        self.stats: InferenceStats | None = None
        self.perf: dict | None = None
        rospy.Subscriber(names.CAMERA_IMAGE, Image, self._on_image, queue_size=10, buff_size=1 << 22)
        rospy.Subscriber(names.ACTION, Action, self._on_action, queue_size=100)
        rospy.Subscriber(names.SAFETY_STATUS, SafetyStatus, self._on_decision, queue_size=100)
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self._on_stats, queue_size=1)
        rospy.Subscriber(names.PERFORMANCE, String, self._on_perf, queue_size=1)

    def reset(self) -> None:
        with self.lock:
            self.actions.clear()
            self.decisions.clear()
            self.stats = None
            self.perf = None

    def _on_image(self, msg: Image) -> None:
        now = time.time()
        with self.lock:
            self.frames[stamp_us(msg.header.stamp)] = now
            while len(self.frames) > 600:  # 20 s of a 30 Hz camera
                self.frames.popitem(last=False)

    def _on_action(self, msg: Action) -> None:
        with self.lock:
            self.actions.append((stamp_us(msg.header.stamp), twist_key(msg.twist)))

    def _on_decision(self, msg: SafetyStatus) -> None:
        now = time.time()
        with self.lock:
            self.decisions.append((now, twist_key(msg.requested)))

    def _on_stats(self, msg: InferenceStats) -> None:
        self.stats = msg

    def _on_perf(self, msg: String) -> None:
        self.perf = json.loads(msg.data)

    def end_to_end_ms(self) -> np.ndarray:
        """Per action that changed the request: its frame's receipt -> the first decision forwarding it."""
        with self.lock:
            frames, actions, decisions = dict(self.frames), list(self.actions), list(self.decisions)
        out, previous = [], None
        for stamp, twist in actions:
            fresh = twist != previous and any(twist)  # a repeated twist would match an older decision
            previous = twist
            if not fresh or stamp not in frames:
                continue
            seen = frames[stamp]
            forwarded = next((t for t, requested in decisions if t >= seen and requested == twist), None)
            if forwarded is not None:
                out.append((forwarded - seen) * 1000.0)
        return np.array(out)


def run_rate(rate: float, args, probe: Probe, tasks, logdir: Path) -> dict:
    name = f"/{names.INFERENCE_NODE}"
    subprocess.run(["rosparam", "load", str(ROOT / "config" / "inference.yaml"), name], check=True)
    for key, value in (("control_rate", rate), ("stats_window", float(args.duration + 5)),
                       ("model_path", args.model), ("inference_timeout", 0.8 / rate)):
        rospy.set_param(f"{name}/{key}", value)
    proc = launching.ProcessGroup(["rosrun", "vla_edge", "inference_node", f"__name:={name[1:]}"],
                                  logdir / f"inference_{rate:g}.log")
    try:
        wait(lambda: probe.stats is not None, 120.0, f"inference_node at {rate:g} Hz (see {logdir})")
        pid, safety_pid = node_pid(name), node_pid(f"/{names.SAFETY_NODE}")
        tasks.publish(String(data="standby"))
        time.sleep(0.3)
        tasks.publish(String(data=f"go to the {args.target}"))
        time.sleep(2.0)  # first chunk, steady state
        probe.reset()
        t0, c0, s0 = time.monotonic(), cpu_seconds(pid), cpu_seconds(safety_pid)
        time.sleep(args.duration)
        wait(lambda: probe.stats is not None and probe.perf is not None, 3.0, "fresh statistics")
        elapsed, cpu_s = time.monotonic() - t0, cpu_seconds(pid) - c0
        safety_cpu_s = cpu_seconds(safety_pid) - s0
        stats, perf, rss = probe.stats, probe.perf, rss_mb(pid)
        e2e = probe.end_to_end_ms()
        tasks.publish(String(data="standby"))
    finally:
        proc.stop()
        probe.stats = None
    fps = stats.fps
    return {
        "rate": rate, "fps": fps, "sustained": fps >= 0.95 * rate and perf["starved_steps"] <= 0.01 * fps * elapsed,
        "overhead_p50": stats.overhead_ms_p50, "overhead_p99": stats.overhead_ms_p99,
        "forward_p50": stats.inference_ms_p50, "forward_p99": stats.inference_ms_p99,
        "preprocess_p99": perf["preprocess_ms_p99"],
        "stale_p50": perf["image_age_ms_p50"], "stale_p99": perf["image_age_ms_p99"],
        "e2e_n": int(e2e.size),
        "e2e_p50": float(np.percentile(e2e, 50)) if e2e.size else float("nan"),
        "e2e_p99": float(np.percentile(e2e, 99)) if e2e.size else float("nan"),
        "cpu": 100.0 * cpu_s / elapsed, "rss": rss, "safety_cpu": 100.0 * safety_cpu_s / elapsed,
        "stale": stats.stale_frames, "starved": perf["starved_steps"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10,20,30,50", help="control rates to try [Hz], comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per rate")
    parser.add_argument("--target", default="green cylinder")
    parser.add_argument("--model", default=str(ROOT / "vla_sim" / "models" / "reference_policy.pt"))
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    logdir = Path(tempfile.mkdtemp(prefix="vla_bench_inference_"))
    sim, uri = launching.roslaunch("vla_deployment", "sim.launch", {}, logdir / "sim.log")
    os.environ["ROS_MASTER_URI"] = uri
    robot = None
    results = []
    try:
        wait(rosgraph.is_master_online, 30.0, "the ROS master")
        robot = launching.ProcessGroup(["roslaunch", "vla_deployment", "robot.launch", "enable_inference:=false",
                                        "enable_health:=false"], logdir / "robot.log")
        rospy.init_node("bench", disable_signals=True)
        probe = Probe()
        tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=10)
        for rate in rates:
            print(f"  measuring {rate:g} Hz for {args.duration:g} s ...", file=sys.stderr, flush=True)
            results.append(run_rate(rate, args, probe, tasks, logdir))
    finally:
        for group in (robot, sim):
            if group is not None:
                group.stop()

    print(f"\ninference_node with {Path(args.model).name}, {os.cpu_count()} cores, sim + safety running, "
          f"{args.duration:g} s per rate")
    head = (f"{'rate Hz':>7} {'actions/s':>9} {'overhead p50/p99 ms':>19} {'forward p50/p99 ms':>18} "
            f"{'staleness p50/p99 ms':>20} {'frame -> safety cmd_vel p50/p99 ms':>29} {'CPU %':>6} {'RSS MB':>7} "
            f"{'safety CPU %':>12} "
            f"{'stale':>5} {'starved':>7} sustained")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['rate']:7g} {r['fps']:9.2f} {r['overhead_p50']:9.2f} /{r['overhead_p99']:7.2f} "
              f"{r['forward_p50']:8.2f} /{r['forward_p99']:7.2f} {r['stale_p50']:10.1f} /{r['stale_p99']:7.1f} "
              f"{r['e2e_p50']:11.1f} /{r['e2e_p99']:6.1f} n={r['e2e_n']:<4d} {r['cpu']:6.1f} {r['rss']:7.0f} "
              f"{r['safety_cpu']:12.1f} "
              f"{r['stale']:5d} {r['starved']:7d} {'yes' if r['sustained'] else 'no'}")
    best = max((r["rate"] for r in results if r["sustained"]), default=0.0)
    print(f"highest sustained control rate: {best:g} Hz")
    return 0 if results and results[0]["sustained"] else 1


if __name__ == "__main__":
    sys.exit(main())
