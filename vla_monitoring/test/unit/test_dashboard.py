"""DashboardState: latest values and bounded series per robot, alerts firing and resolved, the fleet,
the JSON snapshot (whole and delta), and bad input refused with a clear error."""

import json
import math

import pytest

from vla_monitoring.config import ConfigError, build_config
from vla_monitoring.dashboard import (
    MAX_FLEET_ROBOTS,
    SERIES,
    DashboardConfig,
    DashboardState,
    InferenceSample,
    Series,
)
from vla_msgs import json_forms
from vla_msgs.json_forms import ProtocolError

R1 = "robot_1"


def sample(fps=10.0, p50=20.0, p99=35.0, mean=22.0, inferences=5, errors=0, task="go to the red cube"):
    return InferenceSample.checked(fps=fps, latency_ms_mean=mean, latency_ms_p50=p50, latency_ms_p99=p99,
                                   mode="edge", model_version="2.0.0", current_task=task,
                                   inference_count=inferences, action_count=inferences, error_count=errors)


def metrics(inferences, errors, t=0.0, **extra):
    return json_forms.METRICS.build(timestamp=t, inference_count=inferences, error_count=errors,
                                    action_count=inferences, uptime_seconds=t, performance_summary={"p50": 0.02},
                                    **extra)


def resources(cpu=30.0, mem=40.0, gpu=None, t=0.0):
    return json_forms.RESOURCES.build(timestamp=t, cpu_percent=cpu, memory_percent=mem, disk_percent=50.0,
                                      gpu_percent=gpu, gpu_memory_percent=gpu, nodes={})


def safety(status="OK", reason="", t=0.0):
    return json_forms.SAFETY_STATUS.build(timestamp=t, status=status, reason=reason,
                                          emergency_stop=status == "EMERGENCY_STOP")


def health(level="healthy", **components):
    comps = components or {"vision": True, "language": True}
    return json_forms.HEALTH.build(timestamp=0.0, components=comps, overall_status=all(comps.values()), level=level,
                                   details={k: {"healthy": v, "reason": "" if v else "down"} for k, v in comps.items()})


def alert(alert_type="high_cpu", level="WARNING", state=None, value=95.0, **extra):
    fields = {"state": state} if state else {}
    return json_forms.ALERTS.build(timestamp=0.0, level=level, type=alert_type, message=f"{alert_type} is up",
                                   value=value, **fields, **extra)


def robot_status(robot_id="robot_1", battery=80.0, status="busy", task="t-1"):
    return json_forms.ROBOT_STATUS.build(timestamp=0.0, robot_id=robot_id, status=status, position=[1.0, 2.0, 0.0],
                                         battery=battery, current_task_id=task, capabilities=["navigation"])


def make(**params) -> DashboardState:
    return DashboardState(build_config(DashboardConfig, params))


# ---- config ----
def test_config_defaults_and_robots():
    cfg = build_config(DashboardConfig, {})
    assert cfg.port == 8090 and cfg.robot_namespaces() == {"robot_1": ""}
    cfg = build_config(DashboardConfig, {"robots": ["robot_1", "/fleet/robot_2"]})
    assert cfg.robot_namespaces() == {"robot_1": "robot_1", "robot_2": "/fleet/robot_2"}


@pytest.mark.parametrize(("params", "names"), [
    ({"port": 0}, "~port"),
    ({"port": 70000}, "~port"),
    ({"update_period_s": 2.0}, "~update_period_s"),           # the page must update at least once a second
    ({"history_points": 5}, "~history_points"),
    ({"robots": ["robot 1"]}, "~robots"),
    ({"robots": ["a/robot_1", "b/robot_1"]}, "~robots"),       # one id twice
    ({"min_push_interval_s": 0.9, "update_period_s": 0.5}, "~min_push_interval_s"),
    ({"colour": "blue"}, "~colour"),
])
def test_config_refuses_with_the_parameter_named(params, names):
    with pytest.raises(ConfigError, match=names):
        build_config(DashboardConfig, params)


# ---- series ----
def test_series_is_bounded_in_points_and_in_time():
    s = Series(max_points=5, span_s=10.0)
    for i in range(20):
        s.add(i + 1, float(i), float(i))
    assert len(s) == 5 and s.since(0)[0] == [15.0, 15.0]
    s.add(21, 100.0, 1.0)  # everything else is older than 10 s before it
    assert s.since(0) == [[100.0, 1.0]]
    assert s.since(21) == []


def test_state_series_stay_bounded_over_a_long_run():
    state = make(history_points=50, history_s=30.0)
    for i in range(2000):
        t = i * 0.1
        state.inference_stats(R1, sample(fps=10.0 + i % 7), t)
        state.resources(R1, resources(cpu=float(i % 100)), t)
    snap = state.snapshot(200.0)
    for name in ("fps", "cpu_percent", "latency_ms_p99"):
        points = snap["robots"][R1]["series"][name]
        assert len(points) == 50
        assert points[0][0] >= 200.0 - 30.0


# ---- snapshot contents ----
def test_snapshot_holds_every_input_latest_and_in_series():
    state = make(robots=["robot_1", "robot_2"])
    state.inference_stats(R1, sample(fps=9.5, p50=21.0, p99=40.0), 10.0)
    state.metrics(R1, metrics(100, 0), 10.0)
    state.metrics(R1, metrics(200, 10), 11.0)  # 10 errors over 100 inferences
    state.resources(R1, resources(cpu=55.0, mem=61.0), 11.0)
    state.safety(R1, safety("LIMITED", "obstacle at 0.6 m"), 11.0)
    state.health(R1, health("degraded", vision=True, language=False), 11.0)
    state.robot_status(robot_status("robot_2", battery=42.0), 11.0)
    snap = state.snapshot(12.0)
    assert snap["full"] and snap["now"] == 12.0 and snap["seq"] > 0
    r1, r2 = snap["robots"]["robot_1"], snap["robots"]["robot_2"]
    assert r1["namespace"] == "robot_1"
    assert r1["inference"]["fps"] == 9.5 and r1["inference"]["latency_ms_p99"] == 40.0
    assert r1["inference"]["current_task"] == "go to the red cube" and r1["inference"]["age_s"] == 2.0
    assert r1["metrics"]["error_rate_percent"] == pytest.approx(10.0)
    assert r1["resources"]["cpu_percent"] == 55.0 and r1["resources"]["gpu_percent"] is None
    assert r1["safety"]["status"] == "LIMITED" and r1["safety"]["reason"] == "obstacle at 0.6 m"
    assert r1["health"]["level"] == "degraded" and r1["health"]["components"] == {"vision": True, "language": False}
    assert r1["series"]["fps"] == [[10.0, 9.5]] and r1["series"]["latency_ms_p50"] == [[10.0, 21.0]]
    assert r1["series"]["error_rate_percent"] == [[11.0, pytest.approx(10.0)]]  # the first metrics has no rate
    assert r1["series"]["cpu_percent"] == [[11.0, 55.0]] and r1["series"]["gpu_percent"] == [[11.0, None]]
    assert set(r1["series"]) == set(SERIES)
    assert r2["inference"] is None and r2["series"]["fps"] == []
    assert snap["fleet"]["robot_2"]["battery"] == 42.0 and snap["fleet"]["robot_2"]["current_task_id"] == "t-1"
    json.dumps(snap, allow_nan=False)  # the page's JSON never holds NaN


def test_delta_snapshot_sends_only_new_points_and_all_latest_values():
    state = make()
    state.resources(R1, resources(cpu=10.0), 1.0)
    first = state.snapshot(1.0)
    state.resources(R1, resources(cpu=20.0), 2.0)
    delta = state.snapshot(2.0, since=first["seq"])
    assert not delta["full"]
    assert delta["robots"][R1]["series"]["cpu_percent"] == [[2.0, 20.0]]
    assert delta["robots"][R1]["resources"]["cpu_percent"] == 20.0
    assert state.snapshot(2.0, since=delta["seq"])["robots"][R1]["series"]["cpu_percent"] == []
    assert state.snapshot(2.0, since=0)["robots"][R1]["series"]["cpu_percent"] == [[1.0, 10.0], [2.0, 20.0]]


def test_a_clock_that_goes_back_starts_the_charts_over():
    state = make()
    state.resources(R1, resources(cpu=10.0), 500.0)
    seen = state.snapshot(500.0)["seq"]
    state.resources(R1, resources(cpu=20.0), 3.0)  # the simulator restarted
    snap = state.snapshot(3.0, since=seen)
    assert snap["full"] and snap["robots"][R1]["series"]["cpu_percent"] == [[3.0, 20.0]]


def test_error_rate_between_metrics_and_after_a_restart():
    state = make()
    rates = []
    for t, (inf, err) in enumerate([(0, 0), (50, 0), (100, 5), (100, 5), (100, 7), (10, 1), (30, 1)]):
        state.metrics(R1, metrics(inf, err), float(t))
        rates.append(state.snapshot(float(t))["robots"][R1]["metrics"]["error_rate_percent"])
    # first: no rate; 5/50; idle: 0; errors without inferences: 100; counts went back: no rate; 0/20
    assert rates == [None, 0.0, 10.0, 0.0, 100.0, None, 0.0]


def test_monitoring_nodes_own_error_rate_is_taken_when_sent():
    state = make()
    state.metrics(R1, metrics(10, 0, error_rate=0.25), 1.0)  # over its window; the counts alone say nothing yet
    snap = state.snapshot(1.0)["robots"][R1]
    assert snap["metrics"]["error_rate_percent"] == 25.0 and snap["series"]["error_rate_percent"] == [[1.0, 25.0]]
    with pytest.raises(ProtocolError, match="error_rate"):
        state.metrics(R1, metrics(10, 0, error_rate=3.0), 2.0)


def test_unknown_latency_is_none_and_stale_values_are_marked():
    state = make(stale_after_s=2.0)
    state.inference_stats(R1, sample(p50=-1.0, p99=-1.0, mean=-1.0), 0.0)
    state.safety(R1, safety(), 0.0)
    snap = state.snapshot(1.0)["robots"][R1]
    assert snap["inference"]["latency_ms_p50"] is None and snap["series"]["latency_ms_p99"] == [[0.0, None]]
    assert not snap["safety"]["stale"]
    later = state.snapshot(5.0)["robots"][R1]
    assert later["safety"]["stale"] and later["attention"]["level"] == "error"


# ---- alerts ----
def test_alert_fires_is_listed_and_resolves():
    state = make(recent_alerts=3)
    state.alert(R1, alert("high_cpu"), 1.0)
    state.alert(R1, alert("estop", level="CRITICAL", alert_id="estop_latched"), 2.0)
    state.alert(R1, alert("high_cpu", value=97.0), 3.0)  # repeat while it holds: still one active
    active = state.snapshot(4.0)["robots"][R1]["alerts"]["active"]
    assert [a["key"] for a in active] == ["high_cpu", "estop_latched"] and active[0]["value"] == 97.0
    state.alert(R1, alert("high_cpu", state="resolved", value=50.0), 5.0)
    alerts = state.snapshot(6.0)["robots"][R1]["alerts"]
    assert [a["key"] for a in alerts["active"]] == ["estop_latched"]
    assert [(a["key"], a["state"]) for a in alerts["recent"]] == [
        ("high_cpu", "resolved"), ("high_cpu", "firing"), ("estop_latched", "firing")]  # newest first, 3 kept


# ---- attention ----
def test_attention_is_the_worst_of_safety_health_and_alerts():
    state = make()
    assert state.snapshot(0.0)["robots"][R1]["attention"]["level"] == "unknown"
    state.safety(R1, safety(), 1.0)
    state.health(R1, health(), 1.0)
    assert state.snapshot(1.0)["robots"][R1]["attention"] == {"level": "ok", "reasons": []}
    state.alert(R1, alert("high_latency", level="WARNING"), 1.0)
    assert state.snapshot(1.0)["robots"][R1]["attention"]["level"] == "warn"
    state.safety(R1, safety("EMERGENCY_STOP", "operator"), 1.0)
    att = state.snapshot(1.0)["robots"][R1]["attention"]
    assert att == {"level": "error", "reasons": ["safety EMERGENCY_STOP: operator"]}


# ---- the fleet ----
def test_fleet_keeps_each_robot_once_and_is_bounded():
    state = make()
    state.robot_status(robot_status("robot_1", battery=90.0), 1.0)
    state.robot_status(robot_status("robot_1", battery=89.0, status="available", task=None), 2.0)
    fleet = state.snapshot(2.0)["fleet"]
    assert list(fleet) == ["robot_1"] and fleet["robot_1"]["battery"] == 89.0
    assert fleet["robot_1"]["current_task_id"] is None and fleet["robot_1"]["status"] == "available"
    for i in range(MAX_FLEET_ROBOTS + 10):
        state.robot_status(robot_status(f"r{i}"), 3.0)
    assert len(state.snapshot(3.0)["fleet"]) == MAX_FLEET_ROBOTS


# ---- bad input ----
GARBAGE = ["", "not json", "[1, 2]", '{"timestamp": NaN}', '{"timestamp": 1}', "{" * 1000]


@pytest.mark.parametrize("method", ["metrics", "resources", "safety", "health", "alert"])
@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_json_is_refused_and_changes_nothing(method, text):
    state = make()
    before = state.snapshot(1.0)
    with pytest.raises(ProtocolError):
        getattr(state, method)(R1, text, 1.0)
    assert state.snapshot(1.0) == before


@pytest.mark.parametrize(("call", "why"), [
    (lambda s: s.safety(R1, safety().replace('"OK"', '"FINE"'), 0.0), "status"),
    (lambda s: s.health(R1, health().replace("true", '"yes"', 1), 0.0), "component"),
    (lambda s: s.alert(R1, alert(state="gone"), 0.0), "state"),
    (lambda s: s.alert(R1, alert().replace("WARNING", "LOUD"), 0.0), "level"),
    (lambda s: s.metrics(R1, metrics(-1, 0), 0.0), "negative"),
    (lambda s: s.metrics(R1, metrics(1, 0, error_rate="high"), 0.0), "error_rate"),
    (lambda s: s.robot_status(robot_status(battery=180.0), 0.0), "battery"),
    (lambda s: s.robot_status(robot_status(status="dancing"), 0.0), "status"),
    (lambda s: s.robot_status("garbage", 0.0), "not JSON"),
])
def test_bad_documents_are_refused_with_the_field_named(call, why):
    with pytest.raises(ProtocolError, match=why):
        call(make())


@pytest.mark.parametrize("kwargs", [{"fps": math.nan}, {"fps": -1.0}, {"fps": math.inf}, {"p99": math.inf},
                                    {"inferences": -3}])
def test_bad_inference_stats_are_refused(kwargs):
    with pytest.raises(ValueError):
        sample(**kwargs)


def test_inputs_for_an_unknown_robot_are_a_wiring_error():
    with pytest.raises(KeyError):
        make().resources("robot_9", resources(), 0.0)


def test_bad_input_counts_are_in_the_snapshot():
    state = make()
    state.bad.reject("/vla_metrics", "not JSON")
    state.bad.reject("/vla_metrics", "not JSON")
    assert state.snapshot(0.0)["bad_input"] == {"total": 2, "by_source": {"/vla_metrics": 2},
                                                "last_reason": {"/vla_metrics": "not JSON"}}


def test_every_accepted_input_notifies_and_a_refused_one_does_not():
    state = make()
    calls = []
    state.on_change = lambda: calls.append(1)
    state.resources(R1, resources(), 0.0)
    state.robot_status(robot_status(), 0.0)
    with pytest.raises(ProtocolError):
        state.resources(R1, "{}", 0.0)
    assert len(calls) == 2
