#!/usr/bin/env python3
"""Benchmarks dashboard_node: latency from a value published on a topic to the page, and the node's CPU.

Starts a master and dashboard_node (defaults, on a free loopback port), opens the page in headless
Chromium and publishes `vla_resources` documents whose cpu_percent is a fresh marker each time. The page's
own EventSource gets a second listener (after the page's) that records, per snapshot event, the shown
cpu_percent, the event's arrival (`performance.timeOrigin + event.timeStamp`) and the end of the page's
render. Latency = those browser-side times minus the wall time just before `publish()`, same machine clock.
Cases: isolated changes (every 250 ms: each is pushed as it arrives) and a 20 Hz stream (pushes coalesced
to at most one per ~min_push_interval_s). Then CPU (% of one core) of dashboard_node over a window in
which one robot's six inputs arrive at 1 Hz each and the page stays connected.
Usage: python bench/bench_dashboard.py [--samples 100] [--cpu-window 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import rosgraph
import rospy
from procstat import cpu_seconds, node_pid
from std_msgs.msg import String

from vla_monitoring.browser import open_chromium
from vla_msgs import json_forms, launching, names, waiting
from vla_msgs.msg import InferenceStats

RECORDER = """
window.__bench = [];
window.vlaDashboard.source.addEventListener("snapshot", (e) => {
  const snap = window.vlaDashboard.snapshot();
  const res = Object.values(snap.robots)[0].resources;
  window.__bench.push([res ? res.cpu_percent : null, performance.timeOrigin + e.timeStamp,
                       performance.timeOrigin + performance.now(), e.data.length]);
});
return true;
"""


def wait(condition, timeout_s: float, what: str):
    return waiting.wait_until(condition, timeout_s, what, poll_s=0.05)




def resources_doc(cpu: float) -> str:
    return json_forms.RESOURCES.build(timestamp=time.time(), cpu_percent=cpu, memory_percent=40.0, disk_percent=50.0,
                                      gpu_percent=None, gpu_memory_percent=None, nodes={})


def measure_latency(driver, pub: rospy.Publisher, markers: list[float], interval_s: float) -> dict:
    driver.execute_script("window.__bench.length = 0;")
    sent: dict[float, float] = {}
    next_t = time.monotonic()
    for marker in markers:
        next_t += interval_s
        sent[marker] = time.time()
        pub.publish(String(data=resources_doc(marker)))
        time.sleep(max(0.0, next_t - time.monotonic()))
    last = markers[-1]
    wait(lambda: any(r[0] == last for r in driver.execute_script("return window.__bench;")), 10.0,
         "the last marker on the page")
    records = driver.execute_script("return window.__bench;")
    arrival, render, sizes = [], [], []
    first_seen: dict[float, tuple[float, float]] = {}
    for cpu, arrived_ms, rendered_ms, size in records:
        sizes.append(size)
        if cpu in sent and cpu not in first_seen:
            first_seen[cpu] = (arrived_ms / 1000.0, rendered_ms / 1000.0)
    # A marker overwritten before a push (coalescing) never shows; the latency of those that do is measured.
    for marker, (arrived_s, rendered_s) in first_seen.items():
        arrival.append((arrived_s - sent[marker]) * 1000.0)
        render.append((rendered_s - sent[marker]) * 1000.0)
    return {"sent": len(markers), "shown": len(first_seen), "arrival": np.array(arrival), "render": np.array(render),
            "event_bytes": float(np.mean(sizes)) if sizes else float("nan")}


def feed_one_robot(pubs: dict[str, rospy.Publisher], stats_pub: rospy.Publisher, k: int) -> None:
    """One second of a robot's inputs at their default 1 Hz rates."""
    now = time.time()
    stats_pub.publish(InferenceStats(mode="edge", model_version="2.0.0", current_task="go to the red cube", fps=10.0,
                                     inference_ms_mean=20.0 + k % 5, inference_ms_p50=19.0 + k % 5,
                                     inference_ms_p99=30.0 + k % 7, inference_count=10 * k, action_count=10 * k))
    pubs[names.METRICS_JSON].publish(String(data=json_forms.METRICS.build(
        timestamp=now, inference_count=10 * k, error_count=0, action_count=10 * k, uptime_seconds=k,
        performance_summary={}, error_rate=0.0)))
    pubs[names.RESOURCES_JSON].publish(String(data=resources_doc(20.0 + k % 30)))
    pubs[names.SAFETY_STATUS_JSON].publish(String(data=json_forms.SAFETY_STATUS.build(
        timestamp=now, status="OK", reason="", emergency_stop=False)))
    pubs[names.HEALTH_JSON].publish(String(data=json_forms.HEALTH.build(
        timestamp=now, components={"vision": True, "language": True, "action": True, "communication": True},
        overall_status=True, level="healthy")))
    pubs[names.ALERTS_JSON].publish(String(data=json_forms.ALERTS.build(
        timestamp=now, level="WARNING", type="high_cpu", message="cpu", value=91.0,
        state="firing" if k % 2 else "resolved")))


def row(name: str, result: dict) -> str:
    a, r = result["arrival"], result["render"]
    if not len(a):
        return f"| {name} | {result['sent']} | 0 | | | | | |"
    return (f"| {name} | {result['sent']} | {result['shown']} | {np.percentile(a, 50):.1f} | {np.percentile(a, 95):.1f}"
            f" | {np.percentile(a, 99):.1f} | {a.max():.1f} | {np.percentile(r, 50):.1f} / {np.percentile(r, 99):.1f}"
            f" | {result['event_bytes'] / 1024:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="markers per latency case")
    parser.add_argument("--cpu-window", type=float, default=30.0, help="CPU measuring window [s]")
    args = parser.parse_args()

    logdir = Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
    port = launching.free_port()
    master_port = launching.free_port()
    master = launching.ProcessGroup(["roscore", "-p", str(master_port)], logdir / "roscore.log")
    uri = f"http://127.0.0.1:{master_port}"
    os.environ["ROS_MASTER_URI"] = uri
    env = dict(os.environ)
    node = None
    driver = None
    profile = tempfile.TemporaryDirectory(prefix="bench_dashboard_chromium_")
    try:
        wait(lambda: rosgraph.is_master_online(uri), 30.0, "the master")
        node = launching.ProcessGroup(["rosrun", "vla_monitoring", "dashboard_node", "_host:=127.0.0.1",
                                       f"_port:={port}"], logdir / "dashboard_node.log", env=env)
        url = f"http://127.0.0.1:{port}/"

        def serving() -> bool:
            try:
                with urllib.request.urlopen(url + "healthz", timeout=1.0) as resp:
                    return resp.status == 200
            except OSError:
                return False
        wait(serving, 30.0, f"dashboard_node at {url}")
        rospy.init_node("bench_dashboard", disable_signals=True)
        pubs = {t: rospy.Publisher(t, String, queue_size=100) for t in (
            names.METRICS_JSON, names.RESOURCES_JSON, names.SAFETY_STATUS_JSON, names.HEALTH_JSON, names.ALERTS_JSON)}
        stats_pub = rospy.Publisher(names.INFERENCE_STATS, InferenceStats, queue_size=10)
        wait(lambda: all(p.get_num_connections() for p in [*pubs.values(), stats_pub]), 30.0, "the node subscribed")

        driver = open_chromium(Path(profile.name))
        driver.get(url)
        wait(lambda: driver.execute_script("return window.vlaDashboard && window.vlaDashboard.renders > 0"), 30.0,
             "the page's first render")
        driver.execute_script(RECORDER)
        pub = pubs[names.RESOURCES_JSON]
        pub.publish(String(data=resources_doc(0.5)))  # warm-up: connections, first delta
        time.sleep(1.0)

        n = args.samples
        isolated = measure_latency(driver, pub, [1.0 + 0.01 * i for i in range(n)], 0.25)
        stream = measure_latency(driver, pub, [50.0 + 0.01 * i for i in range(2 * n)], 0.05)

        pid = node_pid("/dashboard_node")
        feed_one_robot(pubs, stats_pub, 0)
        time.sleep(1.0)
        t0, c0 = time.monotonic(), cpu_seconds(pid)
        k = 1
        while time.monotonic() - t0 < args.cpu_window:
            feed_one_robot(pubs, stats_pub, k)
            k += 1
            time.sleep(max(0.0, t0 + k - 1 - time.monotonic()))
        cpu = 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        health = json.loads(urllib.request.urlopen(url + "healthz", timeout=5.0).read())
    finally:
        if driver is not None:
            driver.quit()
        profile.cleanup()
        if node is not None:
            node.stop()
        master.stop()

    print(f"\ndashboard_node, defaults (update_period_s 0.5, min_push_interval_s 0.1), one page in headless "
          f"Chromium; {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| case | published | shown | arrival p50 [ms] | p95 | p99 | max | render done p50 / p99 [ms] | "
          "event [KiB] |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(row("isolated changes, every 250 ms", isolated))
    print(row("stream, 20 Hz", stream))
    print(f"\ndashboard_node CPU, one robot's 6 inputs at 1 Hz, one page connected, {args.cpu_window:g} s: "
          f"{cpu:.2f} % of one core ({health['pushes']} pushes in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
