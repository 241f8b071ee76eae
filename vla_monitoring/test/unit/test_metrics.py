"""MetricsCollector: counts per source, latency statistics in seconds over the window, rates, error rate,
and a vla_metrics document that json_forms.METRICS accepts."""

import json

import pytest

from vla_monitoring.config import ConfigError, build_config
from vla_monitoring.metrics import MAX_ERROR_TYPES, MetricsCollector, MonitoringConfig
from vla_msgs import json_forms


def entry(kind: str, **fields) -> dict:
    base = {"inference": {"input_size": 3, "output_action": [0.0] * 6, "inference_time_ms": 5.0,
                          "sequence_number": 1},
            "action": {"action": [0.0] * 6, "task": "go"},
            "error": {"error_type": "bad_frame", "error_message": "x", "context": None},
            "log": {"level": "INFO", "node": "/n", "message": "hi"}}[kind]
    text = json_forms.LOGS.build(timestamp=0.0, type=kind, **{**base, **fields})
    return json_forms.LOGS.parse(text)


def collector(**params) -> MetricsCollector:
    return MetricsCollector(build_config(MonitoringConfig, params), start_s=100.0)


def test_counts_come_each_from_its_own_source():
    c = collector()
    for i in range(7):
        c.note_log(100.0 + i * 0.1, entry("inference", inference_time_ms=float(i)))
    for _ in range(3):
        c.note_log(101.0, entry("action"))  # counted as an entry, not as an action: vla/action counts those
    for _ in range(4):
        c.note_action(101.0)
    c.note_log(101.0, entry("error"))
    c.note_log(101.0, entry("log"))
    m = c.metrics(102.0)
    assert (m["inference_count"], m["action_count"], m["error_count"]) == (7, 4, 1)
    assert m["log_entries"] == {"inference": 7, "action": 3, "error": 1, "log": 1}
    assert m["error_types"] == {"bad_frame": 1}
    assert m["uptime_seconds"] == pytest.approx(2.0)


def test_performance_summary_in_seconds_over_the_window():
    c = collector(window_s=10.0)
    c.note_log(100.0, entry("inference", inference_time_ms=900.0))  # leaves the window by t=111
    for i in range(1, 101):
        c.note_log(105.0, entry("inference", inference_time_ms=float(i)))
    p = c.metrics(111.0)["performance_summary"]
    assert p["samples"] == 100 and p["window_s"] == 10.0
    assert p["min_inference_time"] == 0.001 and p["max_inference_time"] == 0.1
    assert p["avg_inference_time"] == pytest.approx(0.0505)
    assert p["p50_inference_time"] == pytest.approx(0.0505)
    assert p["p95_inference_time"] == pytest.approx(0.09505)
    assert p["p99_inference_time"] == pytest.approx(0.09901)


def test_no_samples_is_null_and_the_document_fits_its_form():
    m = collector().metrics(100.0)
    assert m["performance_summary"]["avg_inference_time"] is None
    assert m["last_action_age_s"] is None and m["current_task"] is None and m["safety"] is None
    doc = json_forms.METRICS.parse(json_forms.METRICS.build(timestamp=1.0, **m))
    assert doc["performance_summary"]["p99_inference_time"] is None


def test_rates_and_error_rate_over_the_rate_window():
    c = collector(rate_window_s=5.0)
    t = 100.0
    for _ in range(100):  # 10 s of 20 Hz inference, 10 Hz actions, 2 Hz errors
        c.note_log(t, entry("inference"))
        c.note_log(t + 0.01, entry("inference"))
        c.note_action(t)
        if round((t - 100.0) * 10) % 5 == 0:
            c.note_log(t, entry("error"))
        t += 0.1
    m = c.metrics(t)
    assert m["inference_rate_hz"] == pytest.approx(20.0, rel=0.1)
    assert m["action_rate_hz"] == pytest.approx(10.0, rel=0.1)
    assert m["error_rate"] == pytest.approx(0.1, rel=0.15)
    assert c.metrics(t + 6.0)["error_rate"] == 0.0  # the window has passed


def test_errors_without_inference_are_a_full_error_rate():
    c = collector()
    c.note_log(100.0, entry("error"))
    assert c.error_rate(100.5) == 1.0


def test_last_action_age_task_and_safety():
    c = collector()
    assert c.last_action_age_s(103.0) == 3.0  # since start while no action came
    c.note_action(104.0)
    c.note_stats(104.0, "go to the red cube", 9.5, "edge", "2.0.0")
    c.note_safety(104.0, "LIMITED", "obstacle 0.4 m", False)
    m = c.metrics(104.5)
    assert m["last_action_age_s"] == 0.5 and c.last_action_age_s(104.5) == 0.5
    assert m["task_active"] and m["current_task"] == "go to the red cube" and m["control_rate_hz"] == 9.5
    assert m["safety"] == {"status": "LIMITED", "reason": "obstacle 0.4 m", "emergency_stop": False}
    assert c.action_gap_s(104.5) == 0.5
    c.note_stats(105.0, "", 0.0, "edge", "2.0.0")
    assert not c.metrics(105.0)["task_active"] and c.action_gap_s(105.0) == 0.0
    json.dumps(m, allow_nan=False)


def test_action_gap_counts_from_the_task_start_or_the_newest_action():
    c = collector()
    c.note_action(101.0)
    assert c.action_gap_s(150.0) == 0.0  # idle: no gap however long ago the last action was
    c.note_stats(200.0, "go to the red cube", 0.0, "edge", "v")
    assert c.action_gap_s(201.5) == 1.5  # since the task began, not since the old action
    c.note_stats(201.0, "go to the red cube", 0.0, "edge", "v")  # the same task again: no new start
    assert c.action_gap_s(202.5) == 2.5
    c.note_action(202.0)
    assert c.action_gap_s(202.5) == 0.5
    c.note_stats(203.0, "go to the blue ball", 0.0, "edge", "v")
    assert c.action_gap_s(204.0) == 1.0
    assert c.metrics(204.0)["action_gap_s"] == 1.0


def test_bad_values_are_refused():
    c = collector()
    with pytest.raises(ValueError):
        c.note_log(100.0, entry("inference", inference_time_ms=-1.0))
    with pytest.raises(ValueError):
        c.note_stats(100.0, "", float("nan"), "edge", "v")
    assert c.metrics(100.0)["inference_count"] == 0 and c.stats is None


def test_error_types_are_bounded():
    c = collector()
    for i in range(MAX_ERROR_TYPES + 30):
        c.note_log(100.0, entry("error", error_type=f"kind_{i}"))
    assert len(c.error_types) == MAX_ERROR_TYPES + 1 and c.error_types["other"] == 30


def test_config_checks_buckets_and_ranges():
    with pytest.raises(ConfigError, match="latency_buckets_s"):
        build_config(MonitoringConfig, {"latency_buckets_s": [0.1, 0.05]})
    with pytest.raises(ConfigError, match="~prometheus_port"):
        build_config(MonitoringConfig, {"prometheus_port": 70000})
    with pytest.raises(ConfigError, match="~log_max_bytes"):
        build_config(MonitoringConfig, {"log_max_bytes": 10})
    assert build_config(MonitoringConfig, {"prometheus_port": 0}).prometheus_port == 0
