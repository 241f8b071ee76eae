#!/usr/bin/env python3
"""Benchmarks what a submit_key costs a submit: FleetManager.submit without a key, with a new key, and again
with a key already stored, on an SQLite WAL file and on a PostgreSQL server of its own.

No ROS: the manager core on its store (vla_msgs.launching.postgres_server for PostgreSQL: default settings,
fsync on, loopback); wall time per submit, N of each kind into one growing table.
Usage: python bench/bench_submit_key.py [--submits 2000] [--db sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable

import numpy as np

from vla_fleet.manager import FleetManager, FleetManagerConfig
from vla_fleet.store import SUBMIT_KEY, open_store
from vla_monitoring.config import build_config
from vla_msgs import launching

KINDS: dict[str, Callable[[int], str]] = {
    "no key": lambda i: "",
    "new key": lambda i: json.dumps({SUBMIT_KEY: f"schedule-{i}@1800000000.000000"}),
    "known key (a retry)": lambda i: json.dumps({SUBMIT_KEY: f"schedule-{i}@1800000000.000000"}),
}


def bench(url: str, n: int) -> None:
    cfg = build_config(FleetManagerConfig, {"db_url": url, "manager_id": "bench"})
    mgr = FleetManager(open_store(url), cfg, time.time)
    print(f"-- {mgr.store.dialect}, {n} submits of each kind")
    for kind, params in KINDS.items():
        times = []
        for i in range(n):
            start = time.perf_counter()
            mgr.submit("go to the dock", 1, "", params(i))
            times.append(time.perf_counter() - start)
        a = np.asarray(times) * 1e3
        print(f"{kind:<20} p50 {np.percentile(a, 50):.3f}  p99 {np.percentile(a, 99):.3f} ms")
    rows = len(mgr.store.list_tasks(limit=10 * n))
    print(f"rows stored: {rows} (expected {2 * n}); repeated submits counted: {mgr.repeated_submits}")
    mgr.store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submits", type=int, default=2000)
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as d:
            bench(f"sqlite:///{d}/fleet.db", args.submits)
    if args.db in ("postgresql", "both"):
        if not launching.have_postgres():
            print("-- postgresql: skipped (server binaries not installed)")
            return
        with launching.postgres_server() as url:
            bench(url, args.submits)


if __name__ == "__main__":
    main()
