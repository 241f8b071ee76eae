#!/usr/bin/env python3
"""Benchmarks full_backup and restore_backup of a PostgreSQL task store: wall time, the CPU of pg_dump /
pg_restore, the dump's and the archive's size.

A throwaway server on loopback (vla_msgs.launching.postgres_server, with fsync: the restore's commit is
flushed as in production), a store of `--tasks` tasks through vla_fleet.store (each with its `submitted`
history row; a tenth assigned, run and finished, so `attempts` has rows too), then the two maintenance tasks
as maintenance_node runs them; the restore comes after a third of the tasks were deleted and every row is
compared with the backed-up ones afterwards.
Usage: python bench/bench_maintenance_postgresql.py [--tasks 10000]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tarfile
import tempfile
import time
from pathlib import Path

TABLES = {"tasks": "seq", "attempts": "task_id, attempt", "history": "id"}


def fill(url: str, n: int) -> None:
    from vla_fleet.store import SUCCEEDED, open_store

    store = open_store(url)
    try:
        for i in range(n):
            store.submit(f"go to shelf {i}", i % 5, 1_800_000_000.0 + i, location=(float(i % 100), 1.0))
        for k in range(n // 10 // 20):  # rounds of 20 robots
            claimed = store.assign_round(lambda pending, busy: [(t.id, f"robot_{j}") for j, t in
                                                                  enumerate(pending[:20])], "m1", 1.9e9 + k, 20)
            for task in claimed:
                assert store.mark_running(task.id, task.robot_id, 1.9e9 + k)
                store.finish(task.id, task.robot_id, SUCCEEDED, "", 1.9e9 + k)
    finally:
        store.close()


def rows(url: str) -> dict[str, list[tuple]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall() for t, key in TABLES.items()}


def children_cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000)
    args = ap.parse_args()
    import psycopg

    from vla_fleet.maintenance import backup, pgdump
    from vla_fleet.maintenance.config import MaintenanceConfig
    from vla_monitoring.config import build_config
    from vla_msgs.launching import POSTGRES_BIN, have_postgres, postgres_server

    if not have_postgres():
        print(f"skipped: no PostgreSQL server binaries in {POSTGRES_BIN} (Debian package postgresql)")
        return
    with postgres_server(fsync=True) as admin, tempfile.TemporaryDirectory(prefix="bench_pg_backup_") as tmp:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE fleet")
        url = admin.rsplit("/", 1)[0] + "/fleet"
        t0 = time.perf_counter()
        fill(url, args.tasks)
        before = rows(url)
        with psycopg.connect(url) as conn:
            db_mb = conn.execute("SELECT pg_database_size('fleet')").fetchone()[0] / 1e6
        print(f"store: {len(before['tasks'])} tasks, {len(before['history'])} history rows, "
              f"{len(before['attempts'])} attempts, database {db_mb:.1f} MB (made in {time.perf_counter() - t0:.1f} s);"
              f" {pgdump.find_tool('pg_dump')}, {platform.python_version()}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}")
        cfg = build_config(MaintenanceConfig, {"db_urls": [url], "releases_dir": str(Path(tmp) / "ota"),
                                               "backup_dir": str(Path(tmp) / "backups")})
        print(f"{'task':<16}{'wall s':>8}{'child CPU s':>13}  what")
        cpu, t0 = children_cpu_s(), time.perf_counter()
        done = backup.full_backup(cfg, time.time())
        wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu
        assert not done["problems"], done["problems"]
        with tarfile.open(done["archive"]) as tar:
            dump = next(m for m in tar.getmembers() if m.name.endswith(pgdump.SUFFIX))
        print(f"{'full_backup':<16}{wall:>8.2f}{cpu:>13.2f}  pg_dump -Fc {dump.size / 1e6:.2f} MB, "
              f"archive {done['size'] / 1e6:.2f} MB (gzip 6)")
        with psycopg.connect(url) as conn:
            conn.execute("DELETE FROM tasks WHERE seq % 3 = 0")
        cpu, t0 = children_cpu_s(), time.perf_counter()
        backup.restore_backup(cfg)
        wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu
        same = rows(url) == before
        print(f"{'restore_backup':<16}{wall:>8.2f}{cpu:>13.2f}  pg_restore --clean --single-transaction; "
              f"every row as backed up: {same}")
        print(f"load after: {os.getloadavg()[0]:.1f}")
        if not same:
            raise SystemExit("restored rows differ")


if __name__ == "__main__":
    main()
