"""performance_review: latency percentiles, error rate and their trend per robot, from the history monitoring
keeps on disk (monitoring_node's vla_logs archive: `<robot_id>.jsonl` and its rotated `.jsonl.gz`).

`inference` entries give the latency (`inference_time_ms`), `error` entries the errors; both carry the
ROS time they were logged at, and the review covers `review_window_days` up to the injected `now_s`, cut
into `review_buckets` periods for the trend. Memory is bounded whatever the history's size: latencies are
kept as a fixed-size uniform sample (reservoir) per robot and per period.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import re
from pathlib import Path

import numpy as np

from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.maintenance.layout import TaskFailed, expand

DAY_S = 86400.0
_FILE = re.compile(r"^(?P<robot>[^.]+)\.(?:.*\.)?jsonl(?:\.gz)?$")


class _Reservoir:
    def __init__(self, cap: int, rng: random.Random):
        self.cap, self.rng, self.seen, self.values = cap, rng, 0, []

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.cap:
            self.values.append(value)
        else:
            j = self.rng.randrange(self.seen)
            if j < self.cap:
                self.values[j] = value


class _Robot:
    def __init__(self, cfg: MaintenanceConfig, rng: random.Random):
        per_bucket = max(10, cfg.review_max_samples // cfg.review_buckets)
        self.all = _Reservoir(cfg.review_max_samples, rng)
        self.buckets = [_Reservoir(per_bucket, rng) for _ in range(cfg.review_buckets)]
        self.errors = [0] * cfg.review_buckets
        self.error_types: dict[str, int] = {}


def _stats(values: list[float]) -> dict:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    a = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
            "mean_ms": round(float(a.mean()), 3), "max_ms": round(float(a.max()), 3)}


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _read(path: Path, robot: _Robot, start_s: float, bucket_s: float, n_buckets: int) -> tuple[int, int]:
    """Adds one file's entries in the window; (entries used, lines that were not entries)."""
    used = bad = 0
    with _open(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
                t = float(entry["timestamp"])
                kind = entry["type"]
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            if t < start_s:
                continue
            b = min(n_buckets - 1, max(0, int((t - start_s) / bucket_s)))
            if kind == "inference":
                try:
                    ms = float(entry["inference_time_ms"])
                except (KeyError, TypeError, ValueError):
                    bad += 1
                    continue
                robot.all.add(ms)
                robot.buckets[b].add(ms)
                used += 1
            elif kind == "error":
                robot.errors[b] += 1
                name = str(entry.get("error_type", "unknown"))[:64]
                if name in robot.error_types or len(robot.error_types) < 20:
                    robot.error_types[name] = robot.error_types.get(name, 0) + 1
                used += 1
    return used, bad


def _slope_per_day(xs_days: list[float], ys: list[float]) -> float | None:
    if len(xs_days) < 2:
        return None
    return round(float(np.polyfit(np.asarray(xs_days), np.asarray(ys), 1)[0]), 3)


def performance_review(cfg: MaintenanceConfig, now_s: float, wall_now_s: float) -> dict:
    """The review, also written as JSON into report_dir; `problems` lists what crossed the warning limits."""
    log_dir = expand(cfg.metrics_log_dir)
    if not log_dir.is_dir():
        raise TaskFailed(f"no metrics history: {log_dir} is not a folder (is monitoring_node running?)")
    window_s = cfg.review_window_days * DAY_S
    start_s, bucket_s = now_s - window_s, window_s / cfg.review_buckets
    rng = random.Random(0)  # a review of the same files gives the same numbers
    robots: dict[str, _Robot] = {}
    files = bad = 0
    unreadable: list[str] = []
    for path in sorted(log_dir.iterdir()):
        m = _FILE.match(path.name)
        if not m or not path.is_file():
            continue
        if path.stat().st_mtime < wall_now_s - window_s:  # last written before the window opened
            continue
        robot = robots.setdefault(m.group("robot"), _Robot(cfg, rng))
        try:
            _, b = _read(path, robot, start_s, bucket_s, cfg.review_buckets)
        except (OSError, EOFError, UnicodeDecodeError) as exc:  # a truncated archive: what it held before counts
            unreadable.append(f"{path.name}: {exc}")
            continue
        files += 1
        bad += b
    problems: list[str] = [f"unreadable history file {u}" for u in unreadable]
    out = {}
    for name, r in sorted(robots.items()):
        inferences, errors = r.all.seen, sum(r.errors)
        rate = errors / inferences if inferences else (1.0 if errors else 0.0)
        periods = []
        xs, p95s, rates = [], [], []
        for i, (bucket, err) in enumerate(zip(r.buckets, r.errors, strict=True)):
            stats = _stats(bucket.values)
            begin = start_s + i * bucket_s
            periods.append({"start": round(begin, 3), "inferences": bucket.seen, "errors": err,
                            "error_rate": round(err / bucket.seen, 5) if bucket.seen else None, **stats})
            if bucket.seen:
                xs.append((begin + bucket_s / 2 - start_s) / DAY_S)
                p95s.append(stats["p95_ms"])
                rates.append(err / bucket.seen)
        summary = {"inferences": inferences, "errors": errors, "error_rate": round(rate, 5), **_stats(r.all.values),
                   "error_types": r.error_types,
                   "trend": {"p95_ms_per_day": _slope_per_day(xs, p95s),
                             "error_rate_per_day": _slope_per_day(xs, rates),
                             "p95_change_percent": round(100.0 * (p95s[-1] - p95s[0]) / p95s[0], 1)
                             if len(p95s) >= 2 and p95s[0] else None},
                   "periods": periods}
        out[name] = summary
        if summary["p95_ms"] is not None and summary["p95_ms"] > cfg.latency_p95_warn_ms:
            problems.append(f"{name}: p95 latency {summary['p95_ms']:.1f} ms above {cfg.latency_p95_warn_ms:g} ms")
        if rate > cfg.error_rate_warn:
            problems.append(f"{name}: error rate {rate:.3f} above {cfg.error_rate_warn:g}")
    details = {"window": {"start": start_s, "end": now_s, "days": cfg.review_window_days},
               "files_read": files, "bad_lines": bad, "robots": out, "problems": problems}
    report_dir = expand(cfg.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(wall_now_s, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report = report_dir / f"performance-{stamp}.json"
    report.write_text(json.dumps(details, indent=1))
    details["report"] = str(report)
    return details
