"""The task store on SQLite: queue order, atomic claims, transitions, and a second process's view mid-run."""

from __future__ import annotations

import pytest

from vla_fleet.store import ASSIGNED, CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, StoreError, open_store


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'fleet.db'}"


def claim_all(store, robots, now=1.0, manager="m1"):
    """Assign the queue front to the robots in order."""
    def decide(pending, busy):
        free = [r for r in robots if r not in busy]
        return [(t.id, r) for t, r in zip(pending, free, strict=False)]
    return store.assign_round(decide, manager, now, limit=100)


def test_ids_unique_and_queue_by_priority_then_submission(db_url):
    store = open_store(db_url)
    a = store.submit("a", 5, 1.0)
    b = store.submit("b", 1, 1.0)
    c = store.submit("c", 5, 1.0)  # same time as a: submission order decides
    d = store.submit("d", 1, 0.5)
    ids = [t.id for t in store.list_tasks(PENDING)]
    assert ids == [d.id, b.id, a.id, c.id]
    assert len({store.submit("x", 0, 2.0).id for _ in range(200)}) == 200


def test_claim_is_one_active_task_per_robot_and_each_task_once(db_url):
    store = open_store(db_url)
    tasks = [store.submit(f"t{i}", 0, float(i)) for i in range(3)]
    claimed = claim_all(store, ["r1", "r2"])
    assert [(t.id, t.robot_id) for t in claimed] == [(tasks[0].id, "r1"), (tasks[1].id, "r2")]
    # both robots busy: nothing more to claim
    assert claim_all(store, ["r1", "r2"]) == []
    assert store.get(tasks[0].id).state == ASSIGNED
    with pytest.raises(StoreError):
        store.assign_round(lambda pending, busy: [(pending[0].id, "r1")], "m1", 2.0, 10)
    assert store.get(tasks[2].id).state == PENDING  # the refused round left nothing behind


def test_lifecycle_success_and_history(db_url):
    store = open_store(db_url)
    t = store.submit("go", 0, 1.0, parameters={"location": [1, 2]}, location=(1.0, 2.0), capabilities=["gripper"])
    claim_all(store, ["r1"])
    assert not store.mark_running(t.id, "r2", 2.0)  # not its robot
    assert store.mark_running(t.id, "r1", 2.0)
    assert store.get(t.id).state == RUNNING
    assert store.finish(t.id, "r1", SUCCEEDED, "", 3.0) == SUCCEEDED
    assert store.finish(t.id, "r1", SUCCEEDED, "", 3.0) is None  # a duplicate is not a second run
    done = store.get(t.id)
    assert (done.state, done.robot_id, done.location, done.capabilities) == (SUCCEEDED, "r1", (1.0, 2.0), ("gripper",))
    assert [e[1] for e in store.history(t.id)] == ["submitted", "assigned", "started", "succeeded"]
    assert store.attempts(t.id) == [(1, "r1", "m1", SUCCEEDED, "")]


def test_failures_retried_then_failed_with_reasons(db_url):
    store = open_store(db_url)
    t = store.submit("go", 0, 1.0)
    for n in range(3):
        claim_all(store, ["r1"], now=float(n))
        state = store.finish(t.id, "r1", FAILED, f"blocked {n}", float(n) + 0.5, max_retries=2)
        assert state == (PENDING if n < 2 else FAILED)
    final = store.get(t.id)
    assert final.failures == 3 and final.attempts == 3
    assert final.reasons == ["r1: blocked 0", "r1: blocked 1", "r1: blocked 2"]


def test_requeue_and_hand_back_do_not_count_as_failures(db_url):
    store = open_store(db_url)
    t = store.submit("go", 3, 1.0)
    claim_all(store, ["r1"])
    assert store.requeue(t.id, "robot silent", 2.0)
    assert not store.requeue(t.id, "again", 2.0)
    claim_all(store, ["r2"])
    assert store.finish(t.id, "r2", CANCELLED, "e-stop", 3.0) == PENDING
    task = store.get(t.id)
    assert (task.state, task.priority, task.failures, task.attempts, task.robot_id) == (PENDING, 3, 0, 2, "")


def test_cancel(db_url):
    store = open_store(db_url)
    a, b = store.submit("a", 0, 1.0), store.submit("b", 0, 1.0)
    claim_all(store, ["r1"])
    assert store.cancel(a.id, "operator", 2.0).state == ASSIGNED
    assert store.cancel(b.id, "operator", 2.0).state == PENDING
    assert store.get(a.id).state == CANCELLED and store.get(b.id).state == CANCELLED
    assert store.cancel("nope", "operator", 2.0) is None
    assert store.finish(a.id, "r1", SUCCEEDED, "", 3.0) is None  # a cancelled task does not come back
    assert claim_all(store, ["r1"]) == []


def test_crash_restart_second_store_on_the_same_file(db_url):
    """A second store (another process after a restart) sees every committed transition and none half-done."""
    first = open_store(db_url)
    tasks = [first.submit(f"t{i}", 0, float(i)) for i in range(4)]
    claim_all(first, ["r1", "r2"])
    first.mark_running(tasks[0].id, "r1", 2.0)

    def decide_then_die(pending, busy):
        # a round that fails after its first claim rolls back whole
        return [(pending[0].id, "r3"), ("die", "r4")]

    with pytest.raises(StoreError):
        first.assign_round(decide_then_die, "m1", 3.0, 10)
    second = open_store(db_url)
    states = {t.id: t.state for t in second.list_tasks()}
    assert states == {tasks[0].id: RUNNING, tasks[1].id: ASSIGNED, tasks[2].id: PENDING, tasks[3].id: PENDING}
    # the restarted manager goes on where the first stopped: nothing lost, nothing run twice
    assert second.finish(tasks[0].id, "r1", SUCCEEDED, "", 4.0) == SUCCEEDED
    assert [t.id for t in claim_all(second, ["r1", "r2", "r3"], now=5.0)] == [tasks[2].id, tasks[3].id]
    first.close()
    second.close()


def test_bad_url():
    with pytest.raises(StoreError):
        open_store("mysql://x")


KILLED_MID_ROUND = """
import sys, time
from vla_fleet.store import open_store
store = open_store(sys.argv[1])
def decide(pending, busy):
    print("deciding", flush=True)
    time.sleep(60)
    return [(pending[0].id, "r9")]
store.assign_round(decide, "doomed", 9.0, 10)
"""


def test_kill_9_inside_a_round_loses_nothing(db_url):
    import signal
    import subprocess
    import sys

    store = open_store(db_url)
    task = store.submit("t", 0, 1.0)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_ROUND, db_url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "deciding"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    restarted = open_store(db_url)
    assert restarted.get(task.id).state == PENDING
    assert restarted.attempts(task.id) == []
    assert [t.id for t in claim_all(restarted, ["r1"])] == [task.id]


KILLED_BEFORE_COMMIT = """
import sys, time
from vla_fleet import store as s
real = s._Cursor.run_many
def run_many(self, sql, rows):
    real(self, sql, rows)
    if sql.startswith("INSERT INTO history"):  # the round's last statement: written, not committed
        print("written", flush=True)
        time.sleep(60)
s._Cursor.run_many = run_many
st = s.open_store(sys.argv[1])
st.assign_round(lambda pending, busy: [(pending[0].id, "r9")], "doomed", 9.0, 10)
"""


def test_second_store_mid_transition_and_kill_9_before_commit(db_url):
    """Another process's store reads the file while a round has written its claims but not committed
    them: it sees the task pending; killed there, the round is gone whole."""
    import signal
    import subprocess
    import sys

    store = open_store(db_url)
    task = store.submit("t", 0, 1.0)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BEFORE_COMMIT, db_url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        assert store.get(task.id).state == PENDING  # the uncommitted claim is invisible
        assert store.attempts(task.id) == []
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    restarted = open_store(db_url)
    assert restarted.get(task.id).state == PENDING
    assert restarted.attempts(task.id) == [] and [e[1] for e in restarted.history(task.id)] == ["submitted"]
    assert [t.id for t in claim_all(restarted, ["r1"])] == [task.id]
