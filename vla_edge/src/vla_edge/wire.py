"""JSON wire formats the inference node publishes (vla_performance, vla_logs): field names live here once."""

from __future__ import annotations

import json
import time

NODE_NAME = "inference_node"


def performance_json(snapshot: dict, image_queue_size: int, lidar_queue_size: int, task_queue_size: int,
                     mode: str, now_s: float | None = None) -> str:
    """The seed's vla_performance fields, plus fps and inference percentiles."""
    return json.dumps({
        "timestamp": time.time() if now_s is None else now_s,
        "image_queue_size": image_queue_size,
        "lidar_queue_size": lidar_queue_size,
        "task_queue_size": task_queue_size,
        "current_task": snapshot["current_task"],
        "last_action_time": snapshot["last_action_time"],
        "fps": round(snapshot["fps"], 3),
        "avg_inference_time_ms": round(snapshot["inference_ms_mean"], 3),
        "inference_ms_p50": round(snapshot["inference_ms_p50"], 3),
        "inference_ms_p99": round(snapshot["inference_ms_p99"], 3),
        "overhead_ms_p50": round(snapshot["overhead_ms_p50"], 3),
        "overhead_ms_p99": round(snapshot["overhead_ms_p99"], 3),
        "preprocess_ms_p50": round(snapshot["preprocess_ms_p50"], 3),
        "preprocess_ms_p99": round(snapshot["preprocess_ms_p99"], 3),
        "image_age_ms_p50": round(snapshot["image_age_ms_p50"], 3),
        "image_age_ms_p99": round(snapshot["image_age_ms_p99"], 3),
        "action_count": snapshot["action_count"],
        "stale_frames": snapshot["stale_frames"],
        "starved_steps": snapshot["starved_steps"],
        "mode": mode,
        "model_version": snapshot["model_version"],
    })


def log_json(entry_type: str, robot_id: str, message: str, now_s: float | None = None, **extra: object) -> str:
    """One vla_logs entry; entry_type is inference, action or error."""
    doc = {"timestamp": time.time() if now_s is None else now_s, "type": entry_type, "node": NODE_NAME,
           "robot_id": robot_id, "message": message}
    doc.update(extra)
    return json.dumps(doc)
