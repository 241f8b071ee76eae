#!/usr/bin/env python3
"""Benchmarks the scheduler core on its store with N scheduled tasks (default 100,000), SQLite and PostgreSQL.

No ROS: `Scheduler` and `ScheduleStore` on an SQLite WAL file in a temporary directory, and on a
PostgreSQL server of its own (vla_msgs.launching.postgres_server, default settings, fsync on); wall time
per operation.
- insert: N requests through `Scheduler.add` (checked, stored; one commit each), 90 % at a time spread
  over a day, 9 % every interval, 1 % on a cron expression, priorities 0..100; per-insert latency for
  the first and the last 10,000 (an insert that re-sorted would grow with the table);
- idle poll: `run_due` with nothing due at full size (what the node does every poll_period_s);
- pop: one ready schedule submitted and recorded (`run_due` with max_submits_per_poll 1, a submit that
  returns at once) at full size, then the whole table drained in polls of 100;
- the query plan of the pop, to show it reads the index rather than sorting.
Usage: python bench/bench_scheduler.py [--tasks 100000] [--db sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from vla_fleet.schedule_store import Schedule, ScheduleStore
from vla_fleet.scheduler import Request, Scheduler, SchedulerConfig
from vla_monitoring.config import build_config
from vla_msgs import launching

T0 = 1_800_000_000.0
DAY_S = 86400.0


def ms(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return f"p50 {np.percentile(a, 50):.3f}  p99 {np.percentile(a, 99):.3f}  max {a.max():.3f} ms"


def request(rng: random.Random, i: int) -> Request:
    kind = rng.random()
    params: dict = {}
    if kind < 0.09:
        params["interval_s"] = rng.choice([60.0, 300.0, 3600.0])
    elif kind < 0.10:
        params["cron"] = rng.choice(["*/15 * * * *", "0 8 * * 1-5", "30 2 * * *"])
    return Request(f"go to the red cube {i}", priority=rng.randint(0, 100),
                   scheduled_time=T0 + rng.uniform(0.0, DAY_S), parameters_json=json.dumps(params) if params else "")


def submit(_schedule: Schedule) -> str:
    return "task"


def bench(url: str, n: int) -> None:
    rng = random.Random(1)
    sched = Scheduler(ScheduleStore(url), SchedulerConfig())
    insert_s = []
    start = time.perf_counter()
    for i in range(n):
        req = request(rng, i)
        t = time.perf_counter()
        sched.add(req, T0)
        insert_s.append(time.perf_counter() - t)
    total_s = time.perf_counter() - start
    k = min(10_000, n)
    print(f"insert  all {n}: {total_s:.2f} s, {n / total_s:,.0f} /s; {ms(insert_s)}")
    print(f"insert  first {k}: {ms(insert_s[:k])}")
    print(f"insert  last  {k}: {ms(insert_s[-k:])}")

    idle = []
    for _ in range(1000):
        t = time.perf_counter()
        sched.run_due(T0 - 1.0, submit)
        idle.append(time.perf_counter() - t)
    print(f"idle poll at {n}: {ms(idle)}")

    query = ("SELECT id FROM vla_schedules WHERE state = 'active' AND ready <= ? "
             "ORDER BY ready, priority, created LIMIT 1")
    explain = "EXPLAIN QUERY PLAN " if url.startswith("sqlite") else "EXPLAIN "
    with sched.store._lock:
        plan = sched.store._execute(explain + query, (T0 + DAY_S,)).fetchall()
    print("pop plan: " + "; ".join(str(row[-1]).strip() for row in plan))

    one = Scheduler(sched.store, build_config(SchedulerConfig, {"max_submits_per_poll": 1}))
    pop = []
    now = T0 + 2 * DAY_S  # everything due
    for _ in range(min(10_000, n // 2)):  # one-shots: a recurring one pops once, then waits
        t = time.perf_counter()
        out = one.run_due(now, submit)
        pop.append(time.perf_counter() - t)
        assert len(out) == 1
    print(f"pop one (select + submit + record) at ~{n}: {ms(pop)}")

    polls = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        out = sched.run_due(now, submit)
        polls.append(time.perf_counter() - t)
        if not out:
            break
    drained_s = time.perf_counter() - start
    print(f"drain in polls of 100: {len(polls)} polls, {drained_s:.2f} s; per poll {ms(polls)}; "
          f"active left {sched.store.count()} (recurring ones moved to their next slot)")
    sched.store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = ap.parse_args()
    print(f"# bench_scheduler: {args.tasks} schedules; Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            print("## SQLite (WAL file)")
            bench(f"sqlite:///{tmp}/fleet.db", args.tasks)
            print(f"db file {Path(tmp, 'fleet.db').stat().st_size / 1e6:.1f} MB (+ WAL)")
    if args.db in ("postgresql", "both"):
        with launching.postgres_server(fsync=True) as url:
            print("## PostgreSQL 15 (loopback, default settings)")
            bench(url, args.tasks)


if __name__ == "__main__":
    main()
