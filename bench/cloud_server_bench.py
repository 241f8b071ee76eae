#!/usr/bin/env python3
"""Cloud inference server against the reference openpi server, same machine, same TorchScript model,
same PyPI openpi-client: throughput and p50/p99 latency at 1, 4 and 16 concurrent clients; the model's
batched forward limit; /infer against /batch_infer; JPEG size and time per frame.

Each server runs in a process of its own; the clients run as threads spread over client processes
(each client one WebSocket connection, requests back to back with a 96x96 frame and a prompt).
The reference is openpi-server's WebsocketPolicyServer around a BasePolicy running the same model
through the same runtime (`ServedPolicy`, one sample per call).

`--baseline REV` also serves the cloud server's code as of git revision REV (its vla_edge package
exported to a temporary directory, first on PYTHONPATH) in the same run, for a before/after on the same
minute. Each row gives the CPU the server and the client processes used over the measured window, in
cores (2.0 = both cores of this machine), to show what the clients leave to the server, and for ours the
mean batch and the share of requests run inline (from /metrics, over the row with its warm-up).

Usage: python bench/cloud_server_bench.py [--seconds S] [--clients 1,4,16] [--baseline REV] [--rounds N]
(results: docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import torch
from procstat import cpu_seconds

from vla_edge.cloud.protocol import Observation, decode_image, encode_image, infer_request
from vla_edge.cloud.runtime import ServedPolicy
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "vla_sim" / "models" / "reference_policy.pt"
PROMPTS = ["go to the red cube", "go to the blue ball", "find the green cylinder", "go to the yellow cone"]
CLIENT_PROCS = 4


def serve_openpi(port: int) -> None:
    """The reference: openpi-server's WebsocketPolicyServer, one forward pass per request."""
    from openpi_client import base_policy
    from openpi_server.websocket_policy_server import WebsocketPolicyServer

    from vla_edge.policy import configure_threads

    configure_threads(0)
    served = ServedPolicy.load(MODEL, "cpu")

    class Policy(base_policy.BasePolicy):
        def infer(self, obs: dict) -> dict:
            result = served.run_batch([Observation(rgb=obs["observation/image"], instruction=obs["prompt"])])[0]
            return {"actions": result["actions"]}

    print("openpi reference ready", flush=True)
    WebsocketPolicyServer(Policy(), host="127.0.0.1", port=port, metadata=served.metadata()).serve_forever()


def _client_proc(port: int, threads: int, warmup_s: float, seconds: float, queue: mp.Queue) -> None:
    import threading

    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    rng = np.random.default_rng(port + threads)
    frames = [(rng.random((96, 96, 3)) * 255).astype(np.uint8) for _ in range(8)]
    clients = [WebsocketClientPolicy("127.0.0.1", port) for _ in range(threads)]
    start_measure = time.perf_counter() + warmup_s
    end = start_measure + seconds
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def run(i: int) -> None:
        n = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            out = clients[i].infer({"observation/image": frames[n % 8], "prompt": PROMPTS[(i + n) % 4]})
            t1 = time.perf_counter()
            assert out["actions"].shape == (8, 6)
            if t0 >= start_measure:
                latencies[i].append(t1 - t0)
            n += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    time.sleep(max(0.0, start_measure - time.perf_counter()))
    cpu0 = time.process_time()
    for w in workers:
        w.join()
    queue.put(([x for lat in latencies for x in lat], time.process_time() - cpu0))


def load(port: int, clients: int, warmup_s: float, seconds: float,
         server_pid: int | None = None) -> tuple[float, float, float, float, float]:
    """(requests/s, p50 ms, p99 ms, server cores, client cores) of `clients` back-to-back openpi clients;
    cores = CPU seconds over the measured window per second (the server's from /proc, from about the
    window's start: a little warm-up is in it)."""
    procs = min(CLIENT_PROCS, clients)
    split = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    queue: mp.Queue = mp.get_context("spawn").Queue()
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_client_proc, args=(port, n, warmup_s, seconds, queue)) for n in split]
    for w in workers:
        w.start()
    time.sleep(warmup_s)
    server0 = cpu_seconds(server_pid) if server_pid else 0.0
    got = [queue.get(timeout=seconds + warmup_s + 120) for _ in workers]
    server_cores = (cpu_seconds(server_pid) - server0) / seconds if server_pid else float("nan")
    for w in workers:
        w.join(30)
    lat = np.concatenate([np.asarray(g[0]) for g in got])
    client_cores = sum(g[1] for g in got) / seconds
    return (len(lat) / seconds, float(np.percentile(lat, 50) * 1e3), float(np.percentile(lat, 99) * 1e3),
            server_cores, client_cores)


def batching(http_port: int) -> tuple[float, float, float]:
    """(forward passes, requests in them, requests run inline) so far, from the server's /metrics (a
    revision before the inline path has no inline counter: 0)."""
    text = requests.get(f"http://127.0.0.1:{http_port}/metrics", timeout=30).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    return (values["vla_cloud_batch_size_count"], values["vla_cloud_batch_size_sum"],
            values.get("vla_cloud_inline_requests_total", 0.0))


def baseline_env(rev: str, directory: Path) -> dict[str, str]:
    """An environment whose PYTHONPATH puts the vla_edge package of git revision `rev` first."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "vla_edge/src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{directory / 'vla_edge' / 'src'}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def model_limit(batch: int, calls: int = 200) -> float:
    """Samples/s of the TorchScript module alone at this batch size (inputs already tensors)."""
    from vla_edge.policy import configure_threads, load_policy

    configure_threads(0)
    policy = load_policy(MODEL, "cpu")
    spec = policy.spec
    image = torch.rand(batch, 3, *spec.image_size)
    lang = torch.nn.functional.normalize(torch.randn(batch, spec.language_dim), dim=-1)
    with torch.inference_mode():
        for _ in range(20):
            policy.module(image, lang)
        t0 = time.perf_counter()
        for _ in range(calls):
            policy.module(image, lang)
    return batch * calls / (time.perf_counter() - t0)


def start(cmd: list[str], log: Path, ready: str, env: dict[str, str] | None = None) -> ProcessGroup:
    group = ProcessGroup(cmd, log, env)
    wait_until(lambda: not group.alive() or ready in log.read_text(errors="replace"), 300, ready)
    if not group.alive():
        raise SystemExit(f"server failed:\n{group.tail()}")
    return group


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def http_rows(http_port: int, frames: int = 16, rounds: int = 20) -> list[tuple[str, float]]:
    """ms per frame: /infer one request per frame vs one /batch_infer of `frames` (one HTTP session)."""
    rng = np.random.default_rng(7)
    bodies = [infer_request((rng.random((96, 96, 3)) * 255).astype(np.uint8), PROMPTS[i % 4], 1.0)
              for i in range(frames)]
    url = f"http://127.0.0.1:{http_port}"
    session = requests.Session()
    for b in bodies:
        session.post(url + "/infer", json=b, timeout=30).raise_for_status()
    t0 = time.perf_counter()
    for _ in range(rounds):
        for b in bodies:
            session.post(url + "/infer", json=b, timeout=30).raise_for_status()
    single = (time.perf_counter() - t0) * 1e3 / (rounds * frames)
    t0 = time.perf_counter()
    for _ in range(rounds):
        reply = session.post(url + "/batch_infer", json={"requests": bodies}, timeout=30)
        assert all("actions" in r for r in reply.json()["results"])
    batched = (time.perf_counter() - t0) * 1e3 / (rounds * frames)
    return [(f"/infer, {frames} sequential requests", single), (f"/batch_infer, {frames} in one request", batched)]


def jpeg_rows() -> list[str]:
    rows = []
    rng = np.random.default_rng(3)
    for h, w in ((96, 96), (480, 640)):
        # a smooth frame with noise, closer to a camera image than uniform noise
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
        rgb = np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
        for quality in (75, 90):
            n = 200
            t0 = time.perf_counter()
            for _ in range(n):
                text = encode_image(rgb, "jpeg", quality)
            enc = (time.perf_counter() - t0) * 1e3 / n
            t0 = time.perf_counter()
            for _ in range(n):
                decode_image(text)
            dec = (time.perf_counter() - t0) * 1e3 / n
            raw_kb = rgb.nbytes / 1024
            rows.append(f"| {w}x{h} | {quality} | {raw_kb:.0f} | {len(text) * 3 / 4 / 1024:.1f} | "
                        f"{len(text) / 1024:.1f} | {enc:.2f} | {dec:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per row")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=1, help="rows per server and client count, "
                        "alternating the order of the servers")
    parser.add_argument("--baseline", default="", help="also serve the cloud server of this git revision")
    parser.add_argument("--serve-openpi", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_openpi:
        serve_openpi(args.serve_openpi)
        return
    counts = [int(c) for c in args.clients.split(",")]
    logdir = Path(tempfile.mkdtemp(prefix="cloud_bench_"))
    print(f"# {MODEL.name}, torch {torch.__version__}, {mp.cpu_count()} cores; clients in "
          f"{CLIENT_PROCS} processes; {args.seconds:g} s per row after {args.warmup:g} s warm-up")
    limit1, limit16 = model_limit(1), model_limit(16)
    print(f"model alone: {limit1:.0f} samples/s at batch 1, {limit16:.0f} samples/s at batch 16")

    ours_ws, ours_http = free_port(), free_port()
    servers: list[tuple[str, int, ProcessGroup, int | None]] = []  # name, ws port, process, http port

    def ours(name: str, ws: int, http: int, env: dict[str, str] | None = None) -> ProcessGroup:
        return start([sys.executable, "-m", "vla_edge.cloud", "--model", str(MODEL), "--host", "127.0.0.1",
                      "--ws-port", str(ws), "--http-port", str(http), "--max-batch-size",
                      str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms), "--log-level", "warning"],
                     logdir / f"{name}.log", "cloud_server ready", env)

    try:
        ref_port = free_port()
        ref = start([sys.executable, __file__, "--serve-openpi", str(ref_port)], logdir / "ref.log",
                    "openpi reference ready")
        servers.append(("openpi-server", ref_port, ref, None))
        wait_until(lambda: _answers(f"http://127.0.0.1:{ref_port}/healthz"), 60, "reference listening")
        if args.baseline:
            rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline], check=True,
                                 capture_output=True, text=True).stdout.strip()
            base_ws, base_http = free_port(), free_port()
            servers.append((f"vla cloud_server @{rev}", base_ws,
                            ours("baseline", base_ws, base_http, baseline_env(rev, logdir)), base_http))
        servers.append(("vla cloud_server", ours_ws, ours("ours", ours_ws, ours_http), ours_http))
        print("\n| clients | server | requests/s | p50 ms | p99 ms | of batch-16 model limit | server cores "
              "| client cores | mean batch, inline |")
        print("|---|---|---|---|---|---|---|---|---|")
        for n in counts:
            # later rounds run the servers in the other order: the machine's load drifts within a minute
            order = [servers if r % 2 == 0 else servers[::-1] for r in range(args.rounds)]
            for name, port, group, http in (entry for round_ in order for entry in round_):
                before = batching(http) if http else None
                rps, p50, p99, server_cores, client_cores = load(port, n, args.warmup, args.seconds,
                                                                  group.proc.pid)
                shape = "-"
                if before is not None:
                    passes, items, inline = (b - a for a, b in zip(before, batching(http), strict=True))
                    shape = f"{items / max(passes, 1):.2f}, {100 * inline / max(items, 1):.0f} %"
                print(f"| {n} | {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {100 * rps / limit16:.0f} % | "
                      f"{server_cores:.2f} | {client_cores:.2f} | {shape} |", flush=True)
        print("\n| HTTP path | ms per frame |")
        print("|---|---|")
        for name, ms in http_rows(ours_http):
            print(f"| {name} | {ms:.2f} |")
    finally:
        for _, _, group, _ in servers:
            group.stop()
    print("\n| frame | JPEG quality | raw KiB | JPEG KiB | base64 KiB | encode ms | decode ms |")
    print("|---|---|---|---|---|---|---|")
    for row in jpeg_rows():
        print(row)


if __name__ == "__main__":
    main()
