#!/usr/bin/env python3
"""Hybrid fail-over of the inference loop: how long from the cloud server's failure to the first action
the edge model computed, and whether any control step went without an action.

It runs the inference node's ROS-free control loop (vla_edge.controller, the node's own code) at
--rate Hz on wall time with the reference policy on the edge and a real cloud server
(`python -m vla_edge.cloud`, same policy, a subprocess on loopback) in hybrid mode, a fresh camera
frame before each step. Once chunks come from the cloud, a fault is injected at a random phase of
the control period:
- kill: SIGKILL of the server (connections reset, then refused); the server is restarted afterwards;
- hang: SIGSTOP (the server holds its connections and answers nothing: the deadline path), SIGCONT
  after --hang-s.
Measured per fault, wall time: fault -> first action whose chunk the edge computed (`edge action`),
fault -> first edge chunk on the worker (`edge chunk`), steps without an action from the fault to the
first edge action (`missed`), and back to the cloud: server ready again (restart's /health, or SIGCONT)
-> first cloud action (`back to cloud`).
First, the client's cost per frame: JPEG size and encode time (the request body's base64 included)
at the simulator's 96x96 and a 640x480 camera, for a few `~jpeg_quality` values, on a camera-like frame.
Usage: python bench/bench_cloud_failover.py [--kills 2] [--hangs 4] [--rate 10] [--model PATH] [--jpeg-only]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from vla_edge.clock import MonotonicClock
from vla_edge.cloud.protocol import infer_request
from vla_edge.cloud_client import CircuitBreaker, CloudClient, CloudPolicy
from vla_edge.config import InferenceConfig
from vla_edge.controller import Frame, InferenceController, Runtime, StepOutcome
from vla_edge.encoders import encoder_for
from vla_edge.modes import ModeSwitch
from vla_edge.policy import configure_threads, load_policy
from vla_monitoring.config import build_config
from vla_msgs import launching, waiting
from vla_msgs.tasks import parse_task_command

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "vla_sim" / "models" / "reference_policy.pt"


class Server:
    def __init__(self, model: Path, log_dir: Path):
        self.model, self.log_dir = model, log_dir
        self.port = launching.free_port()
        self.group: launching.ProcessGroup | None = None
        self.starts = 0

    def start(self) -> float:
        """Starts the server; returns the wall time its /health first answered."""
        self.starts += 1
        self.group = launching.ProcessGroup(
            [sys.executable, "-m", "vla_edge.cloud", "--model", str(self.model), "--host", "127.0.0.1",
             "--http-port", str(self.port), "--ws-port", str(launching.free_port()), "--torch-threads", "1"],
            self.log_dir / f"server_{self.starts}.log")
        waiting.wait_until(self._healthy, 300.0, "the cloud server's /health", poll_s=0.02)
        return time.monotonic()

    def _healthy(self) -> bool:
        if not self.group.alive():
            raise RuntimeError(f"cloud server exited:\n{self.group.tail()}")
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/health", timeout=0.5).status_code == 200
        except requests.RequestException:
            return False

    def signal(self, sig: int) -> None:
        os.killpg(self.group.proc.pid, sig)

    def stop(self) -> None:
        if self.group is not None:
            if self.group.alive():
                self.group.proc.send_signal(signal.SIGCONT)
            self.group.stop()


class Loop:
    """The control loop at a fixed rate on its own thread, recording (time, outcome, source) per step."""

    def __init__(self, ctl: InferenceController, rate_hz: float):
        self.ctl, self.period = ctl, 1.0 / rate_hz
        self.image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
        self.steps: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Loop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            self.ctl.submit_frame(Frame(now, now, self._decode, now))
            result = self.ctl.step()
            source = ""
            if result.outcome is StepOutcome.ACTION:
                source = result.action.chunk.source
                self.ctl.finish_step(result, 0.0)
            self.steps.append((now, result.outcome.value, source))
            next_t += self.period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _decode(self) -> np.ndarray:
        return self.image

    def count_after(self, t: float, source: str) -> int:
        return sum(1 for s in list(self.steps) if s[0] >= t and s[2] == source)

    def first_after(self, t: float, source: str) -> float | None:
        return next((s[0] for s in list(self.steps) if s[0] >= t and s[2] == source), None)

    def missed_between(self, t0: float, t1: float) -> int:
        return sum(1 for s in list(self.steps) if t0 <= s[0] <= t1 and s[1] != StepOutcome.ACTION.value)


def camera_like(height: int, width: int) -> np.ndarray:
    """Smooth gradients, a few blocks and sensor noise: compresses like a camera frame, unlike pure noise."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1).astype(float)
    for _ in range(6):
        r0, c0 = rng.integers(0, height // 2), rng.integers(0, width // 2)
        img[r0:r0 + height // 4, c0:c0 + width // 4] = rng.integers(0, 255, 3)
    img += rng.normal(0.0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_table(frames: int = 200) -> None:
    print("| frame | jpeg_quality | JPEG bytes | raw bytes | encode + base64 p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for height, width in ((96, 96), (480, 640)):
        rgb = camera_like(height, width)
        for quality in (50, 75, 90, 95):
            times = []
            for _ in range(frames):
                start = time.perf_counter()
                body = infer_request(rgb, "go to the red cube", 0.0, quality)
                times.append((time.perf_counter() - start) * 1000.0)
            size = len(body["image"]) * 3 // 4
            print(f"| {width}x{height} | {quality} | {size} | {rgb.size} | "
                  f"{np.percentile(times, 50):.3f} / {np.percentile(times, 99):.3f} |")


def wait_source(loop: Loop, since: float, source: str, timeout_s: float) -> float:
    return waiting.wait_until(lambda: loop.first_after(since, source), timeout_s, f"a {source} action")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--hangs", type=int, default=4)
    parser.add_argument("--hang-s", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--jpeg-only", action="store_true", help="only the JPEG table")
    args = parser.parse_args()

    jpeg_table()
    if args.jpeg_only:
        return

    configure_threads(1)
    config = build_config(InferenceConfig, {"model_path": args.model, "mode": "hybrid", "control_rate": args.rate,
                                            "cloud_url": "http://127.0.0.1:1"})
    server = Server(Path(args.model), Path(tempfile.mkdtemp(prefix="bench_cloud_")))
    ready_t = server.start()
    clock = MonotonicClock()
    policy = load_policy(args.model, "cpu", config.warmup_runs)
    encoder = encoder_for(policy.spec, "cpu", config.language_cache_size)
    client = CloudClient(f"http://127.0.0.1:{server.port}", connect_timeout_s=config.cloud_connect_timeout,
                         read_timeout_s=config.cloud_read_timeout, jpeg_quality=config.jpeg_quality)
    breaker = CircuitBreaker(config.cloud_failure_threshold, config.cloud_retry_interval, config.cloud_retry_max,
                             clock.now)
    cloud = CloudPolicy(client, breaker, clock)
    ctl = InferenceController(config, Runtime.build(policy, encoder, cloud), clock=clock,
                              modes=ModeSwitch.for_cloud(True, "hybrid"))
    ctl.set_task(parse_task_command("go to the red cube"))
    loop = Loop(ctl, args.rate).start()
    rows = []
    rng = random.Random(0)
    faults = ["kill"] * args.kills + ["hang"] * args.hangs
    try:
        back_since = ready_t
        for fault in faults:
            wait_source(loop, back_since, "cloud", 120.0)
            # twenty steps on the cloud, then the fault at a random phase of the period
            waiting.wait_until(lambda since=back_since: loop.count_after(since, "cloud") >= 20, 60.0,
                               "twenty cloud actions")
            time.sleep(rng.uniform(0.0, loop.period))
            fault_t = time.monotonic()
            server.signal(signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
            edge_t = wait_source(loop, fault_t, "edge", 30.0)
            missed = loop.missed_between(fault_t, edge_t)
            if fault == "kill":
                server.group.stop()
                back_since = server.start()
            else:
                time.sleep(args.hang_s)
                server.signal(signal.SIGCONT)
                back_since = time.monotonic()
            cloud_t = wait_source(loop, back_since, "cloud", 120.0)
            rows.append((fault, (edge_t - fault_t) * 1000.0, missed, (cloud_t - back_since) * 1000.0))
    finally:
        loop.stop()
        ctl.shutdown()
        cloud.close()
        server.stop()
    steps = list(loop.steps)
    counts = ctl.counters
    print(f"hybrid fail-over, control loop at {args.rate:g} Hz, cloud deadline "
          f"{config.cloud_deadline_s(hybrid=True) * 1000:.0f} ms, breaker {config.cloud_failure_threshold} failures, "
          f"probe {config.cloud_retry_interval:g}..{config.cloud_retry_max:g} s")
    print("| fault | fault -> first edge action ms | steps without action | server back -> first cloud action ms |")
    print("|---|---|---|---|")
    for fault, failover_ms, missed, back_ms in rows:
        print(f"| {fault} | {failover_ms:.0f} | {missed} | {back_ms:.0f} |")
    for fault in ("kill", "hang"):
        values = [r[1] for r in rows if r[0] == fault]
        if values:
            print(f"{fault}: fail-over median {statistics.median(values):.0f} ms, max {max(values):.0f} ms "
                  f"over {len(values)}")
    print(f"steps {len(steps)}, without action {sum(1 for s in steps if s[1] != 'action')}; "
          f"edge actions {counts.edge_actions}, cloud actions {counts.cloud_actions}, "
          f"cloud errors {counts.cloud_errors}, fallbacks {counts.cloud_fallbacks}, "
          f"starved {counts.starved_steps}")


if __name__ == "__main__":
    main()
