"""The Prometheus exporter: names and units by convention, robot_id on every series, gauges that follow their
inputs (resources as ratios, NaN without a GPU, alerts that fire and resolve), and /metrics served over HTTP."""

import math
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vla_monitoring.exporter import MAX_LABEL_VALUES, Exporter
from vla_monitoring.metrics import LATENCY_BUCKETS_S
from vla_msgs.states import SafetyState


def make(robot_id: str = "robot_7") -> Exporter:
    return Exporter(robot_id, LATENCY_BUCKETS_S, uptime_s=lambda: 12.5, action_age_s=lambda: 0.25,
                    action_gap_s=lambda: 2.5)


def samples(exporter: Exporter) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels without robot_id) -> value, checking every sample carries robot_id."""
    out = {}
    for family in exporter.registry.collect():
        for s in family.samples:
            assert s.labels.get("robot_id") == exporter.robot_id, f"{s.name} lacks robot_id"
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "robot_id"))
            out[(s.name, labels)] = s.value
    return out


def test_names_follow_prometheus_conventions():
    names = {name for name, _ in samples(make())}
    for name in names:
        assert name.startswith("vla_")
    assert {"vla_inferences_total", "vla_actions_total", "vla_errors_total", "vla_inference_latency_seconds_bucket",
            "vla_inference_latency_seconds_sum", "vla_inference_latency_seconds_count", "vla_cpu_usage_ratio",
            "vla_memory_usage_ratio", "vla_disk_usage_ratio", "vla_gpu_usage_ratio", "vla_gpu_memory_usage_ratio",
            "vla_safety_state", "vla_emergency_stop", "vla_healthy", "vla_uptime_seconds",
            "vla_last_action_age_seconds", "vla_action_gap_seconds", "vla_task_active", "vla_control_rate_hertz",
            "vla_log_entries_total"} <= names


def test_counts_and_latency_histogram_in_seconds():
    e = make()
    for ms in (2.0, 4.0, 30.0, 300.0):
        e.log_entry("inference", ms / 1000.0)
    e.log_entry("error", None)
    e.log_entry("log", None)
    e.actions.inc(3)
    s = samples(e)
    assert s[("vla_inferences_total", ())] == 4 and s[("vla_errors_total", ())] == 1
    assert s[("vla_actions_total", ())] == 3
    assert s[("vla_log_entries_total", (("type", "log"),))] == 1
    assert s[("vla_log_entries_total", (("type", "action"),))] == 0
    assert s[("vla_inference_latency_seconds_count", ())] == 4
    assert s[("vla_inference_latency_seconds_sum", ())] == pytest.approx(0.336)
    assert s[("vla_inference_latency_seconds_bucket", (("le", "0.005"),))] == 2
    assert s[("vla_inference_latency_seconds_bucket", (("le", "0.05"),))] == 3
    assert s[("vla_inference_latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert s[("vla_uptime_seconds", ())] == 12.5 and s[("vla_last_action_age_seconds", ())] == 0.25
    assert s[("vla_action_gap_seconds", ())] == 2.5


def test_resources_as_ratios_nan_without_gpu_and_nodes_that_come_and_go():
    e = make()
    assert math.isnan(samples(e)[("vla_cpu_usage_ratio", ())])  # before any report
    e.resources({"cpu_percent": 42.0, "memory_percent": 50.0, "disk_percent": None, "gpu_percent": None,
                 "gpu_memory_percent": None, "nodes": {"/a": {"cpu_percent": 150.0, "rss_mb": 2.0},
                                                       "/b": {"cpu_percent": 1.0, "rss_mb": 1.0}}})
    s = samples(e)
    assert s[("vla_cpu_usage_ratio", ())] == pytest.approx(0.42)
    assert math.isnan(s[("vla_gpu_usage_ratio", ())]) and math.isnan(s[("vla_disk_usage_ratio", ())])
    assert s[("vla_node_cpu_usage_ratio", (("node", "/a"),))] == pytest.approx(1.5)
    assert s[("vla_node_resident_memory_bytes", (("node", "/a"),))] == 2 * 1024 * 1024
    e.resources({"cpu_percent": 1.0, "memory_percent": 1.0, "nodes": {"/b": {"cpu_percent": 2.0, "rss_mb": 1.0}}})
    s = samples(e)
    assert ("vla_node_cpu_usage_ratio", (("node", "/a"),)) not in s
    assert s[("vla_node_cpu_usage_ratio", (("node", "/b"),))] == pytest.approx(0.02)


def test_safety_health_and_stats_gauges():
    e = make()
    e.safety(int(SafetyState.EMERGENCY_STOP), True)
    e.health(False, {"vision": True, "action": False})
    e.stats("go to the red cube", 9.8)
    s = samples(e)
    assert s[("vla_safety_state", ())] == 3 and s[("vla_emergency_stop", ())] == 1
    assert s[("vla_healthy", ())] == 0
    assert s[("vla_health_component_up", (("component", "action"),))] == 0
    assert s[("vla_health_component_up", (("component", "vision"),))] == 1
    assert s[("vla_task_active", ())] == 1 and s[("vla_control_rate_hertz", ())] == pytest.approx(9.8)
    e.health(True, {"vision": True})
    assert ("vla_health_component_up", (("component", "action"),)) not in samples(e)


def test_robot_state_is_one_hot_after_the_first_report():
    e = make()
    assert not [k for k in samples(e) if k[0] == "vla_robot_state"]
    assert math.isnan(samples(e)[("vla_robot_status_age_seconds", ())])
    e.robot_state("busy")
    e.robot_state("offline")
    s = {k[1][0][1]: v for k, v in samples(e).items() if k[0] == "vla_robot_state"}
    assert s == {"available": 0, "busy": 0, "charging": 0, "error": 0, "offline": 1}
    with pytest.raises(ValueError):
        e.robot_state("asleep")


def test_alerts_fire_and_resolve_by_rule():
    e = make()
    e.alert({"level": "WARNING", "type": "high_cpu", "message": "m", "value": 95.0, "timestamp": 1.0})
    e.alert({"level": "CRITICAL", "type": "emergency_stop", "alert_id": "estop", "state": "firing",
             "timestamp": 1.0, "message": "m", "value": 1.0})
    s = samples(e)
    assert s[("vla_alert_active", (("alert", "high_cpu"), ("level", "WARNING")))] == 1
    assert s[("vla_alert_active", (("alert", "estop"), ("level", "CRITICAL")))] == 1
    e.alert({"level": "CRITICAL", "type": "emergency_stop", "alert_id": "estop", "state": "resolved",
             "timestamp": 2.0, "message": "m", "value": 0.0})
    s = samples(e)
    assert ("vla_alert_active", (("alert", "estop"), ("level", "CRITICAL"))) not in s
    assert ("vla_alert_active", (("alert", "high_cpu"), ("level", "WARNING"))) in s
    with pytest.raises(ValueError):
        e.alert({"level": "INFO", "type": "x", "state": "maybe", "message": "", "value": None, "timestamp": 0.0})


def test_label_values_from_the_wire_are_capped():
    e = make()
    for i in range(MAX_LABEL_VALUES + 50):
        e.alert({"level": "INFO", "type": f"made_up_{i}", "message": "", "value": None, "timestamp": 0.0})
    active = [k for k in samples(e) if k[0] == "vla_alert_active"]
    assert len(active) == MAX_LABEL_VALUES


def test_metrics_served_over_http_on_a_free_port():
    e = make()
    e.log_entry("inference", 0.01)
    port = e.serve(0, "127.0.0.1")
    try:
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        inferences = families["vla_inferences"].samples[0]
        assert inferences.labels == {"robot_id": "robot_7"} and inferences.value == 1.0
        with pytest.raises(OSError):
            make().serve(port, "127.0.0.1")  # taken: the caller reports it, the node keeps running
    finally:
        e.close()
