import logging

import pytest
from vla_safety.config import HealthConfig
from vla_safety.health import CRITICAL, DEGRADED, HEALTHY, HealthMonitor


def alive_monitor(t=100.0, **cfg):
    mon = HealthMonitor(HealthConfig(**cfg).validate())
    for i in range(30):
        mon.note_frame(t - 2.0 + i * 0.07)
    mon.note_instruction(t - 5, "go to the red cube")
    mon.note_stats(t - 0.5, "v1")
    mon.note_action(t - 0.1)
    mon.set_probe("communication", True)
    for node in mon.config.expected_nodes:
        mon.set_probe(node, True)
    return mon


def by_name(report):
    return {c.name: c for c in report.components}


def test_all_alive_is_healthy():
    rep = alive_monitor().report(100.0)
    assert rep.overall_status == HEALTHY
    assert set(by_name(rep)) == {"vision", "language", "action", "communication", "safety_node"}


def test_nothing_seen_is_critical_with_reasons():
    rep = HealthMonitor(HealthConfig()).report(1.0)
    comps = by_name(rep)
    assert rep.overall_status == CRITICAL
    assert comps["vision"].reason == "no camera image received yet" and comps["vision"].age_s == -1.0
    assert "encoder not ready" in comps["language"].reason


def test_stale_action_is_degraded_but_idle_is_fine():
    mon = alive_monitor()
    rep = mon.report(102.0)
    assert by_name(rep)["action"].reason.startswith("no policy action for")
    mon.note_instruction(102.0, "standby")
    assert by_name(mon.report(102.0))["action"].healthy


def test_slow_camera_is_unhealthy():
    mon = HealthMonitor(HealthConfig())
    for i in range(5):
        mon.note_frame(100.0 + i * 0.5)
    comp = by_name(mon.report(102.1))["vision"]
    assert not comp.healthy and "below 5.0 Hz" in comp.reason


def test_changes_are_reported_once_and_logged(caplog):
    mon = alive_monitor()
    assert {c.name for c in mon.report(100.0).changes} == {"vision", "language", "action", "communication",
                                                           "safety_node"}
    assert mon.report(100.0).changes == []
    with caplog.at_level(logging.WARNING):
        mon.set_probe("communication", False, "master unreachable")
        rep = mon.report(100.0)
    assert [c.name for c in rep.changes] == ["communication"]
    assert "communication is now UNHEALTHY: master unreachable" in caplog.text
    assert rep.overall_status == CRITICAL


def test_expected_nodes_and_unknown_names(caplog):
    mon = alive_monitor()
    mon.config.expected_nodes.append("planner")
    mon = HealthMonitor(mon.config)  # a monitor built with both expected nodes, nothing probed yet
    assert by_name(mon.report(100.0))["planner"].reason == "not checked yet"
    mon = alive_monitor(expected_nodes=["safety_node", "planner"])
    assert mon.report(100.0).overall_status == HEALTHY
    with caplog.at_level(logging.WARNING):
        assert not mon.set_probe("warp_drive", False, "?")
    assert mon.unknown_updates == 1 and "unknown component 'warp_drive'" in caplog.text
    mon.set_probe("planner", False, "not answering")
    assert mon.report(100.0).overall_status == DEGRADED


@pytest.mark.parametrize("field,value", [("publish_rate", 0.0), ("cloud_health_url", "ftp://x"),
                                         ("expected_nodes", "safety_node"), ("camera_timeout", float("nan"))])
def test_invalid_config_is_rejected(field, value):
    from vla_safety.config import ConfigError
    with pytest.raises(ConfigError, match=field):
        HealthConfig(**{field: value}).validate()
