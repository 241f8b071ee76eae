"""HealthMonitor: each component's verdict follows its evidence; HealthConfig's ranges and rules."""

import logging

import pytest

from vla_monitoring.config import ConfigError, build_config, defaults
from vla_monitoring.health import CLOUD_PROBE, MASTER_PROBE, HealthConfig, HealthMonitor
from vla_msgs.states import HealthLevel
from vla_msgs.tasks import parse_task_command

TASK = "go to the red cube"


def alive_monitor(t=100.0, **cfg):
    """Everything alive at time t: camera at ~14 Hz, a task the policy acts on, every probe answered."""
    mon = HealthMonitor(build_config(HealthConfig, cfg))
    for i in range(30):
        mon.note_frame(t - 2.0 + i * 0.07)
    mon.note_task(t - 5, parse_task_command(TASK))
    mon.note_policy_task(t - 0.5, TASK)
    mon.note_action(t - 0.1, TASK)
    for name in mon.probe_names:
        mon.set_probe(name, True)
    return mon


def by_name(report):
    return {c.name: c for c in report.components}


def test_all_alive_is_healthy():
    rep = alive_monitor().report(100.0)
    assert rep.level is HealthLevel.HEALTHY and rep.healthy
    assert set(by_name(rep)) == {"vision", "language", "action", "communication", "safety_node"}
    assert all(c.reason == "" for c in rep.components)


def test_nothing_seen_is_critical_with_reasons():
    rep = HealthMonitor(HealthConfig()).report(1.0)
    comps = by_name(rep)
    assert rep.level is HealthLevel.CRITICAL and not rep.healthy
    assert comps["vision"].reason == "no camera image received yet" and comps["vision"].age_s == -1.0
    assert comps["communication"].reason == "not checked yet"
    assert comps["safety_node"].reason == "not checked yet"
    # No task yet is idle: nothing to take up, nothing to act on.
    assert comps["language"].healthy and comps["action"].healthy


def test_language_needs_the_policy_to_take_up_the_instruction():
    mon = alive_monitor()
    mon.note_task(100.0, parse_task_command("go to the blue ball"))
    assert by_name(mon.report(100.5))["language"].healthy  # within action_timeout of the instruction
    mon.note_action(100.6, TASK)  # the policy keeps driving the OLD instruction
    lang = by_name(mon.report(101.2))["language"]
    assert not lang.healthy and "has not taken up instruction 'go to the blue ball' in 1.2 s" in lang.reason
    assert by_name(mon.report(101.2))["action"].healthy  # actions do arrive: only language is wrong
    mon.note_action(101.3, "go to  the blue ball ")  # normalised like vla_msgs.tasks does
    lang = by_name(mon.report(101.5))["language"]
    assert lang.healthy and lang.age_s == pytest.approx(0.2)


def test_language_evidence_from_inference_stats_and_going_stale():
    mon = alive_monitor()
    mon.note_task(100.0, parse_task_command('{"description": "Go to the yellow cone", "id": 7}'))
    mon.note_policy_task(100.3, "Go to the yellow cone")
    assert by_name(mon.report(101.0))["language"].healthy
    lang = by_name(mon.report(101.5))["language"]
    assert not lang.healthy and "has not acted on instruction 'Go to the yellow cone' for 1.2 s" in lang.reason


def test_evidence_before_the_instruction_does_not_count():
    mon = alive_monitor()
    mon.note_policy_task(99.0, "go to the blue ball")  # before it was given
    mon.note_task(100.0, parse_task_command("go to the blue ball"))
    assert not by_name(mon.report(101.5))["language"].healthy


@pytest.mark.parametrize("idle_word", ["standby", "Stop.", "HALT!", " idle "])
def test_idle_words_make_language_and_action_healthy(idle_word):
    mon = alive_monitor()
    mon.note_task(100.0, parse_task_command(idle_word))
    rep = mon.report(130.0)  # long after the last action and the last policy evidence
    assert by_name(rep)["language"].healthy and by_name(rep)["action"].healthy


def test_stale_action_while_a_task_is_active():
    mon = alive_monitor()
    for i in range(20):
        mon.note_frame(100.1 + i * 0.07)  # the camera keeps going
    act = by_name(mon.report(101.5))["action"]
    assert not act.healthy and act.reason == "no policy action for 1.6 s"
    assert mon.report(101.5).level is HealthLevel.DEGRADED  # action is not critical by default


def test_no_action_for_a_new_task_counts_from_the_task():
    mon = HealthMonitor(HealthConfig())
    mon.note_task(10.0, parse_task_command(TASK))
    assert by_name(mon.report(10.9))["action"].healthy
    assert by_name(mon.report(11.1))["action"].reason == "no policy action received yet"


def test_slow_camera_is_unhealthy_once_a_window_was_watched():
    mon = HealthMonitor(HealthConfig())
    for i in range(5):
        mon.note_frame(100.0 + i * 0.5)
    assert by_name(mon.report(101.9))["vision"].healthy  # less than rate_window watched
    comp = by_name(mon.report(102.1))["vision"]
    assert not comp.healthy and "camera rate 2.0 Hz below 5.0 Hz" in comp.reason


def test_silent_camera_and_frame_memory_is_bounded():
    mon = HealthMonitor(HealthConfig())
    for i in range(10_000):
        mon.note_frame(i * 0.001)
    assert len(mon._frames) <= 2001  # only the rate window is kept
    comp = by_name(mon.report(12.0))["vision"]
    assert not comp.healthy and comp.reason == "camera silent for 2.0 s"


def test_communication_combines_master_and_cloud():
    mon = HealthMonitor(build_config(HealthConfig, {"cloud_health_url": "http://cloud:8080/health"}))
    assert mon.probe_names == [MASTER_PROBE, CLOUD_PROBE, "safety_node"]
    assert by_name(mon.report(100.0))["communication"].reason == "master: not checked yet; cloud: not checked yet"
    assert not mon.probed()  # health_node gives no verdict yet
    mon.set_probe(MASTER_PROBE, True)
    assert by_name(mon.report(100.0))["communication"].reason == "cloud: not checked yet"
    mon.set_probe("safety_node", False, "not registered with the master")
    assert not mon.probed()
    mon.set_probe(CLOUD_PROBE, False, "no answer in 1 s")  # a deadline passed is a first result too
    assert mon.probed()
    assert HealthMonitor(HealthConfig()).probe_names == [MASTER_PROBE, "safety_node"]  # no URL, no cloud probe
    mon.set_probe(CLOUD_PROBE, False, "no answer in 1 s")
    comm = by_name(mon.report(100.0))["communication"]
    assert not comm.healthy and comm.reason == "cloud: no answer in 1 s"
    mon.set_probe(CLOUD_PROBE, True, "ignored when healthy")
    assert by_name(mon.report(100.0))["communication"].reason == ""


def test_changes_are_reported_once_and_logged(caplog):
    mon = alive_monitor()
    assert {c.name for c in mon.report(100.0).changes} == {"vision", "language", "action", "communication",
                                                           "safety_node"}
    assert mon.report(100.0).changes == []
    with caplog.at_level(logging.WARNING):
        mon.set_probe(MASTER_PROBE, False, "master unreachable")
        rep = mon.report(100.0)
    assert [c.name for c in rep.changes] == ["communication"]
    assert "communication is now UNHEALTHY: master unreachable" in caplog.text
    assert rep.level is HealthLevel.CRITICAL


def test_expected_nodes_and_unknown_probe_names():
    mon = alive_monitor(expected_nodes=["safety_node", "/robot_1/planner"])
    assert mon.report(100.0).level is HealthLevel.HEALTHY
    with pytest.raises(ValueError, match="no probe named 'warp_drive'"):
        mon.set_probe("warp_drive", False, "?")
    mon.set_probe("/robot_1/planner", False, "not answering")
    assert mon.report(100.0).level is HealthLevel.DEGRADED
    mon = alive_monitor(expected_nodes=["planner"], critical_components=["vision", "planner"])
    mon.set_probe("planner", False, "not answering")
    assert mon.report(100.0).level is HealthLevel.CRITICAL


def test_defaults_are_valid():
    assert build_config(HealthConfig, {}) == HealthConfig()
    assert defaults(HealthConfig)["expected_nodes"] == ["safety_node"]


@pytest.mark.parametrize("field,value,says", [
    ("publish_rate", 0.0, r"~publish_rate must be in \[0.1, 50\]"),
    ("camera_timeout", float("nan"), "~camera_timeout"),
    ("cloud_health_url", "ftp://x", "~cloud_health_url must be empty or an http"),
    ("expected_nodes", "safety_node", "~expected_nodes must be a list"),
    ("expected_nodes", ["safety node"], "not ROS node names"),
    ("expected_nodes", [""], r"~expected_nodes\[0\] must not be empty"),
    ("critical_components", ["vision", "warp_drive"], "~critical_components has unknown entries"),
    ("robot_id", "", "~robot_id must not be empty"),
    ("node_ping_timeout", 30, r"in \[0.01, 10\]"),
    ("publish_rte", 1.0, "unknown parameter"),
])
def test_invalid_config_is_rejected(field, value, says):
    with pytest.raises(ConfigError, match=says):
        build_config(HealthConfig, {field: value})
