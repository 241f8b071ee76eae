"""AlertEngine: fires once, waits for_s, repeats once per cooldown, resolves, holds on hysteresis; unknown
values change nothing; subjects from `*` paths and fleet-wide inputs; the activity input; events fit vla_alerts."""

import json

import pytest

from vla_monitoring.alert_rules import ACTIVITY, build_rules, default_rules
from vla_monitoring.alerts import MAX_SUBJECTS, ActivityTracker, AlertConfig, AlertEngine
from vla_monitoring.config import ConfigError, build_config, defaults
from vla_msgs import json_forms
from vla_msgs.states import AlertLevel, AlertState

CPU = {"input": "vla_resources", "path": "cpu_percent", "op": ">", "threshold": 90, "severity": "WARNING",
       "for_s": 0.0, "cooldown_s": 60.0, "message": "CPU at {value:.0f} %"}


def engine(stale_after_s=5.0, fleet_wide=False, **rules):
    return AlertEngine(build_rules(rules), "robot_1", stale_after_s=stale_after_s, fleet_wide=fleet_wide)


def resources(cpu):
    return {"timestamp": 0.0, "cpu_percent": cpu, "memory_percent": 10.0, "disk_percent": None,
            "gpu_percent": None, "gpu_memory_percent": None, "nodes": {}}


def feed(eng, t, cpu):
    eng.update("vla_resources", resources(cpu), t)
    return eng.evaluate(t)


def states(events):
    return [(e.alert_id, e.state.value) for e in events]


def test_fires_once_when_the_condition_starts():
    eng = engine(high_cpu=CPU)
    assert feed(eng, 0.0, 50.0) == []
    first = feed(eng, 1.0, 95.0)
    assert states(first) == [("high_cpu", "firing")]
    e = first[0]
    assert (e.level, e.value, e.repeat, e.since, e.robot_id, e.message) == (
        AlertLevel.WARNING, 95.0, 0, 1.0, "robot_1", "CPU at 95 %")
    assert all(feed(eng, t, 96.0) == [] for t in (1.1, 2.0, 30.0, 60.9))
    assert [e.alert_id for e in eng.active()] == ["high_cpu"]


def test_repeats_at_most_once_per_cooldown_while_it_holds():
    eng = engine(high_cpu=CPU)
    feed(eng, 0.0, 95.0)
    times = [t / 2 for t in range(1, 400)]  # every 0.5 s for 200 s
    repeats = [(t, e.repeat) for t in times for e in feed(eng, t, 95.0)]
    assert repeats == [(60.0, 1), (120.0, 2), (180.0, 3)]


def test_no_repeats_with_cooldown_zero():
    eng = engine(high_cpu={**CPU, "cooldown_s": 0.0})
    assert len(feed(eng, 0.0, 95.0)) == 1
    assert all(feed(eng, t, 95.0) == [] for t in range(1, 500, 7))


def test_resolves_once_when_it_clears_and_can_fire_again():
    eng = engine(high_cpu=CPU)
    feed(eng, 0.0, 95.0)
    resolved = feed(eng, 12.5, 50.0)
    assert states(resolved) == [("high_cpu", "resolved")]
    assert resolved[0].message == "resolved after 12.5 s: CPU at 95 %"
    assert resolved[0].level is AlertLevel.WARNING and resolved[0].since == 0.0
    assert feed(eng, 13.0, 50.0) == [] and eng.active() == []
    assert states(feed(eng, 14.0, 99.0)) == [("high_cpu", "firing")]


def test_for_s_the_condition_must_hold_that_long():
    eng = engine(high_cpu={**CPU, "for_s": 5.0})
    assert feed(eng, 0.0, 95.0) == []
    assert feed(eng, 3.0, 95.0) == []
    assert feed(eng, 4.0, 50.0) == []   # broke off: the wait starts again
    assert feed(eng, 5.0, 95.0) == []
    assert feed(eng, 9.9, 95.0) == []
    fired = feed(eng, 10.0, 95.0)
    assert states(fired) == [("high_cpu", "firing")] and fired[0].since == 10.0


def test_hysteresis_keeps_firing_until_the_clear_threshold():
    eng = engine(high_cpu={**CPU, "clear_threshold": 85})
    assert states(feed(eng, 0.0, 91.0)) == [("high_cpu", "firing")]
    assert feed(eng, 1.0, 88.0) == []          # below the threshold, above the clear threshold: still firing
    assert feed(eng, 2.0, 85.5) == []
    assert states(feed(eng, 3.0, 85.0)) == [("high_cpu", "resolved")]
    assert feed(eng, 4.0, 89.0) == []          # not above 90: does not fire again
    assert states(feed(eng, 5.0, 90.5)) == [("high_cpu", "firing")]


def test_hysteresis_below_a_threshold():
    low_battery = {"input": "/robot_status", "path": "battery", "op": "<", "threshold": 20, "clear_threshold": 30}
    eng = engine(low_battery=low_battery)

    def status(t, battery):
        eng.update("/robot_status", {"robot_id": "robot_1", "status": "busy", "position": [0, 0, 0],
                                     "battery": battery, "current_task_id": None, "capabilities": []}, t)
        return states(eng.evaluate(t))

    assert status(0, 19.0) == [("low_battery:robot_1", "firing")]   # a fleet-wide input: the robot is the subject
    assert status(1, 25.0) == []
    assert status(2, 31.0) == [("low_battery:robot_1", "resolved")]


def test_unknown_values_change_nothing():
    eng = engine(stale_after_s=5.0, high_cpu=CPU)
    assert eng.evaluate(0.0) == []                     # nothing received yet
    feed(eng, 1.0, 95.0)
    assert eng.evaluate(100.0) == []                   # stale: not resolved, not repeated either
    assert [e.alert_id for e in eng.active()] == ["high_cpu"]
    eng.update("vla_resources", {"memory_percent": 5.0}, 101.0)   # the path is missing
    assert eng.evaluate(101.0) == []
    assert "no 'cpu_percent'" in eng.problems["high_cpu"]
    assert states(feed(eng, 102.0, 10.0)) == [("high_cpu", "resolved")]
    assert "high_cpu" not in eng.problems


def test_a_value_of_another_kind_is_a_problem_not_an_alert():
    eng = engine(high_cpu=CPU)
    eng.update("vla_resources", {**resources(0.0), "cpu_percent": "high"}, 0.0)
    assert eng.evaluate(0.0) == []
    assert "not comparable" in eng.problems["high_cpu"]


def test_ratio_over_zero_is_unknown():
    rate = {"input": "vla_metrics", "path": "error_count / inference_count", "op": ">", "threshold": 0.1}
    eng = engine(errors=rate)

    def metrics(t, errors, inferences):
        eng.update("vla_metrics", {"error_count": errors, "inference_count": inferences}, t)
        return states(eng.evaluate(t))

    assert metrics(0, 0, 0) == []
    assert metrics(1, 3, 10) == [("errors", "firing")]
    assert metrics(2, 3, 0) == []      # unknown: still firing
    assert metrics(3, 3, 100) == [("errors", "resolved")]


def test_wildcard_path_one_alert_per_subject():
    eng = AlertEngine(default_rules(), "robot_1")

    def health(t, **components):
        eng.update("vla_health", {"components": components, "overall_status": all(components.values()),
                                  "level": "healthy"}, t)
        return states(eng.evaluate(t))

    assert health(0, vision=True, action=True) == []
    assert health(1, vision=False, action=True) == [("health_component_down:vision", "firing")]
    assert health(2, vision=False, action=False) == [("health_component_down:action", "firing")]
    assert health(3, vision=True, action=False) == [("health_component_down:vision", "resolved")]
    (active,) = eng.active()
    assert (active.subject, active.message, active.level) == ("action", "health component action is down",
                                                              AlertLevel.ERROR)


def robot_status(robot_id, status):
    return {"robot_id": robot_id, "status": status, "position": [0.0, 0.0, 0.0], "battery": 80.0,
            "current_task_id": None, "capabilities": []}


def test_robot_status_own_robot_only_unless_fleet_wide():
    own = AlertEngine(default_rules(), "robot_1")
    fleet = AlertEngine(default_rules(), "robot_1", fleet_wide=True)
    for eng in (own, fleet):
        eng.update("/robot_status", robot_status("robot_1", "busy"), 0.0)
        eng.update("/robot_status", robot_status("robot_2", "offline"), 0.0)
    assert own.evaluate(0.5) == []
    (event,) = fleet.evaluate(0.5)
    assert (event.alert_id, event.robot_id, event.message) == ("robot_offline:robot_2", "robot_2",
                                                               "robot robot_2 is offline")


def test_silent_robot_by_the_age_of_its_status():
    eng = AlertEngine(default_rules(), "robot_1", stale_after_s=5.0)
    eng.update("/robot_status", robot_status("robot_1", "busy"), 0.0)
    assert eng.evaluate(9.0) == []
    (event,) = eng.evaluate(10.5)      # @age_s ignores staleness: its own job is the age
    assert (event.alert_id, event.state, event.value) == ("robot_silent:robot_1", AlertState.FIRING, 10.5)
    eng.update("/robot_status", robot_status("robot_1", "busy"), 11.0)
    assert states(eng.evaluate(11.0)) == [("robot_silent:robot_1", "resolved")]


def test_emergency_stop_is_critical_at_once():
    eng = AlertEngine(default_rules(), "robot_1")
    eng.update("vla_safety_status", {"status": "EMERGENCY_STOP", "reason": "button", "emergency_stop": True}, 3.0)
    (event,) = eng.evaluate(3.0)
    assert (event.alert_id, event.level, event.message) == ("emergency_stop", AlertLevel.CRITICAL,
                                                            "emergency stop latched")


def test_activity_no_action_while_a_task_runs():
    tracker = ActivityTracker()
    eng = AlertEngine(default_rules(), "robot_1")

    def tick(t):
        eng.update(ACTIVITY, tracker.doc(t), t)
        return states(eng.evaluate(t))

    assert tick(0.0) == [] and tracker.doc(50.0)["action_gap_s"] == 0.0   # idle: never an alert
    tracker.note_task(1.0, "go to the red cube")
    assert tick(2.9) == []
    assert tick(3.1) == [("no_action", "firing")]
    tracker.note_action(3.5)
    assert tick(3.6) == [("no_action", "resolved")]
    assert tick(5.4) == []
    assert tick(5.6) == [("no_action", "firing")]      # silent again for more than 2 s
    tracker.note_task(6.0, "")                          # the task ended
    assert tick(6.1) == [("no_action", "resolved")]
    tracker.note_task(7.0, "go to the blue ball")       # a new task counts from its start, not the old action
    assert tick(8.9) == [] and tick(9.1) == [("no_action", "firing")]


def test_events_fit_the_vla_alerts_form():
    eng = AlertEngine(default_rules(), "robot_1")
    eng.update("/robot_status", robot_status("robot_1", "offline"), 0.0)
    eng.update("vla_safety_status", {"status": "EMERGENCY_STOP", "reason": "", "emergency_stop": True}, 0.0)
    events = eng.evaluate(0.0)
    eng.update("vla_safety_status", {"status": "OK", "reason": "", "emergency_stop": False}, 1.0)
    events += eng.evaluate(1.0)
    assert len(events) == 3
    for event in events:
        doc = json_forms.ALERTS.parse(json_forms.ALERTS.build(timestamp=event.timestamp, **event.fields()))
        assert doc["state"] in ("firing", "resolved") and doc["robot_id"] == "robot_1"
    offline = next(e for e in events if e.type == "robot_offline")
    assert offline.fields()["value"] is None and "offline" in offline.message   # a string has no number
    with pytest.raises(json_forms.ProtocolError, match="state"):
        json_forms.ALERTS.parse(json.dumps({"timestamp": 1, "level": "INFO", "type": "t", "message": "m",
                                            "value": None, "state": "pending"}))


def test_alert_config_defaults_and_checks():
    assert build_config(AlertConfig, {}) == AlertConfig()
    assert defaults(AlertConfig)["rules_file"] == ""
    with pytest.raises(ConfigError, match="~webhook_url"):
        build_config(AlertConfig, {"webhook_url": "ftp://x"})
    with pytest.raises(ConfigError, match="~webhook_backoff_max_s"):
        build_config(AlertConfig, {"webhook_backoff_s": 5.0, "webhook_backoff_max_s": 1.0})
    with pytest.raises(ConfigError, match="~evaluate_rate"):
        build_config(AlertConfig, {"evaluate_rate": 0.0})


def test_bounded_subjects():
    fleet = AlertEngine(default_rules(), "robot_1", fleet_wide=True)
    for i in range(MAX_SUBJECTS + 50):
        fleet.update("/robot_status", robot_status(f"r{i}", "offline"), 0.0)
    offline = [e for e in fleet.evaluate(0.0) if e.type == "robot_offline"]
    assert len(offline) == MAX_SUBJECTS and offline[0].robot_id == "r50"   # the longest silent were let go

    eng = AlertEngine(default_rules(), "robot_1")
    eng.update("vla_health", {"components": {f"c{i}": False for i in range(MAX_SUBJECTS + 1)}}, 0.0)
    assert len(eng.evaluate(0.0)) == MAX_SUBJECTS
    assert "matches 257 values" in eng.problems["health_component_down"]
