#!/usr/bin/env python3
"""Benchmarks one assignment round of the fleet manager at fleet size: 1,000 robots reporting once a
round, a tenth of them free at each round, 10,000 queued tasks; SQLite and PostgreSQL side by side.

No ROS: `FleetManager` on its `TaskStore` (an SQLite WAL file in a temporary directory; a PostgreSQL
server of its own, vla_msgs.launching.postgres_server with fsync on), wall time per operation.
Each round: a random tenth of the robots finish their task (stored as succeeded) and report available,
the others report busy with their task; replacement tasks keep 10,000 pending (random locations in a
100 m square, priorities 0..9, a tenth needing a `gripper` that a third of the robots have). Measured:
`tick()` (offline check over the active tasks, reading the queue front, the optimal assignment, the
claims committed), the 1,000 status reports of the round (`on_robot_status`), and the process's memory.
Usage: python bench/bench_fleet.py [--robots 1000] [--tasks 10000] [--rounds 100] [--db sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time

import numpy as np
from procstat import rss_mb

from vla_fleet.manager import FleetManager, FleetManagerConfig
from vla_fleet.store import SUCCEEDED, open_store
from vla_monitoring.config import build_config
from vla_msgs.launching import postgres_server

WARMUP_ROUNDS = 15


class Fleet:
    def __init__(self, n: int, rng: random.Random):
        self.rng = rng
        self.ids = [f"robot_{i}" for i in range(n)]
        self.pos = {r: [rng.uniform(0, 100), rng.uniform(0, 100), 0.0] for r in self.ids}
        self.caps = {r: ["camera", "gripper"] if i % 3 == 0 else ["camera"] for i, r in enumerate(self.ids)}
        self.task: dict[str, str | None] = dict.fromkeys(self.ids)

    def statuses(self, free: set[str]) -> list[dict]:
        return [{"robot_id": r, "status": "available" if r in free else "busy", "position": self.pos[r],
                 "battery": 80.0, "current_task_id": None if r in free else self.task[r],
                 "capabilities": self.caps[r]} for r in self.ids]


def submit(mgr: FleetManager, rng: random.Random, n: int) -> None:
    for _ in range(n):
        params = {"location": [rng.uniform(0, 100), rng.uniform(0, 100)]}
        if rng.random() < 0.1:
            params["capabilities"] = ["gripper"]
        mgr.store.submit("bench task", rng.randrange(10), mgr.clock(), parameters=params,
                         location=tuple(params["location"]), capabilities=params.get("capabilities", []))


def run(db_url: str, robots: int, tasks: int, rounds: int, seed: int) -> dict:
    rng = random.Random(seed)
    cfg = build_config(FleetManagerConfig, {"db_url": db_url, "manager_id": "bench", "robot_timeout_s": 600.0,
                                            "ack_timeout_s": 600.0, "resend_period_s": 600.0})
    rss_before = rss_mb(os.getpid())
    clock = [0.0]  # one simulated second a round: no robot times out during the run
    mgr = FleetManager(open_store(db_url), cfg, lambda: clock[0])
    fleet = Fleet(robots, rng)
    t0 = time.perf_counter()
    submit(mgr, rng, tasks)
    fill_s = time.perf_counter() - t0
    tick_ms, status_ms, assigned, candidates = [], [], [], []
    for n in range(WARMUP_ROUNDS + rounds):
        clock[0] += 1.0
        now = clock[0]
        free = set(rng.sample(fleet.ids, robots // 10))
        for r in free:
            if fleet.task[r]:
                mgr.store.finish(fleet.task[r], r, SUCCEEDED, "", now)
                fleet.task[r] = None
        t0 = time.perf_counter()
        for doc in fleet.statuses(free):
            mgr.on_robot_status(doc, now)
        t1 = time.perf_counter()
        result = mgr.tick(now)
        t2 = time.perf_counter()
        for task in result.assigned:
            fleet.task[task.robot_id] = task.id
        submit(mgr, rng, len(result.assigned))
        if n >= WARMUP_ROUNDS:
            status_ms.append((t1 - t0) * 1e3)
            tick_ms.append((t2 - t1) * 1e3)
            assigned.append(len(result.assigned))
            candidates.append(sum(1 for r in free if not fleet.task[r]) + len(result.assigned))
    active = len(mgr.store.active())
    pending = mgr.store.count("pending")
    mgr.store.close()
    return {"tick": tick_ms, "status": status_ms, "assigned": float(np.mean(assigned)), "fill_s": fill_s,
            "active": active, "pending": pending, "rss_mb": rss_mb(os.getpid()), "rss_before_mb": rss_before}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--robots", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    results = {}
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            results["SQLite"] = run(f"sqlite:///{tmp}/fleet.db", args.robots, args.tasks, args.rounds, args.seed)
    if args.db in ("postgresql", "both"):
        with postgres_server(fsync=True) as url:
            results["PostgreSQL"] = run(url, args.robots, args.tasks, args.rounds, args.seed)
    print(f"fleet manager: {args.robots} robots ({args.robots // 10} free a round), {args.tasks} queued tasks, "
          f"{args.rounds} rounds after {WARMUP_ROUNDS} warm-up; {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print("| measure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    rows = [
        ("round (tick) p50 ms", lambda r: f"{pct(r['tick'], 50):.1f}"),
        ("round (tick) p99 ms", lambda r: f"{pct(r['tick'], 99):.1f}"),
        ("round (tick) max ms", lambda r: f"{max(r['tick']):.1f}"),
        (f"{args.robots} status reports p50 ms", lambda r: f"{pct(r['status'], 50):.1f}"),
        (f"{args.robots} status reports p99 ms", lambda r: f"{pct(r['status'], 99):.1f}"),
        ("tasks assigned a round (mean)", lambda r: f"{r['assigned']:.1f}"),
        ("active / pending at the end", lambda r: f"{r['active']} / {r['pending']}"),
        (f"queue filled ({args.tasks} submits) s", lambda r: f"{r['fill_s']:.1f}"),
        ("process RSS before / after MB", lambda r: f"{r['rss_before_mb']:.0f} / {r['rss_mb']:.0f}"),
    ]
    for name, fmt in rows:
        print(f"| {name} | " + " | ".join(fmt(r) for r in results.values()) + " |")


if __name__ == "__main__":
    main()
