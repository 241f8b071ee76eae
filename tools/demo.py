#!/usr/bin/env python3
"""The demo: start the simulator with one robot's stack, send "go to the <target>", report the arrival.

Starts `roslaunch vla_deployment demo.launch` on a master of its own (a free port, so a running
roscore is left alone), waits for the stack, publishes the instruction on task_command, follows
sim/state and prints when the robot arrives with the measured control rate and latency (from
vla/inference_stats and vla/action). Shuts the launch down and exits 0 on arrival, 1 with a
reason otherwise. Needs no terminal: stdin is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rosgraph
import rospy
from std_msgs.msg import String

from vla_msgs.msg import Action, InferenceStats

ROBOT = "robot_1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launch:
    """roslaunch in its own process group, stopped with SIGINT, then SIGTERM, then SIGKILL."""

    def __init__(self, port: int, seed: int, log: Path):
        self.log = log
        self._fh = log.open("w")
        env = dict(os.environ, ROS_MASTER_URI=f"http://127.0.0.1:{port}")
        cmd = ["roslaunch", "-p", str(port), "vla_deployment", "demo.launch", f"seed:={seed}"]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL, stdout=self._fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        for sig, wait_s in ((signal.SIGINT, 20.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        self._fh.close()

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Watch:
    """The newest sim/state of the robot, the newest inference stats and the action latencies."""

    def __init__(self):
        self.state: dict | None = None
        self.stats = None
        self.latency_ms: list[float] = []
        self.image_age_ms: list[float] = []
        self._lock = threading.Lock()
        rospy.Subscriber("sim/state", String, self._on_state, queue_size=1)
        rospy.Subscriber("vla/inference_stats", InferenceStats, self._on_stats, queue_size=1)
        rospy.Subscriber("vla/action", Action, self._on_action, queue_size=50)

    def _on_state(self, msg) -> None:
        try:
            robot = json.loads(msg.data)["robots"][ROBOT]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.state = robot

    def _on_stats(self, msg) -> None:
        self.stats = msg

    def _on_action(self, msg) -> None:
        with self._lock:
            self.latency_ms.append(msg.latency_ms)
            self.image_age_ms.append((rospy.get_time() - msg.header.stamp.to_sec()) * 1000.0)
            del self.latency_ms[:-1000], self.image_age_ms[:-1000]


def wait(predicate, timeout_s: float, alive) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if not alive():
            return False
        time.sleep(0.1)
    return predicate()


def run(args: argparse.Namespace, launch: Launch) -> tuple[bool, str]:
    if not wait(rosgraph.is_master_online, 30.0, launch.alive):
        return False, "the ROS master did not come up"
    rospy.init_node("vla_demo", anonymous=True, disable_signals=True)
    watch = Watch()
    tasks = rospy.Publisher("task_command", String, queue_size=1, latch=True)
    print("waiting for the simulator, safety and inference nodes ...", flush=True)
    ready = wait(lambda: watch.state is not None and watch.stats is not None and tasks.get_num_connections() >= 2,
                 args.startup_timeout, launch.alive)
    if not ready:
        return False, f"the stack was not up after {args.startup_timeout:.0f} s (launch alive: {launch.alive()})"
    instruction = f"go to the {args.target}"
    print(f"stack ready; sending {instruction!r}", flush=True)
    tasks.publish(String(data=instruction))
    start = time.monotonic()
    last_print = 0.0
    while time.monotonic() - start < args.timeout:
        if not launch.alive():
            return False, "roslaunch exited during the run"
        state = watch.state or {}
        if state.get("reached"):
            elapsed = time.monotonic() - start
            tasks.publish(String(data="standby"))
            time.sleep(1.2)  # one more stats period, so the numbers cover the run
            report(args.target, elapsed, state, watch)
            return True, ""
        if time.monotonic() - last_print > 2.0:
            last_print = time.monotonic()
            dist = state.get("distance_to_target")
            dist_text = f"{dist:.2f} m" if isinstance(dist, (int, float)) else "?"
            fps = watch.stats.fps if watch.stats else 0.0
            print(f"  t={time.monotonic() - start:5.1f} s  distance {dist_text}  control {fps:4.1f} Hz", flush=True)
        time.sleep(0.05)
    tasks.publish(String(data="standby"))
    dist = (watch.state or {}).get("distance_to_target")
    return False, f"the robot did not reach the {args.target} within {args.timeout:.0f} s (distance {dist})"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(target: str, elapsed: float, state: dict, watch: Watch) -> None:
    s = watch.stats
    print(f"ARRIVED at the {target} in {elapsed:.1f} s (edge gap {state.get('distance_to_target', 0):.2f} m, "
          f"collisions {state.get('collisions', 0)})")
    if s is not None:
        print(f"  control rate          {s.fps:6.2f} Hz   ({s.action_count} actions, model {s.model_version}, "
              f"mode {s.mode})")
        print(f"  model forward         p50 {s.inference_ms_p50:6.2f} ms   p99 {s.inference_ms_p99:6.2f} ms")
        print(f"  node overhead         p50 {s.overhead_ms_p50:6.2f} ms   p99 {s.overhead_ms_p99:6.2f} ms")
    lat = watch.latency_ms
    print(f"  image arrival->action p50 {_pct(lat, 50):6.2f} ms   p99 {_pct(lat, 99):6.2f} ms")
    print(f"  image stamp->action   p50 {_pct(watch.image_age_ms, 50):6.2f} ms   "
          f"p99 {_pct(watch.image_age_ms, 99):6.2f} ms", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="red cube", help="object to drive to (red cube, blue ball, ...)")
    parser.add_argument("--seed", type=int, default=0, help="layout seed of the world")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds allowed for the drive")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds allowed for start-up")
    args = parser.parse_args()

    port = free_port()
    os.environ["ROS_MASTER_URI"] = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="vla_demo_")) / "roslaunch.log"
    print(f"starting demo.launch (master {os.environ['ROS_MASTER_URI']}, log {log})", flush=True)
    launch = Launch(port, args.seed, log)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        ok, reason = run(args, launch)
    except KeyboardInterrupt:
        ok, reason = False, "interrupted"
    finally:
        print("shutting the launch down ...", flush=True)
        launch.stop()
    if not ok:
        print(f"DEMO FAILED: {reason}", file=sys.stderr)
        print(f"last lines of {log}:\n{launch.tail()}", file=sys.stderr)
        return 1
    print("demo finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
