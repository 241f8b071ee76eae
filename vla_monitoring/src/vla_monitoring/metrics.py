"""monitoring_node's config and its metrics: counts, rates and inference-latency percentiles of one robot.

ROS-free, every time on one injected clock (the node passes ROS time). The node hands in parsed
vla_logs entries (inference, action, error, log), each vla/action, the inference node's newest
vla/inference_stats and the safety status; `metrics(now_s)` gives the fields of vla_metrics
(json_forms.METRICS). Latency statistics cover the last `window_s` in at most `max_samples` samples;
rates cover the last `rate_window_s`. Memory is bounded whatever the rate.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from vla_monitoring.config import ConfigError, param
from vla_monitoring.window import RateCounter, SampleWindow
from vla_msgs.states import LogType

# Histogram buckets of the inference latency [s]: 1 ms to 2.5 s.
LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
# Distinct error types counted by name; more are counted as "other" (the names come from the wire).
MAX_ERROR_TYPES = 50


@dataclass
class MonitoringConfig:
    """Every parameter of monitoring_node (config/monitoring.yaml mirrors it)."""

    robot_id: str = param("robot_1", nonempty=True, help="robot these metrics describe (label robot_id)")
    publish_rate: float = param(1.0, lo=0.1, hi=10.0, help="vla_metrics rate [Hz]")
    window_s: float = param(60.0, lo=1.0, hi=3600.0, help="window of the inference-latency statistics [s]")
    max_samples: int = param(10000, lo=10, hi=1_000_000,
                             help="most latency samples kept; at a higher rate the window is shorter [samples]")
    rate_window_s: float = param(10.0, lo=0.5, hi=600.0, help="window of the rates and the error rate [s]")
    log_dir: str = param("~/.ros/vla_logs", nonempty=True,
                         help="folder of the vla_logs archive <robot_id>.jsonl and its .jsonl.gz archives")
    log_max_bytes: int = param(50_000_000, lo=10_000, hi=10_000_000_000,
                               help="the active log file is archived before it grows past this [bytes]")
    log_rotate_interval_s: float = param(86400.0, lo=1.0, hi=31_536_000.0,
                                         help="the active log file is archived once it is this old [s]")
    log_max_age_days: float = param(30.0, lo=0.0001, hi=3650.0, help="archives older than this are deleted [days]")
    log_max_archives: int = param(500, lo=1, hi=100_000, help="most archives kept; the oldest go first")
    log_max_total_bytes: int = param(1_000_000_000, lo=10_000, hi=10_000_000_000_000,
                                     help="archives together stay below this, the oldest deleted first [bytes]")
    log_queue_size: int = param(10000, lo=10, hi=1_000_000,
                                help="entries waiting for the disk; beyond it entries are dropped and counted")
    prometheus_port: int = param(9470, lo=0, hi=65535,
                                 help="Prometheus /metrics port (fleet: 9470 + n); 0 = any free port, shown in "
                                      "/diagnostics")
    prometheus_address: str = param("0.0.0.0", nonempty=True, help="address the exporter listens on")
    latency_buckets_s: list[float] = param(LATENCY_BUCKETS_S, items=float, lo=1e-6, hi=3600.0, min_length=1,
                                           max_length=40, help="upper bounds of the latency histogram's buckets [s]")

    def check(self) -> None:
        b = self.latency_buckets_s
        if any(later <= earlier for earlier, later in itertools.pairwise(b)):
            raise ConfigError(f"~latency_buckets_s must be strictly increasing, got {b}")


def _rounded(value: float, digits: int = 6) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


class MetricsCollector:
    """Counts, rates and latency statistics of one robot's policy; not thread-safe (the node locks)."""

    def __init__(self, config: MonitoringConfig, start_s: float):
        self.config = config
        self.start_s = start_s
        self.inference_count = 0
        self.action_count = 0
        self.error_count = 0
        self.log_entries = {t.value: 0 for t in LogType}
        self.error_types: dict[str, int] = {}
        self.latency_s = SampleWindow(config.window_s, config.max_samples)
        self._inferences = RateCounter(config.rate_window_s)
        self._actions = RateCounter(config.rate_window_s)
        self._errors = RateCounter(config.rate_window_s)
        self.last_action_s: float | None = None
        self.task_started_s: float | None = None    # when the inference node's current task began
        self.stats: dict[str, Any] | None = None    # the inference node's newest vla/inference_stats
        self.safety: dict[str, Any] | None = None   # the newest safety status

    # ---------------------------------------------------------------- inputs
    def note_log(self, now_s: float, entry: dict) -> float | None:
        """One vla_logs entry, already parsed by json_forms.LOGS; the inference time in seconds for an
        inference entry, else None. Raises ValueError for a negative inference time."""
        kind = entry["type"]
        latency_s = None
        if kind == LogType.INFERENCE:
            ms = float(entry["inference_time_ms"])
            if ms < 0:
                raise ValueError(f"inference_time_ms must be >= 0, got {ms}")
            latency_s = ms / 1000.0
            self.latency_s.add(now_s, latency_s)
            self.inference_count += 1
            self._inferences.add(now_s)
        elif kind == LogType.ERROR:
            self.error_count += 1
            self._errors.add(now_s)
            name = entry["error_type"] if entry["error_type"] in self.error_types or len(
                self.error_types) < MAX_ERROR_TYPES else "other"
            self.error_types[name] = self.error_types.get(name, 0) + 1
        self.log_entries[kind] += 1
        return latency_s

    def note_action(self, now_s: float) -> None:
        """One vla/action: the policy acted."""
        self.action_count += 1
        self._actions.add(now_s)
        self.last_action_s = now_s

    def note_stats(self, now_s: float, current_task: str, fps: float, mode: str, model_version: str) -> None:
        if not math.isfinite(fps) or fps < 0:
            raise ValueError(f"fps must be finite and >= 0, got {fps}")
        if current_task and (self.stats is None or self.stats["current_task"] != current_task):
            self.task_started_s = now_s
        self.stats = {"current_task": current_task, "fps": fps, "mode": mode, "model_version": model_version,
                      "received_s": now_s}

    def note_safety(self, now_s: float, status: str, reason: str, emergency_stop: bool) -> None:
        self.safety = {"status": status, "reason": reason, "emergency_stop": bool(emergency_stop),
                       "received_s": now_s}

    # ---------------------------------------------------------------- outputs
    @property
    def task_active(self) -> bool:
        return bool(self.stats and self.stats["current_task"])

    def last_action_age_s(self, now_s: float) -> float:
        """Since the newest action, or since the collector started when none came yet."""
        return max(0.0, now_s - (self.last_action_s if self.last_action_s is not None else self.start_s))

    def action_gap_s(self, now_s: float) -> float:
        """While a task runs, the time without a vla/action (since the task began when none came since);
        0 while idle. alert_node's `activity.action_gap_s`, computed the same way."""
        if not self.task_active or self.task_started_s is None:
            return 0.0
        since = self.task_started_s if self.last_action_s is None else max(self.task_started_s, self.last_action_s)
        return max(0.0, now_s - since)

    def error_rate(self, now_s: float) -> float:
        """Errors per inference over the rate window, 0..1 (errors without any inference count as 1)."""
        errors, inferences = self._errors.rate(now_s), self._inferences.rate(now_s)
        if errors == 0:
            return 0.0
        return 1.0 if inferences == 0 else min(1.0, errors / inferences)

    def metrics(self, now_s: float) -> dict:
        """The fields of vla_metrics (timestamp aside)."""
        s = self.latency_s.summary(now_s)
        stats, safety = self.stats, self.safety
        return {
            "robot_id": self.config.robot_id,
            "inference_count": self.inference_count, "error_count": self.error_count,
            "action_count": self.action_count, "uptime_seconds": round(max(0.0, now_s - self.start_s), 3),
            "performance_summary": {
                "avg_inference_time": _rounded(s.mean), "min_inference_time": _rounded(s.min),
                "max_inference_time": _rounded(s.max), "p50_inference_time": _rounded(s.p50),
                "p95_inference_time": _rounded(s.p95), "p99_inference_time": _rounded(s.p99),
                "samples": s.count, "window_s": self.config.window_s, "span_s": round(s.span_s, 3),
            },
            "inference_rate_hz": round(self._inferences.rate(now_s), 3),
            "action_rate_hz": round(self._actions.rate(now_s), 3),
            "error_rate": round(self.error_rate(now_s), 4),
            "last_action_age_s": None if self.last_action_s is None else round(now_s - self.last_action_s, 3),
            "action_gap_s": round(self.action_gap_s(now_s), 3),
            "task_active": self.task_active,
            "current_task": stats["current_task"] if stats else None,
            "control_rate_hz": round(stats["fps"], 3) if stats else None,
            "mode": stats["mode"] if stats else None,
            "model_version": stats["model_version"] if stats else None,
            "safety": None if safety is None else {k: safety[k] for k in ("status", "reason", "emergency_stop")},
            "log_entries": dict(self.log_entries),
            "error_types": dict(self.error_types),
        }
