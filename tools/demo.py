#!/usr/bin/env python3
"""The demo: start the simulator with one robot's stack, send "go to the <target>", report the arrival.

Starts `roslaunch vla_deployment demo.launch` on a master of its own (a free port, so a running
roscore is left alone), waits for the stack, publishes the instruction on task_command, follows
sim/state and prints when the robot arrives (in simulated seconds: every node of demo.launch runs on
the simulator's /clock) with the measured control rate and latency (from vla/inference_stats and
vla/action). Shuts the launch down and exits 0 on arrival, 1 with a
reason otherwise. Needs no terminal: stdin is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rosgraph
import rospy
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.launching import ProcessGroup, roslaunch
from vla_msgs.msg import Action, InferenceStats
from vla_msgs.tasks import parse_task_command
from vla_msgs.waiting import WaitTimeout, wait_until

ROBOT = "robot_1"
PROGRESS_EVERY_S = 2.0


class Watch:
    """The newest sim/state of the robot, the newest inference stats and the action latencies."""

    def __init__(self):
        self.state: dict | None = None
        self.stats = None
        self.stats_count = 0
        self.latency_ms: list[float] = []
        self.image_age_ms: list[float] = []
        self._lock = threading.Lock()
        rospy.Subscriber(names.SIM_STATE, String, self._on_state, queue_size=1)
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self._on_stats, queue_size=1)
        rospy.Subscriber(names.ACTION, Action, self._on_action, queue_size=50)

    def _on_state(self, msg) -> None:
        try:
            robot = json.loads(msg.data)["robots"][ROBOT]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.state = robot

    def _on_stats(self, msg) -> None:
        with self._lock:
            self.stats = msg
            self.stats_count += 1

    def _on_action(self, msg) -> None:
        with self._lock:
            self.latency_ms.append(msg.latency_ms)
            self.image_age_ms.append((rospy.get_time() - msg.header.stamp.to_sec()) * 1000.0)
            del self.latency_ms[:-1000], self.image_age_ms[:-1000]


class LaunchExitedError(RuntimeError):
    """roslaunch exited while the demo waited on it."""


def wait_for(condition, timeout_s: float, what: str, launch: ProcessGroup, ros_time: bool = True):
    """wait_until that gives up as soon as the launch dies; `ros_time`: the limit is in simulated
    seconds (the drive), else in wall seconds (start-up, which is loading work, not simulation)."""
    def holds():
        if not launch.alive():
            raise LaunchExitedError(f"roslaunch exited while waiting for {what}")
        return condition()

    clock = rospy.get_time if ros_time else time.monotonic
    return wait_until(holds, timeout_s, what, clock=clock, poll_s=0.05, wall_limit_s=max(30.0, 3.0 * timeout_s))


def run(args: argparse.Namespace, launch: ProcessGroup) -> tuple[bool, str]:
    wait_for(rosgraph.is_master_online, 30.0, "the ROS master", launch, ros_time=False)
    rospy.init_node("vla_demo", anonymous=True, disable_signals=True)
    watch = Watch()
    tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
    print("waiting for the simulator, safety and inference nodes ...", flush=True)
    wait_for(lambda: watch.state is not None and watch.stats is not None and tasks.get_num_connections() >= 2,
             args.startup_timeout, "the simulator, safety and inference nodes", launch, ros_time=False)
    instruction = f"go to the {args.target}"
    task = parse_task_command(instruction).description
    print(f"stack ready; sending {instruction!r}", flush=True)
    tasks.publish(String(data=instruction))
    start = rospy.get_time()
    next_print = start + PROGRESS_EVERY_S

    def arrived() -> bool:
        nonlocal next_print
        state = watch.state or {}
        now = rospy.get_time()
        if now >= next_print:
            next_print = now + PROGRESS_EVERY_S
            dist = state.get("distance_to_target")
            dist_text = f"{dist:.2f} m" if isinstance(dist, (int, float)) else "?"
            fps = watch.stats.fps if watch.stats else 0.0
            print(f"  t={now - start:5.1f} s  distance {dist_text}  control {fps:4.1f} Hz", flush=True)
        # only this task's arrival counts, never a state from before it was taken up
        return state.get("task") == task and state.get("reached") is True

    try:
        wait_for(arrived, args.timeout, f"the robot to reach the {args.target}", launch)
    except WaitTimeout:
        tasks.publish(String(data="standby"))
        dist = (watch.state or {}).get("distance_to_target")
        return False, f"the robot did not reach the {args.target} within {args.timeout:.0f} s (distance {dist})"
    elapsed = rospy.get_time() - start
    state = dict(watch.state or {})
    tasks.publish(String(data="standby"))
    # one more stats message, so that the numbers cover the whole drive
    seen = watch.stats_count
    wait_for(lambda: watch.stats_count > seen, 5.0, "one more vla/inference_stats", launch)
    report(args.target, elapsed, state, watch)
    return True, ""


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(target: str, elapsed: float, state: dict, watch: Watch) -> None:
    s = watch.stats
    print(f"ARRIVED at the {target} in {elapsed:.1f} s of simulated time (edge gap "
          f"{state.get('distance_to_target', 0):.2f} m, collisions {state.get('collisions', 0)})")
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
    parser.add_argument("--timeout", type=float, default=90.0, help="simulated seconds allowed for the drive")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds allowed for start-up")
    parser.add_argument("--model", type=Path, default=None,
                        help="policy file with its sidecar (default: the reference policy; or an optimised variant)")
    args = parser.parse_args()
    if args.model is not None and not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")

    log = Path(tempfile.mkdtemp(prefix="vla_demo_")) / "roslaunch.log"
    launch_args = {"seed": args.seed} | ({"model_path": str(args.model.resolve())} if args.model else {})
    launch, uri = roslaunch("vla_deployment", "demo.launch", launch_args, log)
    # this process is a ROS node of the same master
    os.environ["ROS_MASTER_URI"] = uri
    print(f"starting demo.launch (master {uri}, log {log})", flush=True)

    def on_signal(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        ok, reason = run(args, launch)
    except KeyboardInterrupt:
        ok, reason = False, "interrupted"
    except (WaitTimeout, LaunchExitedError) as exc:
        ok, reason = False, str(exc)
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
