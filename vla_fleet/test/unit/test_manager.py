"""FleetManager on a real SQLite store with a fake clock: filters, order, robot loss, retries, restart, bad input."""

from __future__ import annotations

import json

import pytest

from vla_fleet.manager import FleetManager, FleetManagerConfig, TaskRejectedError, task_document
from vla_fleet.store import ASSIGNED, FAILED, PENDING, RUNNING, SUCCEEDED, open_store
from vla_monitoring.config import ConfigError, build_config
from vla_msgs import json_forms


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'fleet.db'}"


@pytest.fixture
def clock():
    return Clock()


def make(db_url, clock, **params):
    cfg = build_config(FleetManagerConfig, {"db_url": db_url, "manager_id": "m1", **params})
    return FleetManager(open_store(db_url), cfg, clock, places={"dock": (5.0, 5.0)})


def status(mgr, rid, state="available", x=0.0, y=0.0, battery=90.0, caps=(), task="", **extra):
    doc = json_forms.ROBOT_STATUS.parse(json_forms.ROBOT_STATUS.build(
        timestamp=mgr.clock(), robot_id=rid, status=state, position=[x, y, 0.0], battery=battery,
        current_task_id=task or None, capabilities=list(caps), **extra))
    return mgr.on_robot_status(doc, mgr.clock())


def feedback(mgr, rid, task_id, state, reason=""):
    return mgr.on_feedback({"robot_id": rid, "task_id": task_id, "state": state, "reason": reason}, mgr.clock())


def test_queue_order_priority_then_submission(db_url, clock):
    mgr = make(db_url, clock)
    late_low = mgr.submit("a", 5)
    clock.t += 1
    high = mgr.submit("b", 1)
    clock.t += 1
    low2 = mgr.submit("c", 5)
    assert [t.id for t in mgr.list_tasks(PENDING)] == [high.id, late_low.id, low2.id]
    status(mgr, "r1")
    assert [t.id for t in mgr.tick(clock.t).assigned] == [high.id]


def test_only_available_capable_charged_robots(db_url, clock):
    mgr = make(db_url, clock)
    task = mgr.submit("pick", 0, parameters_json=json.dumps({"capabilities": ["gripper"], "place": "dock"}))
    assert task.location == (5.0, 5.0)
    status(mgr, "plain")
    status(mgr, "weak_arm", battery=10.0, caps=["gripper"])
    status(mgr, "busy_arm", state="busy", caps=["gripper"])
    status(mgr, "charging_arm", state="charging", caps=["gripper"])
    assert mgr.tick(clock.t).assigned == []  # waits for a capable robot
    clock.t += 1
    status(mgr, "arm", caps=["gripper", "camera"], x=9.0)
    [claimed] = mgr.tick(clock.t).assigned
    assert claimed.robot_id == "arm"
    # an assigned robot is never "available" for a second task, even before it says so
    mgr.submit("more", 0)
    status(mgr, "plain", battery=5.0)
    assert mgr.tick(clock.t).assigned == []


def test_success_exactly_once(db_url, clock):
    mgr = make(db_url, clock)
    t = mgr.submit("go", 0)
    status(mgr, "r1")
    mgr.tick(clock.t)
    assert feedback(mgr, "r1", t.id, "started") is None
    status(mgr, "r1", state="busy", task=t.id)
    assert mgr.store.get(t.id).state == RUNNING
    assert feedback(mgr, "r1", t.id, "succeeded") == SUCCEEDED
    assert feedback(mgr, "r1", t.id, "succeeded") is None  # late duplicate: no second run, no error
    status(mgr, "r1")
    assert mgr.tick(clock.t).assigned == []
    assert mgr.store.attempts(t.id) == [(1, "r1", "m1", SUCCEEDED, "")]


def test_silent_robot_goes_offline_and_its_task_back_at_its_priority(db_url, clock):
    mgr = make(db_url, clock, robot_timeout_s=5.0)
    t = mgr.submit("go", 3)
    status(mgr, "r1")
    mgr.tick(clock.t)
    feedback(mgr, "r1", t.id, "started")
    clock.t += 3
    status(mgr, "r2", x=1.0)  # r2 keeps reporting, r1 falls silent
    assert mgr.tick(clock.t).requeued == []
    clock.t += 3
    status(mgr, "r2", x=1.0)
    result = mgr.tick(clock.t)
    assert result.went_offline == ["r1"]
    assert [tid for tid, _ in result.requeued] == [t.id]
    assert [(x.id, x.robot_id, x.priority) for x in result.assigned] == [(t.id, "r2", 3)]
    # r1 comes back still running it: it is told to stop (the task is r2's now)
    assert status(mgr, "r1", state="busy", task=t.id) == [t.id]


def test_error_and_ack_timeout_take_the_task_back(db_url, clock):
    mgr = make(db_url, clock, ack_timeout_s=4.0)
    a = mgr.submit("a", 0)
    status(mgr, "r1")
    assert [x.id for x in mgr.tick(clock.t).assigned] == [a.id]
    clock.t += 1
    status(mgr, "r1")  # not taken up yet: the assignment is sent again
    assert [x.id for x in mgr.tick(clock.t).resend] == [a.id]
    clock.t += 4
    status(mgr, "r1")
    assert [tid for tid, _ in mgr.tick(clock.t).requeued] == [a.id]
    status(mgr, "r1", state="busy", task=a.id)
    mgr.store.assign_round(lambda p, b: [(p[0].id, "r1")], "m1", clock.t, 10)
    status(mgr, "r1", state="error", task=a.id)
    assert [tid for tid, _ in mgr.tick(clock.t).requeued] == [a.id]


def test_failed_task_retried_then_failed_with_reasons(db_url, clock):
    mgr = make(db_url, clock, max_retries=1)
    t = mgr.submit("go", 0)
    for n, expected in enumerate([PENDING, FAILED]):
        clock.t += 1
        status(mgr, "r1")
        [claimed] = mgr.tick(clock.t).assigned
        assert claimed.id == t.id
        assert feedback(mgr, "r1", t.id, "failed", f"blocked {n}") == expected
    assert mgr.store.get(t.id).reasons == ["r1: blocked 0", "r1: blocked 1"]


def test_restart_keeps_running_tasks_and_requeues_unheard_ones(db_url, clock):
    first = make(db_url, clock, robot_timeout_s=5.0)
    a, b = first.submit("a", 0), first.submit("b", 0)
    status(first, "r1")
    status(first, "r2", x=3.0)
    first.tick(clock.t)
    feedback(first, "r1", a.id, "started")
    # killed here; a new manager on the same file
    clock.t += 1
    second = make(db_url, clock, robot_timeout_s=5.0)
    # its first round comes late (under simulated time the clock stands until /clock arrives): the robots
    # still get robot_timeout_s from that round to be heard
    clock.t += 6
    assert second.tick(clock.t).requeued == []
    status(second, "r1", state="busy", task=a.id)
    clock.t += 6
    status(second, "r1", state="busy", task=a.id)
    result = second.tick(clock.t)
    assert [tid for tid, _ in result.requeued] == [b.id]  # r2 never heard again
    assert second.store.get(a.id).state == RUNNING
    assert feedback(second, "r1", a.id, "succeeded") == SUCCEEDED
    status(second, "r1")
    assert [(x.id, x.robot_id) for x in second.tick(clock.t).assigned] == [(b.id, "r1")]
    assert len(second.store.attempts(a.id)) == 1


def test_feedback_lost_while_the_manager_was_down(db_url, clock):
    """Killed with a task running; the robot finishes while no manager listens. The restarted manager
    learns it from the status (last_task_*), and takes feedback that comes before any status."""
    first = make(db_url, clock)
    a, b = first.submit("a", 0), first.submit("b", 0)
    status(first, "r1")
    status(first, "r2", x=5.0)
    first.tick(clock.t)
    feedback(first, "r1", a.id, "started")
    feedback(first, "r2", b.id, "started")
    clock.t += 30  # down longer than every timeout
    second = make(db_url, clock)
    assert feedback(second, "r2", b.id, "succeeded") == SUCCEEDED  # r2 not heard yet: the store decides
    status(second, "r1", last_task_id=a.id, last_task_state="succeeded")
    assert second.tick(clock.t).requeued == []
    assert second.store.get(a.id).state == SUCCEEDED
    assert [len(second.store.attempts(t.id)) for t in (a, b)] == [1, 1]
    # the same status again later changes nothing
    status(second, "r1", last_task_id=a.id, last_task_state="succeeded")
    assert second.tick(clock.t).assigned == []


def test_cancel_pending_and_active(db_url, clock):
    mgr = make(db_url, clock)
    a, b = mgr.submit("a", 0), mgr.submit("b", 0)
    status(mgr, "r1")
    mgr.tick(clock.t)
    was, msg = mgr.cancel(a.id)
    assert was.state == ASSIGNED and was.robot_id == "r1" and "cancelled" in msg
    assert mgr.cancel(b.id)[0].state == PENDING
    assert mgr.cancel("nope")[0] is None
    assert "already" in mgr.cancel(a.id)[1]
    assert feedback(mgr, "r1", a.id, "cancelled") is None  # the robot's acknowledgement
    assert status(mgr, "r1", state="busy", task=a.id) == [a.id]
    doc = task_document(was, "cancelled")
    json_forms.TASK_ASSIGNMENT.build(timestamp=1.0, robot_id="r1", task=doc, assignment_time=1.0)


@pytest.mark.parametrize("args, words", [
    (("", 0), "empty"),
    (("x" * 300, 0), "longer"),
    (("go", 5000), "priority 5000"),
    (("go", -1), "priority -1"),
    (("go", 0, "", "{not json"), "not JSON"),
    (("go", 0, "", "[1]"), "one JSON object"),
    (("go", 0, "", '{"location": [1, NaN]}'), "not JSON"),
    (("go", 0, "", '{"location": [1]}'), "location"),
    (("go", 0, "", '{"place": "moon"}'), "unknown place"),
    (("go", 0, "", '{"capabilities": "camera"}'), "capabilities"),
    (("go", 0, "", '{"robots": 0}'), "'robots' must be an integer"),
    (("go", 0, "", '{"robots": 2, "action_sequence": [["go"]]}'), "2 steps"),
])
def test_bad_submissions_rejected_with_the_field(db_url, clock, args, words):
    mgr = make(db_url, clock)
    with pytest.raises(TaskRejectedError, match=words):
        mgr.submit(*args)
    assert mgr.list_tasks() == []


def test_bad_robot_input(db_url, clock):
    mgr = make(db_url, clock, max_robots=2)
    with pytest.raises(ValueError, match="battery"):
        status(mgr, "r1", battery=400.0)
    with pytest.raises(ValueError, match="position"):
        mgr.on_robot_status({"robot_id": "r1", "status": "available", "position": [float("nan"), 0],
                             "battery": 50.0, "current_task_id": None, "capabilities": []}, clock.t)
    with pytest.raises(ValueError, match="unknown robot"):
        feedback(mgr, "ghost", "x", "succeeded")
    status(mgr, "r1")
    with pytest.raises(ValueError, match="not assigned"):
        feedback(mgr, "r1", "no-such-task", "started")
    with pytest.raises(ValueError, match="not active"):
        feedback(mgr, "r1", "no-such-task", "failed")
    status(mgr, "r2")
    with pytest.raises(ValueError, match="max_robots"):
        status(mgr, "r3")
    with pytest.raises(ValueError, match="state"):
        mgr.list_tasks("bogus")


def test_config_rules():
    with pytest.raises(ConfigError, match="min_priority"):
        build_config(FleetManagerConfig, {"min_priority": 10, "max_priority": 1})
    with pytest.raises(ConfigError, match="min_battery"):
        build_config(FleetManagerConfig, {"min_battery": 400.0})


def test_robot_in_error_at_start_up_is_assigned_the_round_it_turns_available(db_url, clock, caplog):
    """Robots report `error` until their health node is up: those rounds leave them out, quietly; the
    first round after one reports `available` gives it the waiting task."""
    mgr = make(db_url, clock)
    task = mgr.submit("go to the red cube", 1)
    caplog.set_level("INFO", logger="vla_fleet.manager")
    for _ in range(5):
        status(mgr, "r1", state="error", reason="health critical (communication)")
        assert mgr.tick(clock.t).assigned == []
        clock.t += 1.0
    assert [r for r in caplog.records if r.levelno >= 30] == []
    assert mgr.store.get(task.id).state == PENDING
    status(mgr, "r1")
    assert [(t.id, t.robot_id) for t in mgr.tick(clock.t).assigned] == [(task.id, "r1")]


def test_a_failed_task_is_retried_on_another_robot_while_one_is_in_service(db_url, clock):
    """r1 got stuck on the task: the retry waits for r2 (busy) rather than go back to r1 (free, nearest),
    and once every capable robot has failed it, any may try again."""
    mgr = make(db_url, clock, max_retries=3)
    other = mgr.submit("keep r2 busy", 0, robot_id="r2")
    t = mgr.submit("go", 1, parameters_json='{"location": [0.0, 0.0]}')
    status(mgr, "r2", x=9.0)
    assert [c.id for c in mgr.tick(clock.t).assigned] == [other.id]
    status(mgr, "r2", state="busy", x=9.0, task=other.id)
    status(mgr, "r1")
    assert [c.id for c in mgr.tick(clock.t).assigned] == [t.id]
    assert feedback(mgr, "r1", t.id, "failed", "not done within 60 s") == PENDING
    for _ in range(3):                                  # r1 free and nearest, r2 busy: the task waits
        clock.t += 1
        status(mgr, "r1")
        status(mgr, "r2", state="busy", x=9.0, task=other.id)
        assert mgr.tick(clock.t).assigned == []
    assert mgr.store.get(t.id).state == PENDING
    feedback(mgr, "r2", other.id, "succeeded")
    clock.t += 1
    status(mgr, "r1")
    status(mgr, "r2", x=9.0)
    [claimed] = mgr.tick(clock.t).assigned
    assert (claimed.id, claimed.robot_id) == (t.id, "r2")
    assert feedback(mgr, "r2", t.id, "failed", "boxed in") == PENDING
    clock.t += 1
    status(mgr, "r1")
    status(mgr, "r2", x=9.0)
    [claimed] = mgr.tick(clock.t).assigned              # both failed it: the nearest tries again
    assert (claimed.id, claimed.robot_id) == (t.id, "r1")


def test_a_robot_out_of_service_does_not_hold_a_retry(db_url, clock):
    """The only other robot reports error: the retry goes back to the robot it failed on."""
    mgr = make(db_url, clock, max_retries=2)
    t = mgr.submit("go", 1)
    status(mgr, "r2", state="error")
    status(mgr, "r1")
    [claimed] = mgr.tick(clock.t).assigned
    assert feedback(mgr, "r1", claimed.id, "failed", "stuck") == PENDING
    clock.t += 1
    status(mgr, "r2", state="error")
    status(mgr, "r1")
    [claimed] = mgr.tick(clock.t).assigned
    assert (claimed.id, claimed.robot_id) == (t.id, "r1")


def test_a_description_naming_one_known_place_takes_its_location(db_url, clock):
    mgr = make(db_url, clock)
    mgr.set_places({"red cube": (3.0, 0.0), "blue ball": (-3.0, 0.0), "ball": (0.0, 9.0)})
    assert mgr.submit("Go to the RED cube!", 1).location == (3.0, 0.0)
    assert mgr.submit("go to the blue ball", 1).location == (-3.0, 0.0)    # not also `ball`
    assert mgr.submit("go to the red cube, then the blue ball", 1).location is None
    assert mgr.submit("go to the redcube", 1).location is None
    assert mgr.submit("go to the cube", 1, parameters_json='{"location": [1.0, 2.0]}').location == (1.0, 2.0)
    # the nearest robot takes it
    status(mgr, "west", x=-3.0)
    status(mgr, "east", x=3.0)
    assigned = {c.description: c.robot_id for c in mgr.tick(clock.t).assigned}
    assert assigned["Go to the RED cube!"] == "east"
