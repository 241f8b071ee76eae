"""Exactly-once submits on a real store (an SQLite file, and a real PostgreSQL server where its binaries are
installed): a submit carrying a `submit_key` the store holds is that task (same id, no second row), decided
by the database's unique index also when two stores or managers race; the scheduler's retry after a lost
answer, or after it was killed before recording the answer, is the same task."""

from __future__ import annotations

import json
import threading

import pytest

from vla_fleet.manager import FleetManager, FleetManagerConfig, TaskRejectedError, parse_submit_document
from vla_fleet.schedule_store import DONE, ScheduleStore
from vla_fleet.scheduler import Request, ScheduleError, Scheduler, SchedulerConfig, SubmitError, submit_key
from vla_fleet.store import CANCELLED, MAX_SUBMIT_KEY_BYTES, SUBMIT_KEY, open_store
from vla_monitoring.config import build_config

T0 = 1_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("postgres_url")


def manager(db_url: str, clock=None, manager_id: str = "m1") -> FleetManager:
    cfg = build_config(FleetManagerConfig, {"db_url": db_url, "manager_id": manager_id})
    return FleetManager(open_store(db_url), cfg, clock or Clock(), places={"dock": (5.0, 5.0)})


def keyed(key: str, **params) -> str:
    return json.dumps({SUBMIT_KEY: key, **params})


def rows(store, key: str | None = None) -> int:
    with store._tx(write=False) as cur:
        if key is None:
            return int(cur.query("SELECT COUNT(*) FROM tasks")[0][0])
        return int(cur.query("SELECT COUNT(*) FROM tasks WHERE submit_key = ?", (key,))[0][0])


# -- the store ----------------------------------------------------------------------------------------------

def test_same_key_twice_is_one_task_with_one_id(db_url):
    store = open_store(db_url)
    first, new = store.submit_once("go to the dock", 1, 1.0, parameters={SUBMIT_KEY: "k1"}, submit_key="k1")
    again, new_again = store.submit_once("go to the dock", 1, 2.0, parameters={SUBMIT_KEY: "k1"}, submit_key="k1")
    assert (new, new_again) == (True, False)
    assert again.id == first.id and again.submit_key == "k1" and again.created_time == 1.0
    assert rows(store) == 1 and [e for _, e, _, _ in store.history(first.id)] == ["submitted"]
    other, new_other = store.submit_once("go to the dock", 1, 3.0, submit_key="k2")
    assert new_other and other.id != first.id and rows(store) == 2


def test_submits_without_a_key_are_each_a_task(db_url):
    store = open_store(db_url)
    ids = {store.submit("go", 0, 1.0).id for _ in range(3)} | {store.submit_once("go", 0, 1.0)[0].id
                                                                 for _ in range(3)}
    assert len(ids) == 6 and rows(store) == 6
    assert all(t.submit_key == "" for t in store.list_tasks())


def test_a_key_names_its_task_in_any_state_and_after_history_pruning(db_url):
    store = open_store(db_url)
    task, _ = store.submit_once("go", 0, 1.0, submit_key="k")
    store.cancel(task.id, "cancelled by request", 2.0)
    assert store.prune_history(before=1e12, keep_rows=0) > 0 and store.history_count() == 0
    again, new = store.submit_once("go", 0, 3.0, submit_key="k")
    assert not new and again.id == task.id and again.state == CANCELLED and rows(store) == 1


def test_the_loser_of_a_race_waits_for_the_winners_commit_and_reads_its_row(db_url):
    """Another store's transaction has inserted the key and not committed yet: the unique index makes this
    store's insert wait for it (PostgreSQL: the index entry; SQLite: the writer lock), then do nothing and
    read the winner's row."""
    winner, loser = open_store(db_url), open_store(db_url)
    holding = threading.Event()
    result = {}

    def race():
        holding.wait(10)
        result["task"] = loser.submit_once("go", 0, 2.0, submit_key="k")

    thread = threading.Thread(target=race)
    thread.start()
    with winner._tx() as cur:
        cur.run("INSERT INTO tasks (id, description, priority, parameters_json, state, created_time, updated_time, "
                "submit_key) VALUES ('winner', 'go', 0, '{}', 'pending', 1.0, 1.0, 'k')")
        holding.set()
        thread.join(0.5)  # the loser is stuck on the uncommitted row (its insert can neither win nor lose yet)
        assert thread.is_alive()
    thread.join(20)
    task, new = result["task"]
    assert not new and task.id == "winner" and rows(winner) == 1


def test_threads_racing_on_one_key_store_one_task(db_url):
    stores = [open_store(db_url) for _ in range(6)]
    start = threading.Barrier(len(stores))
    results, errors = [], []

    def submit(store):
        try:
            start.wait(10)
            for i in range(20):
                results.append(store.submit_once("go", 0, 1.0, submit_key=f"k{i}"))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 6 * 20
    assert rows(stores[0]) == 20
    by_key: dict[str, set[str]] = {}
    for task, _ in results:
        by_key.setdefault(task.submit_key, set()).add(task.id)
    assert all(len(ids) == 1 for ids in by_key.values()) and len(by_key) == 20
    assert sum(new for _, new in results) == 20


def test_an_old_database_gets_the_column_and_the_index(db_url):
    store = open_store(db_url)
    old = store.submit("from before the key", 0, 1.0)
    with store._tx() as cur:
        cur.execute("DROP INDEX tasks_submit_key")
        cur.execute("ALTER TABLE tasks DROP COLUMN submit_key")
        cur.execute("ALTER TABLE tasks DROP COLUMN submit_digest")
    store.close()
    store = open_store(db_url)
    assert (store.get(old.id).submit_key, store.get(old.id).submit_digest) == ("", "")
    first, again = (store.submit_once("go", 0, t, submit_key="k")[0] for t in (2.0, 3.0))
    assert first.id == again.id
    assert rows(store) == 2


# -- the manager: submit_task and the JSON submit topic -----------------------------------------------------

def test_manager_answers_a_known_key_with_its_task(db_url):
    mgr = manager(db_url)
    task, new = mgr.submit_once("go to the dock", 2, "", keyed("abc"))
    again, new_again = mgr.submit_once("go to the dock", 2, "", keyed("abc"))
    assert new and not new_again and again.id == task.id and mgr.repeated_submits == 1
    assert mgr.submit("go to the dock", 2, "", keyed("abc")).id == task.id
    # the JSON submit topic goes through the same path
    doc = json.dumps({"description": "go to the dock", "priority": 2, "parameters": {SUBMIT_KEY: "abc"}})
    assert mgr.submit(*parse_submit_document(doc)).id == task.id
    assert rows(mgr.store) == 1
    # no key, or an empty one: an ordinary submit, a new task each time
    assert mgr.submit("go to the dock", 2).id != mgr.submit("go to the dock", 2, "", keyed("")).id
    assert rows(mgr.store) == 3


def test_a_retry_is_the_same_task_after_the_places_changed(db_url):
    """The stored parameters are normalised (a coordinated task's places resolved to locations): a retry is
    told from another request by what its client sent, and answered before its places are looked up."""
    mgr = manager(db_url)
    sequence = [[{"description": "go to the dock", "place": "dock"}, "wait"]]
    params = {"robots": 2, "action_sequence": sequence, SUBMIT_KEY: "pair-1"}
    task = mgr.submit("survey", 1, "", json.dumps(params))
    mgr.places["dock"] = (9.0, 9.0)      # the place moved (a simulator object pushed aside)
    assert mgr.submit("survey", 1, "", json.dumps(params)).id == task.id
    del mgr.places["dock"]               # and is gone: a new submit would be refused, the retry is not
    assert mgr.submit("survey", 1, "", json.dumps(params, indent=2, sort_keys=True)).id == task.id
    assert rows(mgr.store) == 1 and mgr.repeated_submits == 2


def test_a_restarted_manager_knows_the_keys_of_the_one_before(db_url):
    """The key is in the database, not in the manager: a manager restarted after storing a task (its answer
    lost with it) answers the retry with that task."""
    before = manager(db_url)
    task = before.submit("go to the dock", 1, "", keyed("slot-7"))
    before.store.close()
    after = manager(db_url, manager_id="m2")
    assert after.submit("go to the dock", 1, "", keyed("slot-7")).id == task.id and rows(after.store) == 1


@pytest.mark.parametrize("asked, says", [
    (("go to the red cube", 2, "", keyed("abc")), "description"),
    (("go to the dock", 3, "", keyed("abc")), "priority"),
    (("go to the dock", 2, "robot_1", keyed("abc")), "robot_id"),
    (("go to the dock", 2, "", keyed("abc", place="dock")), "parameters_json"),
])
def test_a_key_reused_for_another_request_is_refused(db_url, asked, says):
    mgr = manager(db_url)
    task = mgr.submit("go to the dock", 2, "", keyed("abc"))
    with pytest.raises(TaskRejectedError, match=f"already names task {task.id}, submitted with another {says}"):
        mgr.submit(*asked)
    assert rows(mgr.store) == 1


@pytest.mark.parametrize("params, says", [
    ({SUBMIT_KEY: 7}, "must be a string"),
    ({SUBMIT_KEY: "x" * (MAX_SUBMIT_KEY_BYTES + 1)}, "longer than"),
])
def test_a_bad_key_is_refused(tmp_path, params, says):
    mgr = manager(f"sqlite:///{tmp_path / 'fleet.db'}")
    with pytest.raises(TaskRejectedError, match=says):
        mgr.submit("go", 0, "", json.dumps(params))


def test_two_managers_racing_on_the_same_keys_store_each_once(db_url):
    managers = [manager(db_url, manager_id=f"m{i}") for i in range(2)]
    start = threading.Barrier(2)
    ids: list[list[str]] = [[], []]

    def submit(n):
        start.wait(10)
        for i in range(40):
            ids[n].append(managers[n].submit(f"task {i}", 1, "", keyed(f"slot-{i}")).id)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert ids[0] == ids[1] and len(set(ids[0])) == 40 and rows(managers[0].store) == 40


# -- the scheduler ------------------------------------------------------------------------------------------

class LossyLink:
    """The scheduler's submit function in front of a real manager: the manager stores the task, then the
    answer of the tries listed in `lose` is lost (the call times out), as the node sees it."""

    def __init__(self, mgr: FleetManager, lose: set[int]):
        self.mgr, self.lose, self.tries = mgr, lose, 0

    def __call__(self, schedule) -> str:
        self.tries += 1
        task = self.mgr.submit(schedule.description, schedule.priority, schedule.robot_id, schedule.parameters_json)
        if self.tries in self.lose:
            raise SubmitError("/fleet_manager/submit_task: timeout (the manager stored the task)")
        return task.id


def test_a_retry_after_a_lost_answer_is_the_same_task(db_url):
    sched = Scheduler(ScheduleStore(db_url), SchedulerConfig())
    link = LossyLink(manager(db_url), lose={1, 2})
    s, _ = sched.add(Request("go to the dock", 1, scheduled_time=T0), T0)
    t = T0
    for _ in range(3):
        sched.run_due(t, link)
        t = sched.store.get(s.id).ready
    assert link.tries == 3 and sched.failed_submits == 2
    tasks = link.mgr.store.list_tasks()
    assert len(tasks) == 1 and tasks[0].submit_key == submit_key(s)
    row = sched.store.get(s.id)
    assert row.state == DONE and row.runs == 1 and row.last_task_id == tasks[0].id


def test_each_slot_of_a_recurring_schedule_is_one_task(db_url):
    sched = Scheduler(ScheduleStore(db_url), SchedulerConfig())
    link = LossyLink(manager(db_url), lose={1, 3})
    s, _ = sched.add(Request("go to the dock", 1, scheduled_time=T0, parameters_json='{"interval_s": 10}'), T0)
    for t in (T0, T0 + 1, T0 + 10, T0 + 11):   # each slot: an answer lost, then the retry after 1 s
        sched.run_due(t, link)
    tasks = link.mgr.store.list_tasks()
    assert link.tries == 4 and len(tasks) == 2
    assert sorted(t.submit_key for t in tasks) == [f"{s.id}@{T0:.6f}", f"{s.id}@{T0 + 10:.6f}"]
    assert sched.store.get(s.id).runs == 2


def test_a_scheduler_killed_before_recording_the_answer_submits_the_slot_once(db_url):
    mgr = manager(db_url)

    class Killed(BaseException):
        """The node dies between the manager's answer and the schedule's update."""

    def submit_then_die(schedule):
        mgr.submit(schedule.description, schedule.priority, schedule.robot_id, schedule.parameters_json)
        raise Killed

    first = Scheduler(ScheduleStore(db_url), SchedulerConfig())
    s, _ = first.add(Request("go to the dock", 1, scheduled_time=T0), T0)
    with pytest.raises(Killed):
        first.run_due(T0, submit_then_die)
    restarted = Scheduler(ScheduleStore(db_url), SchedulerConfig())
    outcomes = restarted.run_due(T0 + 5, LossyLink(mgr, lose=set()))
    tasks = mgr.store.list_tasks()
    assert len(tasks) == 1 and outcomes[0].task_id == tasks[0].id
    assert restarted.store.get(s.id).state == DONE


def test_a_schedule_may_not_bring_its_own_key(tmp_path):
    sched = Scheduler(ScheduleStore(f"sqlite:///{tmp_path / 'fleet.db'}"), SchedulerConfig())
    with pytest.raises(ScheduleError, match="submit_key"):
        sched.add(Request("go", parameters_json=keyed("mine", interval_s=10)), T0)
