"""Coordinated tasks: the barrier rule, then FleetManager on a real store (SQLite, and PostgreSQL where
the server binaries are installed) with a fake clock: robots chosen together by cost, phases released
only when every robot finished, a lost robot replaced or the task failed with the reason, a restart
mid-sequence, cancel, bad submissions."""

from __future__ import annotations

import itertools
import json

import pytest

from vla_fleet.coordination import SLOT_DONE, SLOT_RUNNING, SLOT_VACANT, Slot, barrier, coordination_fields
from vla_fleet.manager import FleetManager, FleetManagerConfig, TaskRejectedError, task_document
from vla_fleet.store import ASSIGNED, CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, open_store
from vla_monitoring.config import build_config
from vla_msgs import json_forms

PLACES = {"red cube": (0.0, 0.0), "blue ball": (10.0, 0.0), "green cylinder": (0.0, 10.0),
          "yellow cone": (10.0, 10.0)}
TWO_PHASES = {"robots": 2, "action_sequence": [
    [{"description": "go to the red cube", "place": "red cube"},
     {"description": "go to the blue ball", "place": "blue ball"}],
    [{"description": "go to the green cylinder", "place": "green cylinder"},
     {"description": "go to the yellow cone", "place": "yellow cone"}]]}


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


# ---- the barrier rule --------------------------------------------------------------------------

@pytest.mark.parametrize("states", [s for s in itertools.product((SLOT_RUNNING, SLOT_DONE, SLOT_VACANT), repeat=3)
                                    if s != (SLOT_DONE,) * 3])
def test_barrier_waits_while_any_slot_is_not_done(states):
    slots = [Slot(i, f"r{i}" if st != SLOT_VACANT else "", 0, st) for i, st in enumerate(states)]
    assert barrier(slots, phases=3) == "wait"


def test_barrier_releases_only_on_one_phase_all_done_and_completes_after_the_last():
    done = [Slot(i, f"r{i}", 1, SLOT_DONE) for i in range(3)]
    assert barrier(done, phases=3) == "release"
    assert barrier(done, phases=2) == "complete"
    assert barrier([Slot(0, "r0", 0, SLOT_DONE), Slot(1, "r1", 1, SLOT_DONE)], phases=3) == "wait"
    assert barrier([], phases=1) == "wait"


# ---- the manager -------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def clock():
    return Clock()


def make(db_url, clock, **params):
    cfg = build_config(FleetManagerConfig, {"db_url": db_url, "manager_id": "m1", **params})
    return FleetManager(open_store(db_url), cfg, clock, places=PLACES)


def status(mgr, rid, x, y, state="available", task=""):
    mgr.on_robot_status(json_forms.ROBOT_STATUS.parse(json_forms.ROBOT_STATUS.build(
        timestamp=mgr.clock(), robot_id=rid, status=state, position=[x, y, 0.0], battery=90.0,
        current_task_id=task or None, capabilities=["camera"])), mgr.clock())


def feedback(mgr, rid, task_id, state, reason=""):
    return mgr.on_feedback({"robot_id": rid, "task_id": task_id, "state": state, "reason": reason}, mgr.clock())


ROBOTS = {"r1": (0.5, 0.0), "r2": (9.5, 0.0), "r3": (5.0, 30.0)}


def fleet(mgr, robots=ROBOTS, busy=()):
    """Every robot reports, at its position; `busy` maps robot -> current task."""
    for rid, (x, y) in robots.items():
        task = dict(busy).get(rid, "")
        status(mgr, rid, x, y, state="busy" if task else "available", task=task)


def steps_of(changes):
    return {s.robot_id: s for c in changes for s in c.assigned}


def run_step(mgr, step, outcome="succeeded"):
    feedback(mgr, step.robot_id, step.id, "started")
    feedback(mgr, step.robot_id, step.id, outcome)
    return mgr.take_changes()


def start(mgr, clock, params=TWO_PHASES):
    task = mgr.submit("survey the corners", 1, parameters_json=json.dumps(params))
    fleet(mgr)
    result = mgr.tick(clock.t)
    (change,) = result.groups
    return task, change


def test_robots_chosen_together_by_cost_and_phases_behind_the_barrier(db_url, clock):
    mgr = make(db_url, clock)
    task, change = start(mgr, clock)
    # r1 is beside the red cube and r2 beside the blue ball: the cheapest pair, each to its own place
    assert (change.event, change.phase, change.robots) == ("started", 0, ["r1", "r2"])
    steps = steps_of([change])
    assert {r: s.description for r, s in steps.items()} == {"r1": "go to the red cube", "r2": "go to the blue ball"}
    assert all(s.state == ASSIGNED and s.parent_id == task.id for s in steps.values())
    doc = task_document(steps["r1"])
    assert doc["coordination"] == {"task": task.id, "phase": 0, "phases": 2, "slot": 0}
    assert mgr.store.get(task.id).state == RUNNING
    # the /vla_coordination document has the form's fields, each robot's step per phase
    fields = coordination_fields(change)
    json_forms.COORDINATION.parse(json_forms.COORDINATION.build(timestamp=1.0, coordination_time=1.0, **fields))
    assert [s["robot_id"] for s in fields["action_sequence"][1]["steps"]] == ["r1", "r2"]

    # r1 finishes phase 0 first: no phase 1 yet, and r1 is held (a single task waiting is not given to it)
    assert run_step(mgr, steps["r1"]) == []
    single = mgr.submit("go to the red cube", 0)
    clock.t += 1
    fleet(mgr, busy={"r2": steps["r2"].id})
    result = mgr.tick(clock.t)
    assert result.groups == [] and [(t.id, t.robot_id) for t in result.assigned] == [(single.id, "r3")]
    # the last robot of phase 0 releases the barrier: phase 1 on the same robots
    (released,) = run_step(mgr, steps["r2"])
    assert (released.event, released.phase) == ("phase", 1)
    steps = steps_of([released])
    assert {r: s.description for r, s in steps.items()} == {"r1": "go to the green cylinder",
                                                            "r2": "go to the yellow cone"}
    assert run_step(mgr, steps["r2"]) == []
    (done,) = run_step(mgr, steps["r1"])
    assert done.event == "succeeded"
    assert mgr.store.get(task.id).state == SUCCEEDED
    assert mgr.store.groups() == []


def test_barrier_never_releases_early_in_any_order(db_url, clock):
    """Three robots, three phases, the steps of each phase finishing in every order: a phase's steps
    appear only after every step of the one before succeeded."""
    mgr = make(db_url, clock)
    three = {"robots": 3, "action_sequence": [[f"go to the {p}" for p in ("red cube", "blue ball", "yellow cone")]] * 3}
    task, change = start(mgr, clock, three)
    finished: list[tuple[int, str]] = []
    orders = itertools.cycle(itertools.permutations(range(3)))
    for phase in range(3):
        assert change.phase == phase
        steps = sorted((s for s in change.assigned), key=lambda s: s.robot_id)
        assert len(steps) == 3
        order = next(orders)
        for k, i in enumerate(order):
            changes = run_step(mgr, steps[i])
            finished.append((phase, steps[i].robot_id))
            if k < 2:
                assert changes == [], f"phase {phase} moved on after {k + 1} of 3 steps"
            else:
                (change,) = changes
    assert change.event == "succeeded" and mgr.store.get(task.id).state == SUCCEEDED


def test_lost_robot_pauses_and_is_replaced(db_url, clock):
    mgr = make(db_url, clock, robot_timeout_s=5.0)
    task, change = start(mgr, clock)
    steps = steps_of([change])
    run_step(mgr, steps["r1"])
    feedback(mgr, "r2", steps["r2"].id, "started")
    # r2 falls silent mid-step: its step ends, the group pauses, r3 (free) takes slot 1's phase 0 step
    clock.t += 6.0
    fleet(mgr, {"r1": ROBOTS["r1"], "r3": ROBOTS["r3"]})
    result = mgr.tick(clock.t)
    events = [(c.event, c.robots) for c in result.groups]
    assert events == [("paused", ["r1", ""]), ("resumed", ["r1", "r3"])]
    (replacement,) = result.groups[1].assigned
    assert (replacement.robot_id, replacement.description) == ("r3", "go to the blue ball")
    assert mgr.store.get(steps["r2"].id).state == CANCELLED
    # r2's late feedback for its lost step moves nothing
    assert feedback(mgr, "r2", steps["r2"].id, "succeeded") is None
    assert mgr.take_changes() == [] and mgr.store.get(steps["r2"].id).state == CANCELLED
    (released,) = run_step(mgr, replacement)
    assert (released.event, released.phase, released.robots) == ("phase", 1, ["r1", "r3"])
    for step in released.assigned:
        changes = run_step(mgr, step)
    assert changes[-1].event == "succeeded"
    parent = mgr.store.get(task.id)
    assert parent.state == SUCCEEDED and any("lost r2" in r for r in parent.reasons)


def test_robot_lost_at_the_barrier_is_replaced(db_url, clock):
    mgr = make(db_url, clock)
    _task, change = start(mgr, clock)
    steps = steps_of([change])
    run_step(mgr, steps["r1"])
    # r1 waits at the barrier and goes into error: its slot must be done again by another robot
    clock.t += 1
    status(mgr, "r1", *ROBOTS["r1"], state="error")
    status(mgr, "r2", *ROBOTS["r2"], state="busy", task=steps["r2"].id)
    status(mgr, "r3", *ROBOTS["r3"])
    result = mgr.tick(clock.t)
    assert [c.event for c in result.groups] == ["paused"]
    clock.t += 1
    status(mgr, "r3", *ROBOTS["r3"])
    result = mgr.tick(clock.t)
    (resumed,) = result.groups
    (step,) = resumed.assigned
    assert (resumed.event, step.robot_id, step.description) == ("resumed", "r3", "go to the red cube")
    assert run_step(mgr, steps["r2"]) == []  # the replacement has not done phase 0 yet
    (released,) = run_step(mgr, step)
    assert released.phase == 1 and released.robots == ["r3", "r2"]


def test_no_replacement_fails_cleanly_with_the_reason(db_url, clock):
    mgr = make(db_url, clock, replace_timeout_s=10.0)
    task, change = start(mgr, clock)
    steps = steps_of([change])
    feedback(mgr, "r1", steps["r1"].id, "started")
    # r2 hands its step back (e-stop): no free robot can take slot 1 (r3 busy elsewhere)
    fleet(mgr, busy={"r3": "other"})
    (paused,) = run_step(mgr, steps["r2"], "cancelled")
    assert paused.event == "paused"
    status(mgr, "r2", *ROBOTS["r2"], state="error")
    clock.t += 5.0
    fleet(mgr, {"r1": ROBOTS["r1"], "r3": ROBOTS["r3"]}, busy={"r1": steps["r1"].id, "r3": "other"})
    assert mgr.tick(clock.t).groups == []
    clock.t += 6.0
    fleet(mgr, {"r1": ROBOTS["r1"], "r3": ROBOTS["r3"]}, busy={"r1": steps["r1"].id, "r3": "other"})
    (failed,) = mgr.tick(clock.t).groups
    assert failed.event == "failed" and "no replacement" in failed.reason
    # r1's running step is stopped on r1, and r1 is free again
    assert [(s.id, s.robot_id) for s in failed.cancelled] == [(steps["r1"].id, "r1")]
    parent = mgr.store.get(task.id)
    assert parent.state == FAILED and any("no replacement" in r for r in parent.reasons)
    assert mgr.store.get(steps["r1"].id).state == CANCELLED
    assert mgr.store.groups() == []
    single = mgr.submit("go to the red cube", 1)
    fleet(mgr, {"r1": ROBOTS["r1"]})
    assert [t.id for t in mgr.tick(clock.t).assigned] == [single.id]


def test_failed_step_retried_on_its_robot_then_the_task_fails(db_url, clock):
    mgr = make(db_url, clock, max_retries=1)
    task, change = start(mgr, clock)
    steps = steps_of([change])
    (retry,) = run_step(mgr, steps["r1"], "failed")
    assert retry.event == "retry" and [s.robot_id for s in retry.assigned] == ["r1"]
    (failed,) = run_step(mgr, retry.assigned[0], "failed")
    assert failed.event == "failed"
    assert [s.robot_id for s in failed.cancelled] == ["r2"]
    assert mgr.store.get(task.id).state == FAILED


def test_restart_mid_sequence(db_url, clock):
    """The manager is dropped (as by kill -9) in phase 1 with one robot done; a new one on the same
    database goes on: the robots report their steps, the barrier releases once, the task succeeds once."""
    mgr = make(db_url, clock)
    task, change = start(mgr, clock)
    for step in change.assigned:
        changes = run_step(mgr, step)
    steps = steps_of(changes)
    run_step(mgr, steps["r1"])
    feedback(mgr, "r2", steps["r2"].id, "started")
    mgr.store.close()

    clock.t += 2.0
    mgr = make(db_url, clock)
    fleet(mgr, busy={"r2": steps["r2"].id})
    result = mgr.tick(clock.t)
    # r1 waits at the barrier (held, not given r3's work), r2's step still runs: nothing moves, none assigned
    assert result.groups == [] and result.assigned == []
    (done,) = run_step(mgr, steps["r2"])[-1:]
    assert done.event == "succeeded"
    assert mgr.store.get(task.id).state == SUCCEEDED
    assert [e for _t, e, _r, _d in mgr.store.history(task.id)].count("succeeded") == 1


def test_cancel_stops_every_step(db_url, clock):
    mgr = make(db_url, clock)
    task, change = start(mgr, clock)
    steps = steps_of([change])
    # cancelling one step's id cancels the coordinated task as a whole
    mgr.cancel(steps["r2"].id)
    (cancelled,) = mgr.take_changes()
    assert cancelled.event == "cancelled"
    assert sorted(s.robot_id for s in cancelled.cancelled) == ["r1", "r2"]
    assert mgr.store.get(task.id).state == CANCELLED
    pending = mgr.submit("together", 1, parameters_json='{"robots": 2}')
    assert mgr.cancel(pending.id)[0].state == PENDING and mgr.take_changes() == []


def test_waits_whole_until_k_robots_are_free(db_url, clock):
    mgr = make(db_url, clock)
    task = mgr.submit("together", 1, parameters_json='{"robots": 3}')
    fleet(mgr, busy={"r3": "other"})
    assert mgr.tick(clock.t).groups == [] and mgr.store.get(task.id).state == PENDING
    clock.t += 1
    fleet(mgr)
    (started,) = mgr.tick(clock.t).groups
    assert sorted(started.robots) == ["r1", "r2", "r3"]
    assert {s.description for s in started.assigned} == {"together"}


@pytest.mark.parametrize(("params", "robot_id", "words"), [
    ({"robots": 2, "action_sequence": [["go to the red cube"]]}, "", "2 steps"),
    ({"robots": 2, "action_sequence": []}, "", "non-empty"),
    ({"robots": 2, "action_sequence": [["go to the red cube", {"description": "x", "place": "moon"}]]}, "",
     "unknown place"),
    ({"robots": 2, "action_sequence": [["go to the red cube", ""]]}, "", "description"),
    ({"robots": 11}, "", "robots"),
    ({"robots": 2}, "r1", "picks its robots"),
    ({"action_sequence": [["go"]]}, "", "needs 'robots'"),
])
def test_bad_coordinated_submissions(tmp_path, clock, params, robot_id, words):
    mgr = make(f"sqlite:///{tmp_path / 'fleet.db'}", clock)
    with pytest.raises(TaskRejectedError, match=words):
        mgr.submit("together", 1, robot_id=robot_id, parameters_json=json.dumps(params))


def test_two_managers_hearing_the_last_two_steps_at_once_release_the_barrier_once(db_url, clock):
    """Two stores (two managers' connections) store the two last successes of a phase at the same
    moment, 20 times: the coordinated task's row lock makes exactly one of them release the barrier
    (without it, on PostgreSQL each sees only its own slot done and neither releases)."""
    import threading

    mgr = make(db_url, clock)
    other = open_store(db_url)
    for _ in range(20):
        task = mgr.submit("together", 1, parameters_json=json.dumps(
            {"robots": 2, "action_sequence": [["go to the red cube", "go to the blue ball"]] * 2}))
        change = mgr.store.start_group(task.id, ["r1", "r2"], "m1", clock.t)
        first, second = change.assigned
        for step in (first, second):
            assert mgr.store.mark_running(step.id, step.robot_id, clock.t)
        changes: list = []
        gate = threading.Barrier(2)

        def finish(store, step, gate, changes):
            gate.wait()
            store.finish(step.id, step.robot_id, SUCCEEDED, "", clock.t, changes=changes, manager_id="m")

        threads = [threading.Thread(target=finish, args=(s, step, gate, changes))
                   for s, step in ((mgr.store, first), (other, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [c.event for c in changes] == ["phase"], changes
        (released,) = changes
        assert sorted(s.robot_id for s in released.assigned) == ["r1", "r2"]
        mgr.cancel(task.id)
