"""What the inference node reports about its loop: the fields of vla/inference_stats and vla_performance,
and the control loop's diagnostic verdict, all from one controller Snapshot.

Unknown values (nothing measured yet) are never reported as 0: JSON gets null, the typed message
(whose fields are all non-negative quantities) gets UNKNOWN = -1.
"""

from __future__ import annotations

import math

from vla_edge.controller import Snapshot

UNKNOWN = -1.0
# Below this fraction of ~control_rate the loop misses more than one step in five: worth a warning,
# while the jitter of a loaded machine (a step now and then) is not.
MIN_RATE_FRACTION = 0.8


def _known(value: float) -> float:
    return value if math.isfinite(value) else UNKNOWN


def _ms(value: float) -> float | None:
    return round(value, 3) if math.isfinite(value) else None


def stats_fields(snap: Snapshot, mode: str, dropped_frames: int, latency_ms: float = math.nan) -> dict:
    """The fields of vla_msgs/InferenceStats (header aside); dropped_frames counts every refused frame,
    latency_ms is the last action's image arrival to publication (NaN before the first)."""
    c = snap.counters
    return {
        "mode": mode, "model_version": snap.model_version, "current_task": snap.current_task,
        "window_s": snap.window_s, "fps": snap.fps, "inference_ms_mean": _known(snap.inference_ms_mean),
        "inference_ms_p50": _known(snap.inference_ms_p50), "inference_ms_p99": _known(snap.inference_ms_p99),
        "overhead_ms_p50": _known(snap.overhead_ms_p50), "overhead_ms_p99": _known(snap.overhead_ms_p99),
        "image_age_ms": _known(snap.image_age_ms), "latency_ms": _known(latency_ms),
        "inference_count": c.inference_count, "action_count": c.action_count, "error_count": c.error_count,
        "dropped_frames": dropped_frames, "stale_frames": c.stale_frames,
        "edge_action_count": c.edge_actions, "cloud_action_count": c.cloud_actions,
        "cloud_error_count": c.cloud_errors, "cloud_fallback_count": c.cloud_fallbacks,
    }


def performance_fields(snap: Snapshot, mode: str, dropped_frames: int) -> dict:
    """The fields of vla_performance (json_forms.PERFORMANCE): the seed's, then the loop's detail."""
    c = snap.counters
    return {
        "image_queue_size": snap.image_queue_size, "lidar_queue_size": snap.lidar_queue_size,
        "task_queue_size": snap.task_queue_size, "current_task": snap.current_task,
        "last_action_time": snap.last_action_time if math.isfinite(snap.last_action_time) else None,
        "fps": round(snap.fps, 3), "avg_inference_time_ms": _ms(snap.inference_ms_mean),
        "inference_ms_p50": _ms(snap.inference_ms_p50), "inference_ms_p99": _ms(snap.inference_ms_p99),
        "overhead_ms_p50": _ms(snap.overhead_ms_p50), "overhead_ms_p99": _ms(snap.overhead_ms_p99),
        "preprocess_ms_p50": _ms(snap.preprocess_ms_p50), "preprocess_ms_p99": _ms(snap.preprocess_ms_p99),
        "image_age_ms": _ms(snap.image_age_ms), "image_age_ms_p50": _ms(snap.image_age_ms_p50),
        "image_age_ms_p99": _ms(snap.image_age_ms_p99), "inference_count": c.inference_count,
        "action_count": c.action_count, "error_count": c.error_count, "dropped_frames": dropped_frames,
        "stale_frames": c.stale_frames, "starved_steps": c.starved_steps, "skipped_steps": c.skipped_steps,
        "mode": mode, "model_version": snap.model_version,
        "edge_actions": c.edge_actions, "cloud_actions": c.cloud_actions, "cloud_requests": c.cloud_requests,
        "cloud_errors": c.cloud_errors, "cloud_fallbacks": c.cloud_fallbacks,
        "cloud_overloaded": c.cloud_overloaded, "cloud_client_errors": c.cloud_client_errors,
    }


def loop_status(snap: Snapshot, control_rate: float) -> tuple[bool, str]:
    """(ok, summary) of the control loop: idle is fine; acting below MIN_RATE_FRACTION of the rate is not."""
    if not snap.current_task:
        return True, "idle (no task)"
    if snap.fps < MIN_RATE_FRACTION * control_rate:
        return False, f"{snap.fps:.1f} Hz, below {MIN_RATE_FRACTION:g} x {control_rate:g} Hz"
    return True, f"{snap.fps:.1f} Hz"
