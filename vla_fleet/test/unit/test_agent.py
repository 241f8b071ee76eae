"""RobotAgent: status, taking and ending tasks, charging, faults handing the task back, bad input."""

from __future__ import annotations

import json

import pytest

from vla_fleet.agent import IDLE_COMMAND, AgentConfig, AssignmentError, RobotAgent
from vla_monitoring.config import ConfigError, build_config
from vla_msgs.states import RobotState, TaskState
from vla_msgs.tasks import parse_task_command


def agent(**params) -> RobotAgent:
    a = RobotAgent(build_config(AgentConfig, params))
    a.note_position(0.0, 1.0, 2.0, 0.0)
    a.note_battery(0.0, 0.9)
    return a


def assign(task_id="t1", description="go to the red cube", robot_id="robot_1", **task) -> dict:
    return {"timestamp": 0.0, "robot_id": robot_id, "assignment_time": 0.0,
            "task": {"id": task_id, "description": description, **task}}


def sim_state(t: float, task: str | None, reached: bool, robot_id="robot_1") -> dict:
    return {"timestamp": t, "robots": {robot_id: {"x": 0.0, "y": 0.0, "task": task, "reached": reached}},
            "objects": []}


def test_no_status_until_odom_and_battery_heard():
    a = RobotAgent(AgentConfig())
    assert a.status(0.0) is None
    a.note_position(0.0, 0.0, 0.0, 0.0)
    assert a.status(0.0) is None
    a.note_battery(0.0, 0.5)
    s = a.status(0.0)
    assert (s.status, s.battery_percent, s.capabilities) == (RobotState.AVAILABLE, 50.0, ("camera", "lidar"))


def test_task_runs_to_sim_success_exactly_once():
    a = agent()
    out = a.note_assignment(1.0, assign())
    assert [f.state for f in out.feedback] == [TaskState.STARTED]
    command = parse_task_command(out.commands[0])
    assert (command.description, command.task_id, command.robot_id) == ("go to the red cube", "t1", "robot_1")
    assert a.status(1.0).status == RobotState.BUSY and a.status(1.0).current_task_id == "t1"
    # reached, but for another task text, or from a document older than the start: not ours
    a.note_sim_state(1.5, sim_state(1.5, "go to the blue ball", True))
    a.note_sim_state(1.5, sim_state(0.5, "go to the red cube", True))
    assert a.tick(1.5).feedback == []
    a.note_sim_state(2.0, sim_state(2.0, "go to the red cube", True))
    out = a.tick(2.0)
    assert [(f.task_id, f.state) for f in out.feedback] == [("t1", TaskState.SUCCEEDED)]
    assert out.commands == [IDLE_COMMAND]
    assert a.tick(3.0).feedback == []
    assert a.status(3.0).status == RobotState.AVAILABLE and a.status(3.0).current_task_id == ""
    assert a.status(3.0).last_task == out.feedback[0]  # for a manager that missed the feedback


def test_other_robots_assignment_and_repeats_are_ignored_a_second_task_is_refused():
    a = agent()
    assert a.note_assignment(1.0, assign(robot_id="robot_2")).feedback == []
    a.note_assignment(1.0, assign())
    assert a.note_assignment(1.2, assign()).feedback == []  # the same task re-sent
    out = a.note_assignment(1.3, assign(task_id="t2"))
    assert [(f.task_id, f.state) for f in out.feedback] == [("t2", TaskState.FAILED)]
    assert "busy with task t1" in out.feedback[0].reason


def test_cancel_of_the_running_task():
    a = agent()
    a.note_assignment(1.0, assign())
    out = a.note_assignment(2.0, assign(state="cancelled"))
    assert [(f.task_id, f.state) for f in out.feedback] == [("t1", TaskState.CANCELLED)]
    assert out.commands == [IDLE_COMMAND]


@pytest.mark.parametrize(("fault", "reason"), [
    (lambda a: a.note_estop(True), "emergency stop"),
    (lambda a: a.note_health({"overall_status": False, "level": "critical",
                              "components": {"vision": False, "action": True}}), "health critical (vision)"),
])
def test_fault_hands_the_task_back_and_reports_error(fault, reason):
    a = agent()
    a.note_assignment(1.0, assign())
    fault(a)
    out = a.tick(1.5)
    # handed back (`cancelled`: pending again, no retry spent), not failed
    assert [(f.task_id, f.state) for f in out.feedback] == [("t1", TaskState.CANCELLED)]
    assert reason in out.feedback[0].reason and out.commands == [IDLE_COMMAND]
    s = a.status(1.5)
    assert (s.status, s.reason, s.current_task_id) == (RobotState.ERROR, reason, "")
    assert (s.last_task.task_id, s.last_task.state) == ("t1", TaskState.CANCELLED)
    a.note_estop(False)
    a.note_health({"overall_status": True, "level": "healthy"})
    a.note_assignment(2.0, assign())  # the manager retries it here
    assert a.status(2.0).current_task_id == "t1" and a.status(2.0).last_task is None
    refused = a.note_assignment(2.0, assign(task_id="t2"))
    assert refused.feedback[0].state == TaskState.FAILED and refused.commands == []


def test_an_assignment_while_in_error_is_handed_back_not_failed():
    # the manager's view of a robot is up to a status period old: a robot that turned critical meanwhile
    # hands the task back (pending again, no retry spent) instead of failing it
    a = agent()
    a.note_health({"overall_status": False, "level": "critical", "components": {"safety_node": False}})
    out = a.note_assignment(1.0, assign())
    assert [(f.task_id, f.state) for f in out.feedback] == [("t1", TaskState.CANCELLED)]
    assert out.feedback[0].reason == "handed back: robot_1 in error: health critical (safety_node)"
    assert out.commands == [] and a.status(1.0).current_task_id == ""


def test_degraded_health_is_not_a_failure_and_recovery_clears_the_error():
    a = agent()
    a.note_health({"overall_status": False, "level": "degraded"})
    assert a.status(0.0).status == RobotState.AVAILABLE
    a.note_estop(True)
    assert a.status(0.0).status == RobotState.ERROR
    a.note_estop(False)
    assert a.status(0.0).status == RobotState.AVAILABLE


def test_stale_odom_is_an_error():
    a = agent(input_timeout_s=2.0)
    a.note_battery(3.0, 0.9)
    assert a.status(3.0).status == RobotState.ERROR and "no odom" in a.status(3.0).reason


def test_low_battery_charges_then_returns():
    a = agent(battery_low_percent=20.0, battery_resume_percent=80.0, dock_command="go to the dock")
    a.note_battery(1.0, 0.15)
    out = a.tick(1.0)
    assert out.commands == ["go to the dock"]
    assert a.status(1.0).status == RobotState.CHARGING
    refused = a.note_assignment(1.0, assign()).feedback[0]
    assert (refused.state, refused.reason) == (TaskState.CANCELLED, "handed back: robot_1 is charging (battery 15.0 %)")
    a.note_battery(2.0, 0.5)
    a.tick(2.0)
    assert a.status(2.0).status == RobotState.CHARGING
    a.note_battery(3.0, 0.8)
    assert a.tick(3.0).commands == [IDLE_COMMAND]
    assert a.status(3.0).status == RobotState.AVAILABLE


def test_a_running_task_is_finished_before_charging():
    a = agent(success_condition="topic")
    a.note_assignment(1.0, assign())
    a.note_battery(2.0, 0.1)
    assert a.tick(2.0).feedback == [] and a.status(2.0).status == RobotState.BUSY
    a.note_done_signal(2.5, True)
    out = a.tick(2.5)
    assert out.feedback[0].state == TaskState.SUCCEEDED and a.status(2.5).status == RobotState.CHARGING


def test_timeout_conditions():
    a = agent(success_condition="timeout", success_after_s=5.0)
    a.note_assignment(0.0, assign())
    assert a.tick(4.9).feedback == []
    assert a.tick(5.0).feedback[0].state == TaskState.SUCCEEDED
    b = agent(task_timeout_s=10.0, input_timeout_s=60.0)
    b.note_assignment(0.0, assign())
    out = b.tick(10.0)
    assert out.feedback[0].state == TaskState.FAILED and "within 10 s" in out.feedback[0].reason


@pytest.mark.parametrize("doc", [
    assign(task_id=""), assign(task_id=7), assign(description=None),
])
def test_malformed_assignments_raise(doc):
    with pytest.raises(AssignmentError):
        agent().note_assignment(0.0, doc)


@pytest.mark.parametrize(("description", "why"), [("standby", "idle word"), ("x" * 5000, "not a task command")])
def test_unrunnable_descriptions_are_refused(description, why):
    out = agent().note_assignment(0.0, assign(description=description))
    assert out.commands == [] and why in out.feedback[0].reason


@pytest.mark.parametrize("call", [
    lambda a: a.note_battery(0.0, 4.0), lambda a: a.note_battery(0.0, float("nan")),
    lambda a: a.note_position(0.0, float("nan"), 0.0, 0.0), lambda a: a.note_health({"overall_status": "no"}),
])
def test_absurd_inputs_raise_value_error(call):
    a = agent()
    with pytest.raises(ValueError):
        call(a)
    assert a.status(0.0).battery_percent == 90.0 and a.status(0.0).position == (1.0, 2.0, 0.0)


@pytest.mark.parametrize("params", [
    {"battery_low_percent": 50.0, "battery_resume_percent": 40.0}, {"success_condition": "magic"},
    {"dock_command": json.dumps({"description": 3})},
])
def test_bad_config_is_refused(params):
    with pytest.raises(ConfigError):
        build_config(AgentConfig, params)


def test_task_command_resent_until_the_policy_and_the_simulator_take_it():
    a = agent(command_resend_s=2.0, input_timeout_s=600.0)
    command = a.note_assignment(0.0, assign()).commands[0]
    assert a.tick(1.9).commands == []
    assert a.tick(2.0).commands == [command]
    a.note_policy_task("go to the red cube")
    assert a.tick(4.0).commands == [command]  # the simulator has not shown it yet
    a.note_sim_state(4.5, sim_state(4.5, "go to the red cube", False))
    assert a.tick(6.5).commands == [] and a.tick(20.0).commands == []


def test_task_command_not_resent_when_off_or_taken_up_off_sim():
    a = agent(command_resend_s=0.0, input_timeout_s=600.0)
    a.note_assignment(0.0, assign())
    assert a.tick(50.0).commands == []
    b = agent(success_condition="topic", input_timeout_s=600.0)
    b.note_assignment(0.0, assign())
    b.note_policy_task("  go to the   red cube ")
    assert b.tick(10.0).commands == []


def test_estop_hand_back_through_the_manager_spends_no_retry(tmp_path):
    """The agent's hand-back, fed to a real manager on a real store: the task is pending again with no
    failure counted, so an e-stop never uses up a task's retries (max_retries 0 here: one failure
    would have failed it for good)."""
    from vla_fleet.manager import FleetManager, FleetManagerConfig
    from vla_fleet.store import PENDING, open_store

    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    mgr = FleetManager(open_store(db), build_config(FleetManagerConfig, {"db_url": db, "max_retries": 0}),
                       clock=lambda: 1.0)
    task = mgr.submit("go to the red cube", 1)
    mgr.on_robot_status({"robot_id": "robot_1", "status": "available", "position": [1.0, 2.0, 0.0],
                         "battery": 90.0, "current_task_id": None, "capabilities": ["camera"]}, 1.0)
    (claimed,) = mgr.tick(1.0).assigned
    a = agent()
    for fb in a.note_assignment(1.0, assign(task_id=task.id, description=claimed.description)).feedback:
        mgr.on_feedback({"robot_id": "robot_1", "task_id": fb.task_id, "state": fb.state.value}, 1.0)
    a.note_estop(True)
    for fb in a.tick(1.5).feedback:
        mgr.on_feedback({"robot_id": "robot_1", "task_id": fb.task_id, "state": fb.state.value,
                         "reason": fb.reason}, 1.5)
    stored = mgr.store.get(task.id)
    assert (stored.state, stored.failures) == (PENDING, 0)
    assert "handed it back" in stored.reasons[-1] and "emergency stop" in stored.reasons[-1]


def test_start_up_faults_are_not_errors_and_a_fault_is_logged_once(caplog):
    """Until its health node is up the robot reports error (health critical): logged as start-up at INFO,
    once; later faults are ERRORs, once per kind however their wording changes (no odom for 5.1 s, 6.1 s)."""
    a = RobotAgent(build_config(AgentConfig, {"input_timeout_s": 2.0}))
    caplog.set_level("INFO", logger="vla_fleet.agent")
    a.note_position(0.0, 0.0, 0.0, 0.0)
    a.note_battery(0.0, 0.9)
    a.note_health({"overall_status": False, "level": "critical", "components": {"communication": False}})
    for t in range(5):
        a.note_position(float(t), 0.0, 0.0, 0.0)
        a.note_battery(float(t), 0.9)
        a.tick(float(t))
        assert a.status(float(t)).status == RobotState.ERROR
    assert [r.levelname for r in caplog.records] == ["INFO"] and "not ready yet" in caplog.text
    a.note_health({"overall_status": True, "level": "healthy"})
    a.tick(5.0)
    assert a.status(5.0).status == RobotState.AVAILABLE
    caplog.clear()
    a.note_battery(20.0, 0.9)
    for t in (8.0, 9.0, 10.0, 11.0):  # odom silent since 4 s: the wording changes every tick
        a.note_battery(t, 0.9)
        a.tick(t)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "no odom" in errors[0].getMessage()
