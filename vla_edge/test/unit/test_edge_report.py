"""What the node reports from a controller Snapshot: unknown is null/-1, never 0; the loop's verdict."""

import json
import math
from dataclasses import replace

import pytest

from vla_edge.controller import Counters, Snapshot
from vla_edge.report import MIN_RATE_FRACTION, UNKNOWN, loop_status, performance_fields, stats_fields
from vla_msgs import json_forms

NAN = math.nan


def _snapshot(**kw) -> Snapshot:
    base = dict(window_s=5.0, fps=0.0, inference_ms_mean=NAN, inference_ms_p50=NAN, inference_ms_p99=NAN,
                overhead_ms_p50=NAN, overhead_ms_p99=NAN, preprocess_ms_p50=NAN, preprocess_ms_p99=NAN,
                image_age_ms_p50=NAN, image_age_ms_p99=NAN, image_age_ms=NAN, counters=Counters(), current_task="",
                model_name="m", model_version="1", last_action_time=NAN, image_queue_size=0, lidar_queue_size=0,
                task_queue_size=0)
    base.update(kw)
    return Snapshot(**base)


def test_nothing_measured_is_null_in_json_and_minus_one_in_the_message():
    fields = performance_fields(_snapshot(), "edge", dropped_frames=0)
    doc = json_forms.PERFORMANCE.parse(json_forms.PERFORMANCE.build(timestamp=5.0, **fields))
    assert doc["image_age_ms"] is None and doc["avg_inference_time_ms"] is None and doc["last_action_time"] is None
    assert doc["image_queue_size"] == 0 and doc["fps"] == 0.0
    stats = stats_fields(_snapshot(), "edge", dropped_frames=0)
    assert stats["image_age_ms"] == UNKNOWN and stats["inference_ms_p99"] == UNKNOWN
    assert stats["latency_ms"] == UNKNOWN


def test_measured_values_and_seed_fields():
    snap = _snapshot(fps=9.87654, inference_ms_mean=4.25, image_age_ms=31.5, current_task="go", last_action_time=12.5,
                     image_queue_size=1, task_queue_size=1, counters=Counters(action_count=3, starved_steps=2))
    text = json_forms.PERFORMANCE.build(timestamp=13.0, **performance_fields(snap, "edge", dropped_frames=4))
    doc = json.loads(text)
    assert doc["fps"] == 9.877 and doc["avg_inference_time_ms"] == 4.25 and doc["image_age_ms"] == 31.5
    assert (doc["image_queue_size"], doc["lidar_queue_size"], doc["task_queue_size"]) == (1, 0, 1)
    assert doc["current_task"] == "go" and doc["last_action_time"] == 12.5 and doc["dropped_frames"] == 4
    assert doc["starved_steps"] == 2 and doc["action_count"] == 3
    stats = stats_fields(snap, "edge", dropped_frames=4, latency_ms=42.5)
    assert stats["latency_ms"] == 42.5
    assert stats["image_age_ms"] == 31.5 and stats["dropped_frames"] == 4 and stats["action_count"] == 3


@pytest.mark.parametrize("task,fps,ok", [
    ("", 0.0, True),                                  # idle: nothing to publish
    ("go", 10.0, True),
    ("go", MIN_RATE_FRACTION * 10.0, True),
    ("go", MIN_RATE_FRACTION * 10.0 - 0.01, False),  # acting, but missing more than one step in five
    ("go", 0.0, False),                               # a task and no actions (no image, stale, starved)
])
def test_loop_status(task, fps, ok):
    verdict, text = loop_status(replace(_snapshot(), current_task=task, fps=fps), 10.0)
    assert verdict is ok and text
