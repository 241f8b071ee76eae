#!/usr/bin/env python3
"""Benchmarks the maintenance tasks on a fleet host's worth of files: wall time and peak memory of each.

No ROS: the tasks of `vla_fleet.maintenance` on files in a temporary directory, each task in a process of its
own so that its peak resident memory (ru_maxrss) is its own, against the same process's baseline after the
imports. The aim is memory flat in the size of what a task reads (streamed hashing, streamed tar, an online
database copy, a bounded latency sample), not speed.
- full_backup: a release of `--release-mb` MB of random bytes (incompressible: gzip's worst case), an SQLite
  database of about `--db-mb` MB, a config folder; restore_backup of it (every sha256 checked first);
- security_scan: the release's files hashed against its manifest;
- deep_maintenance: integrity_check and VACUUM of the database;
- performance_review: `--entries` vla_logs entries over 7 days for 3 robots (half gzip-archived).
Usage: python bench/bench_maintenance.py [--release-mb 100] [--db-mb 50] [--entries 300000]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY_S = 86400.0
NOW = 1_800_000_000.0


def make_site(root: Path, release_mb: int, db_mb: int, entries: int) -> None:
    ota = root / "ota" / "releases" / "3.0.0"
    (ota / "model").mkdir(parents=True)
    files = []
    for i in range(4):  # a policy in a few large files, written in 1 MB blocks (the bench itself stays small)
        path = ota / "model" / f"part{i}.bin"
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for _ in range(release_mb // 4):
                block = os.urandom(1 << 20)
                digest.update(block)
                f.write(block)
        files.append({"path": f"model/part{i}.bin", "sha256": digest.hexdigest(), "size": path.stat().st_size})
    (ota / "manifest.json").write_text(json.dumps({"format": 1, "version": "3.0.0", "files": files}))
    (root / "ota" / "current").symlink_to(Path("releases") / "3.0.0")
    (root / "config").mkdir()
    for name in ("safety.yaml", "inference.yaml", "fleet_manager.yaml"):
        (root / "config" / name).write_text("x: 1\n" * 50)
    conn = sqlite3.connect(root / "fleet.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, description TEXT, payload BLOB)")
    rows = db_mb * 1024
    conn.executemany("INSERT INTO tasks (description, payload) VALUES (?, ?)",
                     ((f"go to place {i}", os.urandom(900)) for i in range(rows)))
    conn.commit()
    conn.execute("DELETE FROM tasks WHERE id % 3 = 0")  # free pages for VACUUM to return
    conn.commit()
    conn.close()
    logs = root / "vla_logs"
    logs.mkdir()
    per_robot = entries // 3
    for r in (1, 2, 3):
        lines = (json.dumps({"timestamp": NOW - 7 * DAY_S + 7 * DAY_S * i / per_robot, "type": "inference",
                             "input_size": 1, "output_action": [0.0] * 6,
                             "inference_time_ms": 20.0 + (i % 97) + 5.0 * r, "sequence_number": i}) + "\n"
                 for i in range(per_robot))
        with gzip.open(logs / f"robot_{r}.20260101T000000.000000Z.jsonl.gz", "wt") as archive, \
                open(logs / f"robot_{r}.jsonl", "w") as active:
            for i, line in enumerate(lines):
                (archive if i < per_robot // 2 else active).write(line)


def config(root: Path):
    from vla_fleet.maintenance.config import MaintenanceConfig
    from vla_monitoring.config import build_config
    return build_config(MaintenanceConfig, {
        "db_urls": [f"sqlite:///{root / 'fleet.db'}"], "config_dir": str(root / "config"),
        "releases_dir": str(root / "ota"), "backup_dir": str(root / "backups"), "report_dir": str(root / "reports"),
        "metrics_log_dir": str(root / "vla_logs"), "scan_paths": [str(root / "config")], "cache_dirs": [],
        "backup_max_file_mb": 100_000.0})


def step(name: str, root: Path) -> None:
    """Runs one task in this (child) process and prints its time and memory as JSON."""
    from vla_fleet.maintenance import backup, deep, performance, security
    cfg = config(root)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if name == "full_backup":
        out = backup.full_backup(cfg, time.time())
        note = f"archive {out['size'] / 1e6:.1f} MB, {out['files']} files"
    elif name == "restore_backup":
        out = backup.restore_backup(cfg)
        note = f"{sum(out['restored'].values())} files"
    elif name == "security_scan":
        out = security.security_scan(cfg)
        note = f"{out['release']['files']} release files, {len(out['problems'])} problems"
    elif name == "deep_maintenance":
        out = deep.deep_maintenance(cfg, time.time())
        db = next(iter(out["databases"].values()))
        note = f"db {db['bytes_before'] / 1e6:.1f} -> {db['bytes_after'] / 1e6:.1f} MB, integrity {db['integrity']}"
    else:
        out = performance.performance_review(cfg, NOW, time.time())
        note = f"{sum(r['inferences'] for r in out['robots'].values())} inferences, 3 robots"
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"task": name, "seconds": seconds, "baseline_mb": base, "peak_mb": peak, "note": note}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--release-mb", type=int, default=100)
    ap.add_argument("--db-mb", type=int, default=50)
    ap.add_argument("--entries", type=int, default=300_000)
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        step(args.step, Path(args.root))
        return
    with tempfile.TemporaryDirectory(prefix="bench_maintenance_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        make_site(root, args.release_mb, args.db_mb, args.entries)
        print(f"site: release {args.release_mb} MB, database ~{args.db_mb} MB, {args.entries} log entries "
              f"(made in {time.perf_counter() - t0:.1f} s); {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        print(f"{'task':<20}{'wall s':>9}{'baseline MB':>13}{'peak MB':>9}{'peak - base':>13}  what")
        for name in ("full_backup", "restore_backup", "security_scan", "deep_maintenance", "performance_review"):
            res = subprocess.run([sys.executable, __file__, "--step", name, "--root", str(root)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{r['task']:<20}{r['seconds']:>9.2f}{r['baseline_mb']:>13.1f}{r['peak_mb']:>9.1f}"
                  f"{r['peak_mb'] - r['baseline_mb']:>13.1f}  {r['note']}")
        print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
