#!/usr/bin/env python3
"""vla_monitoring's nodes on a master of their own: CPU at their default rates under a robot's traffic, and
monitoring_node under 1,000 messages a second (vla/inference_stats, then vla_logs inference entries).

Starts rosmaster on a free port and health_node, resource_monitor_node, monitoring_node and alert_node with
config/*.yaml (robot_id, the log folder and the exporter port set for the bench), feeds what a robot at 10 Hz
sends (30 Hz camera, 10 Hz vla/action with its vla_logs action and inference entries, 1 Hz
vla/inference_stats, 20 Hz safety status), measures each node's CPU (utime + stime from /proc) over a window,
then floods monitoring_node and reads back through its /metrics how many messages it took in and how long
it needed to catch up. Prints a table.

Usage: python bench/bench_monitoring.py [--cpu-seconds S] [--flood-seconds S] [--flood-rate HZ] [--update-docs]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml
from procstat import cpu_seconds, rss_mb
from prometheus_client.parser import text_string_to_metric_families

from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.waiting import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parent.parent
ROBOT = "bench_robot"
NODES = {  # node -> (module, config file)
    "health_node": ("vla_monitoring.ros.health_node", "health.yaml"),
    "resource_monitor_node": ("vla_monitoring.ros.resource_monitor_node", "resources.yaml"),
    "monitoring_node": ("vla_monitoring.ros.monitoring_node", "monitoring.yaml"),
    "alert_node": ("vla_monitoring.ros.alert_node", "alert.yaml"),
}
TASK = "go to the red cube"
# The robot's traffic: 30 Hz camera; 10 Hz vla/action with its vla_logs action and inference entries;
# 1 Hz vla/inference_stats; 20 Hz vla/safety_status and vla_safety_status.
STREAMS = ("camera", "control", "stats", "safety")
# Traffic phases of the CPU breakdown: which streams flow.
PHASES = {"no traffic": (), "20 Hz safety status only": ("safety",), "full traffic": STREAMS}
NOTE = (
    "CPU: utime + stime of each node's process from /proc over the window, as % of one core, after a 5 s "
    "settle; each node at its config/*.yaml rates (resource monitor 1 Hz with its node lookups every 5 s, "
    "vla_metrics 1 Hz, vla_health 1 Hz, alert_node's rule checks) under the traffic of one robot at 10 Hz "
    "(30 Hz camera, 10 Hz vla/action + vla_logs action and inference entries, 1 Hz vla/inference_stats, "
    "20 Hz vla/safety_status + vla_safety_status). Flood: the bench pauses that traffic and publishes one topic "
    "at the given rate; `taken in` is monitoring_node's own count of that topic on /metrics "
    "(vla_monitoring_messages_total), `catch-up` the time from the last message published until that count "
    "stops short of nothing (0 backlog), polled every 10 ms. The bench process shares the machine's 2 cores."
)




def node_pid(group: ProcessGroup) -> int:
    """The node's python process: the group leader itself (started without a shell)."""
    return group.proc.pid


class Feed:
    """A robot's traffic at 10 Hz, on threads of its own, and the floods."""

    def __init__(self):
        import rospy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from vla_msgs import json_forms, names
        from vla_msgs.msg import Action, InferenceStats, SafetyStatus

        self.rospy, self.String, self.json_forms = rospy, String, json_forms
        self.Action, self.InferenceStats = Action, InferenceStats
        self.pubs = {
            "image": rospy.Publisher(names.CAMERA_IMAGE, Image, queue_size=5),
            "action": rospy.Publisher(names.ACTION, Action, queue_size=1000),
            "logs": rospy.Publisher(names.LOGS_JSON, String, queue_size=1000),
            "stats": rospy.Publisher(names.INFERENCE_STATS, InferenceStats, queue_size=1000),
            "safety": rospy.Publisher(names.SAFETY_STATUS, SafetyStatus, queue_size=20),
            "safety_json": rospy.Publisher(names.SAFETY_STATUS_JSON, String, queue_size=20),
            "task": rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True),
        }
        self.image = Image(height=96, width=96, encoding="rgb8", step=288, data=bytes(96 * 96 * 3))
        self.safety = SafetyStatus(level=0, status="OK", speed_scale=1.0, nearest_obstacle_m=2.0)
        self.safety_json = String(data=json_forms.SAFETY_STATUS.build(timestamp=0.0, status="OK", reason="",
                                                                      emergency_stop=False, robot_id=ROBOT))
        self.sequence = 0
        self.background = threading.Event()  # set: the robot's traffic flows; cleared during a flood
        self.background.set()
        self.streams = set(STREAMS)  # the streams of that traffic that flow

    def stats(self, fps: float = 10.0):
        return self.InferenceStats(current_task=TASK, fps=fps, mode="edge", model_version="bench", window_s=5.0)

    def inference_entry(self):
        self.sequence += 1
        return self.String(data=self.json_forms.LOGS.build(
            timestamp=self.rospy.get_time(), type="inference", input_size=27648, output_action=[0.2, 0, 0, 0, 0, 0.1],
            inference_time_ms=2.2, sequence_number=self.sequence, node="/inference_node", robot_id=ROBOT))

    def action_entry(self):
        return self.String(data=self.json_forms.LOGS.build(
            timestamp=self.rospy.get_time(), type="action", action=[0.2, 0, 0, 0, 0, 0.1], task=TASK,
            node="/inference_node", robot_id=ROBOT))

    def action(self):
        msg = self.Action(values=[0.2, 0, 0, 0, 0, 0.1], task=TASK, model_version="bench", source="edge",
                          inference_ms=2.2, latency_ms=0.5, chunk_length=8)
        msg.header.stamp = self.rospy.Time.now()
        return msg

    def _every(self, stream: str, period_s: float, send) -> None:
        next_t = time.perf_counter()
        while not self.rospy.is_shutdown():
            if self.background.is_set() and stream in self.streams:
                send()
            next_t += period_s
            time.sleep(max(0.0, next_t - time.perf_counter()))

    def start(self) -> None:
        self.pubs["task"].publish(self.String(data=TASK))
        p = self.pubs

        def control_step():
            p["action"].publish(self.action())
            p["logs"].publish(self.inference_entry())
            p["logs"].publish(self.action_entry())

        def safety():
            self.safety.header.stamp = self.rospy.Time.now()
            p["safety"].publish(self.safety)
            p["safety_json"].publish(self.safety_json)
        for stream, period, send in (("camera", 1 / 30, lambda: p["image"].publish(self.image)),
                                     ("control", 0.1, control_step),
                                     ("stats", 1.0, lambda: p["stats"].publish(self.stats())),
                                     ("safety", 0.05, safety)):
            threading.Thread(target=self._every, args=(stream, period, send), daemon=True).start()

    def flood(self, pub: str, make, rate_hz: float, seconds: float) -> tuple[int, float]:
        """Publishes make() on `pub` at rate_hz for `seconds`, the robot's traffic paused so that monitoring_node's
        count of the topic is the flood's alone; (messages sent, the time the last one left)."""
        self.background.clear()
        period = 1.0 / rate_hz
        sent, start = 0, time.perf_counter()
        next_t = start
        while time.perf_counter() - start < seconds:
            self.pubs[pub].publish(make())
            sent += 1
            next_t += period
            ahead = next_t - time.perf_counter()
            if ahead > 0.001:  # sleep only when a millisecond ahead: sleep's own granularity
                time.sleep(ahead)
        return sent, time.perf_counter()

    def resume(self) -> None:
        self.background.set()


def exported(port: int, family: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            for s in fam.samples:
                if s.name == family + "_total" and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
    return 0.0


def answering(port: int) -> bool:
    try:
        exported(port, "vla_actions")
    except OSError:
        return False
    return True


def flood_row(feed: Feed, port: int, pid: int, what: str, pub: str, make, family: str, labels: dict,
              rate_hz: float, seconds: float) -> list[str]:
    feed.background.clear()
    time.sleep(0.5)  # what the robot's traffic had in flight arrives before the count starts
    before = exported(port, family, **labels)
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    sent, last_sent = feed.flood(pub, make, rate_hz, seconds)
    try:
        wait_until(lambda: exported(port, family, **labels) - before >= sent, 10.0, f"{what} caught up",
                   poll_s=0.01)
        catch_up_ms = f"{(time.perf_counter() - last_sent) * 1000:.0f}"
    except WaitTimeout:
        catch_up_ms = "never (10 s)"
    taken = exported(port, family, **labels) - before
    cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0) * 100.0
    feed.resume()
    achieved = sent / (last_sent - t0)
    return [what, f"{achieved:.0f}", f"{sent}", f"{taken:.0f}", f"{sent - taken:.0f}", catch_up_ms, f"{cpu:.1f}"]


def phase_cpu(feed: Feed, pids: dict[str, int], streams, seconds: float) -> dict[str, float]:
    """Each node's CPU share while only `streams` flow."""
    feed.streams = set(streams)
    time.sleep(1.0)  # what other streams had in flight arrives first
    cpu0, t0 = {n: cpu_seconds(pid) for n, pid in pids.items()}, time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - t0
    feed.streams = set(STREAMS)
    return {n: (cpu_seconds(pid) - cpu0[n]) / wall * 100.0 for n, pid in pids.items()}


def update_docs(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text()
    section = (f"## Monitoring (`bench/bench_monitoring.py`)\n\n<!-- bench_monitoring:start -->\n{text}\n"
               f"<!-- bench_monitoring:end -->\n")
    pattern = re.compile(r"## Monitoring \(`bench/bench_monitoring.py`\)\n\n<!-- bench_monitoring:start -->.*?"
                         r"<!-- bench_monitoring:end -->\n", re.S)
    doc = pattern.sub(lambda _m: section, doc) if pattern.search(doc) else doc.rstrip("\n") + "\n\n" + section
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-seconds", type=float, default=60.0)
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--flood-rate", type=float, default=1000.0)
    parser.add_argument("--phase-seconds", type=float, default=20.0,
                        help="window of each traffic phase of the breakdown; 0 = no breakdown")
    parser.add_argument("--update-docs", action="store_true", help="write the tables into docs/benchmarks.md")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_monitoring_"))
    port, exporter_port = free_port(), free_port()
    env = dict(os.environ, ROS_MASTER_URI=f"http://127.0.0.1:{port}", ROS_HOME=str(tmp), ROS_LOG_DIR=str(tmp))
    os.environ.update({k: env[k] for k in ("ROS_MASTER_URI", "ROS_HOME", "ROS_LOG_DIR")})
    groups: dict[str, ProcessGroup] = {}
    master = ProcessGroup(["rosmaster", "--core", "-p", str(port)], tmp / "master.log", env=env)
    try:
        import rosgraph
        import rospy

        wait_until(rosgraph.is_master_online, 15.0, "rosmaster")
        rospy.init_node("bench_monitoring", disable_signals=True)
        overrides = {"resource_monitor_node": {"disk_path": str(tmp)},
                     "monitoring_node": {"log_dir": str(tmp / "vla_logs"), "prometheus_port": exporter_port,
                                         "prometheus_address": "127.0.0.1"}}
        for node, (module, config_file) in NODES.items():
            config = ROOT / "config" / config_file
            params = yaml.safe_load(config.read_text()) if config.exists() else {}
            params.update(robot_id=ROBOT, **overrides.get(node, {}))
            for k, v in params.items():
                rospy.set_param(f"/{node}/{k}", v)
            groups[node] = ProcessGroup([sys.executable, "-c", f"from {module} import main; main()",
                                         f"__name:={node}"], tmp / f"{node}.log", env=env)
        feed = Feed()
        wait_until(lambda: all(g.alive() for g in groups.values()) and answering(exporter_port), 30.0,
                   "the nodes up and the exporter answering", poll_s=0.2)
        feed.start()
        time.sleep(5.0)  # settle: imports done, first lookups and probes run
        dead = [n for n, g in groups.items() if not g.alive()]
        if dead:
            raise RuntimeError(f"nodes died: {dead}; {groups[dead[0]].tail()}")

        pids = {n: node_pid(g) for n, g in groups.items()}
        cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
        t0 = time.perf_counter()
        time.sleep(args.cpu_seconds)
        wall = time.perf_counter() - t0
        cpu = {n: (cpu_seconds(pid) - cpu0[n]) / wall * 100.0 for n, pid in pids.items()}
        rss = {n: rss_mb(pid) for n, pid in pids.items()}
        phases = {name: phase_cpu(feed, pids, streams, args.phase_seconds)
                  for name, streams in PHASES.items() if args.phase_seconds > 0 and streams != STREAMS}

        mon = pids["monitoring_node"]
        floods = [
            flood_row(feed, exporter_port, mon, "vla/inference_stats", "stats", feed.stats, "vla_monitoring_messages",
                      {"topic": "vla/inference_stats"}, args.flood_rate, args.flood_seconds),
            flood_row(feed, exporter_port, mon, "vla_logs inference entries", "logs", feed.inference_entry,
                      "vla_inferences", {}, args.flood_rate, args.flood_seconds),
        ]
        log_lines = sum(1 for _ in (tmp / "vla_logs" / f"{ROBOT}.jsonl").open()) if (
            tmp / "vla_logs" / f"{ROBOT}.jsonl").exists() else 0
    finally:
        for g in groups.values():
            g.stop(grace_s=(10.0, 5.0, 5.0))
        master.stop(grace_s=(5.0, 5.0, 5.0))

    aims = {"resource_monitor_node": "< 1 %"}
    lines = [f"Command: `python bench/bench_monitoring.py --cpu-seconds {args.cpu_seconds:g} --flood-seconds "
             f"{args.flood_seconds:g} --flood-rate {args.flood_rate:g} --phase-seconds {args.phase_seconds:g}`", "",
             "| node | CPU % of one core | RSS MB | aim |", "|---|---|---|---|"]
    lines += [f"| {n} | {cpu[n]:.2f} | {rss[n]:.0f} | {aims.get(n, '')} |" for n in NODES]
    lines.append(f"| **all four** | **{sum(cpu.values()):.2f}** | {sum(rss.values()):.0f} | < 3 % |")
    if phases:
        lines += ["", f"Where the CPU goes: each node's share with part of the traffic ({args.phase_seconds:g} s "
                  "each; full traffic is the window above):",
                  "", "| traffic | " + " | ".join(NODES) + " | all four |", "|---|" + "---|" * (len(NODES) + 1)]
        for name, shares in [*phases.items(), ("full traffic", cpu)]:
            lines.append(f"| {name} | " + " | ".join(f"{shares[n]:.2f}" for n in NODES)
                         + f" | {sum(shares.values()):.2f} |")
    lines += ["", f"monitoring_node flooded at {args.flood_rate:g} messages/s for {args.flood_seconds:g} s "
              "(aim: keeps up, no backlog):", "",
              "| topic | published /s | published | taken in | lost | catch-up ms | monitoring_node CPU % |",
              "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in floods]
    lines += ["", f"vla_logs archive after the run: {log_lines} JSON lines in the active file.", "", NOTE, "",
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"load average before the run {load_before:.1f}."]
    text = "\n".join(lines)
    print(text)
    if args.update_docs:
        update_docs(text)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
