"""The scheduler core on a real SQLite store: at, delay, interval, cron; missed slots once; retries; cancel;
order; bad requests; a restart on a file database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from vla_fleet import schedule_store
from vla_fleet.schedule_store import ACTIVE, CANCELLED, DONE, FAILED, Schedule, ScheduleStore, StoreError
from vla_fleet.scheduler import (
    Request,
    ScheduleError,
    Scheduler,
    SchedulerConfig,
    SubmitError,
    SubmitRejectedError,
)
from vla_monitoring.config import ConfigError, build_config

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC).timestamp()  # a Monday, 08:00 UTC


class Manager:
    """Records submits; `down` makes it unreachable, `refuse` makes it answer no."""

    def __init__(self):
        self.calls: list[tuple[float, Schedule]] = []
        self.down = False
        self.refuse = False
        self.now = 0.0

    def __call__(self, schedule: Schedule) -> str:
        if self.down:
            raise SubmitError("/fleet_manager/submit_task unavailable")
        if self.refuse:
            raise SubmitRejectedError("no robot has the capability 'wings'")
        self.calls.append((self.now, schedule))
        return f"task-{len(self.calls)}"

    def descriptions(self) -> list[str]:
        return [s.description for _, s in self.calls]


def run(sched: Scheduler, manager: Manager, now: float):
    manager.now = now
    return sched.run_due(now, manager)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The same behaviour on both databases: an SQLite file, a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fleet.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sched(db_url):
    return Scheduler(ScheduleStore(db_url), SchedulerConfig())


def test_at_time_runs_once_at_its_time(sched):
    m = Manager()
    s, note = sched.add(Request("go to the red cube", scheduled_time=T0 + 10), T0)
    assert note == ""
    assert run(sched, m, T0 + 9.9) == []
    assert [o.task_id for o in run(sched, m, T0 + 10)] == ["task-1"]
    assert run(sched, m, T0 + 100) == []
    assert sched.store.get(s.id).state == DONE
    assert sched.store.get(s.id).last_task_id == "task-1"


def test_now_and_past_run_now(sched):
    m = Manager()
    sched.add(Request("go to the red cube"), T0)
    _, note = sched.add(Request("go to the blue ball", scheduled_time=T0 - 30), T0)
    assert "in the past: runs now" in note
    run(sched, m, T0)
    assert sorted(m.descriptions()) == ["go to the blue ball", "go to the red cube"]


def test_delay(sched):
    m = Manager()
    sched.add(Request("go to the red cube", parameters_json=json.dumps({"delay_s": 5, "place": "dock"})), T0)
    assert run(sched, m, T0 + 4.99) == []
    run(sched, m, T0 + 5)
    assert m.calls[0][0] == T0 + 5
    # the scheduler's keys are taken out; the manager's own go through, with the slot's idempotency key
    schedule = m.calls[0][1]
    assert json.loads(schedule.parameters_json) == {"place": "dock", "submit_key": f"{schedule.id}@{T0 + 5:.6f}"}


def test_interval_runs_every_slot_and_once_after_downtime(sched):
    m = Manager()
    s, _ = sched.add(Request("patrol", parameters_json='{"interval_s": 10}'), T0)
    for t in (T0, T0 + 5, T0 + 10, T0 + 19.9, T0 + 20):
        run(sched, m, t)
    assert [t for t, _ in m.calls] == [T0, T0 + 10, T0 + 20]
    # down for 95 s (nine slots missed): one run when it comes back, then the next slot on the old grid
    run(sched, m, T0 + 115)
    assert len(m.calls) == 4
    assert sched.store.get(s.id).due == T0 + 120
    run(sched, m, T0 + 119)
    assert len(m.calls) == 4
    run(sched, m, T0 + 120)
    assert len(m.calls) == 5


def test_cron_slots_and_once_after_downtime(sched):
    m = Manager()
    s, _ = sched.add(Request("inspect the shelves", parameters_json='{"cron": "*/15 * * * *"}'), T0 + 1)
    assert sched.store.get(s.id).due == T0 + 15 * 60  # 08:00:01 -> 08:15
    run(sched, m, T0 + 15 * 60 - 1)
    assert m.calls == []
    run(sched, m, T0 + 15 * 60)
    assert sched.store.get(s.id).due == T0 + 30 * 60
    run(sched, m, T0 + 3 * 3600 + 7)  # three hours down: 11 slots missed, one run
    assert len(m.calls) == 2
    assert sched.store.get(s.id).due == T0 + 3 * 3600 + 15 * 60


def test_cron_on_the_start_slot_runs_on_it(sched):
    s, _ = sched.add(Request("inspect", parameters_json='{"cron": "0 8 * * *"}'), T0)
    assert s.due == T0


def test_cron_time_zone():
    sched = Scheduler(ScheduleStore("sqlite:///:memory:"),
                      build_config(SchedulerConfig, {"cron_timezone": "Europe/Berlin"}))
    s, _ = sched.add(Request("inspect", parameters_json='{"cron": "0 10 * * *"}'), T0)
    assert s.due == T0 + 3600  # 10:00 in Berlin (UTC+1 in March) is 09:00 UTC


def test_order_by_due_then_priority(sched):
    m = Manager()
    sched.add(Request("c late", priority=0, scheduled_time=T0 + 2), T0)
    sched.add(Request("b low", priority=50, scheduled_time=T0 + 1), T0)
    sched.add(Request("a urgent", priority=1, scheduled_time=T0 + 1), T0)
    sched.add(Request("d urgent later", priority=0, scheduled_time=T0 + 1), T0)
    run(sched, m, T0 + 5)
    assert m.descriptions() == ["d urgent later", "a urgent", "b low", "c late"]


def test_submits_per_poll_are_bounded():
    sched = Scheduler(ScheduleStore("sqlite:///:memory:"), build_config(SchedulerConfig, {"max_submits_per_poll": 2}))
    m = Manager()
    for i in range(5):
        sched.add(Request(f"task {i}", scheduled_time=T0 + i), T0)
    assert len(run(sched, m, T0 + 10)) == 2
    assert m.descriptions() == ["task 0", "task 1"]
    run(sched, m, T0 + 10.1)
    run(sched, m, T0 + 10.2)
    assert m.descriptions() == [f"task {i}" for i in range(5)]


def test_cancel(sched):
    m = Manager()
    s, _ = sched.add(Request("patrol", parameters_json='{"interval_s": 10}'), T0)
    run(sched, m, T0)
    assert sched.cancel(s.id) == (True, f"schedule {s.id} cancelled")
    run(sched, m, T0 + 100)
    assert len(m.calls) == 1
    assert sched.store.get(s.id).state == CANCELLED
    ok, message = sched.cancel(s.id)
    assert not ok and "already cancelled" in message
    ok, message = sched.cancel("nope")
    assert not ok and "no schedule 'nope'" in message


def test_list(sched):
    a, _ = sched.add(Request("later", scheduled_time=T0 + 20), T0)
    b, _ = sched.add(Request("sooner", scheduled_time=T0 + 10), T0)
    sched.cancel(a.id)
    assert [s.id for s in sched.store.list()] == [b.id, a.id]
    assert [s.id for s in sched.store.list(ACTIVE)] == [b.id]
    assert sched.store.next_ready() == T0 + 10


def test_a_failed_submit_backs_off_and_is_not_lost(sched):
    m = Manager()
    m.down = True
    s, _ = sched.add(Request("go to the red cube", scheduled_time=T0), T0)
    outcomes = run(sched, m, T0)
    assert outcomes[0].retry and "unavailable" in outcomes[0].error
    waits = []
    t = T0
    for _ in range(9):
        row = sched.store.get(s.id)
        waits.append(row.ready - t)
        t = row.ready
        assert run(sched, m, t - 0.001) == []  # not before its backoff
        run(sched, m, t)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert sched.store.get(s.id).state == ACTIVE and sched.store.get(s.id).due == T0
    m.down = False
    run(sched, m, sched.store.get(s.id).ready)
    assert len(m.calls) == 1 and sched.store.get(s.id).state == DONE


def test_an_unreachable_manager_is_tried_once_per_poll(sched):
    m = Manager()
    m.down = True
    for i in range(3):
        sched.add(Request(f"task {i}", scheduled_time=T0 + i), T0)
    assert len(run(sched, m, T0 + 5)) == 1
    m.down = False
    run(sched, m, T0 + 5)
    assert m.descriptions() == ["task 1", "task 2"]  # task 0 waits for its backoff
    run(sched, m, T0 + 6)
    assert m.descriptions() == ["task 1", "task 2", "task 0"]


def test_a_recurring_schedule_retried_past_its_next_slot_runs_once(sched):
    m = Manager()
    m.down = True
    s, _ = sched.add(Request("patrol", parameters_json='{"interval_s": 10}'), T0)
    t = T0
    while t < T0 + 35:
        run(sched, m, t)
        t = sched.store.get(s.id).ready
    m.down = False
    run(sched, m, t)
    assert len(m.calls) == 1
    row = sched.store.get(s.id)
    assert row.attempts == 0 and row.due == T0 + 10 * (int((t - T0) // 10) + 1)


def test_a_refused_submit_is_not_retried(sched):
    m = Manager()
    m.refuse = True
    once, _ = sched.add(Request("fly"), T0)
    every, _ = sched.add(Request("fly around", parameters_json='{"interval_s": 10}'), T0)
    run(sched, m, T0)
    assert sched.store.get(once.id).state == FAILED
    assert "wings" in sched.store.get(once.id).last_error
    assert sched.store.get(every.id).state == ACTIVE and sched.store.get(every.id).due == T0 + 10
    assert run(sched, m, T0 + 5) == []


def test_persists_across_a_restart(db_url):
    url = db_url
    m = Manager()
    first = Scheduler(ScheduleStore(url), SchedulerConfig())
    once, _ = first.add(Request("go to the red cube", priority=3, scheduled_time=T0 + 60), T0)
    every, _ = first.add(Request("patrol", parameters_json='{"interval_s": 30}'), T0)
    gone, _ = first.add(Request("never mind", scheduled_time=T0 + 60), T0)
    first.cancel(gone.id)
    run(first, m, T0)
    first.store.close()

    second = Scheduler(ScheduleStore(url), SchedulerConfig())  # the node restarted after 10 minutes
    assert second.store.get(once.id).priority == 3
    run(second, m, T0 + 600)
    # once at the start, once for the twenty slots missed while down, then the one-shot (ready later)
    assert m.descriptions() == ["patrol", "patrol", "go to the red cube"]
    assert second.store.get(once.id).state == DONE
    assert second.store.get(gone.id).state == CANCELLED
    assert second.store.get(every.id).due == T0 + 630


@pytest.mark.parametrize("url", ["postgres:/x", "sqlite://relative.db", "sqlite:///"])
def test_a_url_of_another_form_is_refused(url):
    with pytest.raises(StoreError, match="is not sqlite:///<file>"):
        ScheduleStore(url)


def test_a_file_that_cannot_be_made_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open the schedules"):
        ScheduleStore(f"sqlite:///{tmp_path}/file/fleet.db")


def test_shares_the_file_with_the_wal(tmp_path):
    store = ScheduleStore(f"sqlite:///{tmp_path}/x/fleet.db")
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(("request_", "says"), [
    (Request(""), "description refused"),
    (Request("   "), "description refused"),
    (Request("stop"), "idle word"),
    (Request("x" * 300), "longer than"),
    (Request("go", priority=1001), "priority must be in [0, 1000]"),
    (Request("go", priority=-1), "priority must be in [0, 1000]"),
    (Request("go", scheduled_time=float("nan")), "scheduled_time must be"),
    (Request("go", scheduled_time=-5.0), "scheduled_time must be"),
    (Request("go", scheduled_time=T0 + 1e9), "more than max_ahead_s"),
    (Request("go", parameters_json="{not json"), "not valid JSON"),
    (Request("go", parameters_json="[1, 2]"), "must be a JSON object"),
    (Request("go", parameters_json='{"interval_s": NaN}'), "not valid JSON"),
    (Request("go", parameters_json='{"interval_s": "often"}'), "finite number"),
    (Request("go", parameters_json='{"interval_s": 0.001}'), "interval_s must be in [1, "),
    (Request("go", parameters_json='{"interval_s": 1e12}'), "interval_s must be in [1, "),
    (Request("go", parameters_json='{"interval_s": -10}'), "interval_s must be in [1, "),
    (Request("go", parameters_json='{"delay_s": -1}'), "delay_s must be in"),
    (Request("go", scheduled_time=T0 + 5, parameters_json='{"delay_s": 1}'), "not both"),
    (Request("go", parameters_json='{"interval_s": 10, "cron": "* * * * *"}'), "not both"),
    (Request("go", parameters_json='{"cron": "0 0 30 2 *"}'), "never fires"),
    (Request("go", parameters_json='{"cron": "every day"}'), "not valid"),
    (Request("go", parameters_json='{"cron": "61 * * * *"}'), "not valid"),
    (Request("go", parameters_json='{"cron": 5}'), "cron expression string"),
    (Request("go", parameters_json="x" * 20000), "longer than"),
])
def test_bad_requests_are_refused_with_the_reason(sched, request_, says):
    with pytest.raises(ScheduleError) as err:
        sched.add(request_, T0)
    assert says in str(err.value)
    assert sched.store.list() == []


def test_a_cron_more_often_than_the_shortest_interval_is_refused():
    sched = Scheduler(ScheduleStore("sqlite:///:memory:"), build_config(SchedulerConfig, {"min_interval_s": 120.0}))
    with pytest.raises(ScheduleError, match="fires every 60 s, more often than min_interval_s"):
        sched.add(Request("go", parameters_json='{"cron": "* * * * *"}'), T0)
    sched.add(Request("go", parameters_json='{"cron": "*/2 * * * *"}'), T0)


@pytest.mark.parametrize(("values", "says"), [
    ({"min_priority": 10, "max_priority": 5}, "~min_priority"),
    ({"min_interval_s": 100.0, "max_interval_s": 10.0}, "~min_interval_s"),
    ({"retry_initial_s": 100.0, "retry_max_s": 10.0}, "~retry_initial_s"),
    ({"cron_timezone": "Mars/Olympus"}, "~cron_timezone"),
    ({"poll_period_s": 0.0}, "~poll_period_s"),
])
def test_config_is_checked(values, says):
    with pytest.raises(ConfigError, match=says):
        build_config(SchedulerConfig, values)


def test_the_listing_command(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/fleet.db"
    sched = Scheduler(ScheduleStore(url), SchedulerConfig())
    once, _ = sched.add(Request("go to the red cube", priority=4, scheduled_time=T0 + 60), T0)
    cron, _ = sched.add(Request("inspect", parameters_json='{"cron": "0 9 * * *"}'), T0)
    sched.cancel(cron.id)
    assert schedule_store.main(["--db-url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{once.id}  active") and "once" in lines[0] and "'go to the red cube'" in lines[0]
    assert lines[1].startswith(f"{cron.id}  cancelled") and "cron '0 9 * * *'" in lines[1]
    assert schedule_store.main(["--db-url", url, "--state", "cancelled"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [cron.id]
    with pytest.raises(SystemExit):
        schedule_store.main(["--db-url", "bogus"])
    assert "is not sqlite:///<file>" in capsys.readouterr().err


def test_a_database_error_is_a_store_error(sched):
    sched.store.close()
    with pytest.raises(StoreError, match="database error"):
        sched.add(Request("go to the red cube"), T0)
    with pytest.raises(StoreError, match="database error"):
        sched.run_due(T0, Manager())


def test_shares_one_database_with_the_task_store(db_url):
    """fleet.launch gives the manager and the scheduler one db_url: their tables live side by side."""
    from vla_fleet.store import open_store

    tasks = open_store(db_url)
    sched = Scheduler(ScheduleStore(db_url), SchedulerConfig())
    task = tasks.submit("go to the blue ball", priority=1, now=T0)
    s, _ = sched.add(Request("go to the red cube"), T0)
    assert [t.id for t in tasks.list_tasks()] == [task.id]
    assert [x.id for x in sched.store.list()] == [s.id]
    tasks.close()


def test_feedback_on_the_last_task_is_recorded(sched):
    m = Manager()
    s, _ = sched.add(Request("patrol", parameters_json='{"interval_s": 10}'), T0)
    run(sched, m, T0)
    assert sched.store.feedback("task-1", "failed: blocked")
    assert sched.store.get(s.id).last_outcome == "failed: blocked"
    assert not sched.store.feedback("someone else's task", "succeeded")
    run(sched, m, T0 + 10)  # a new slot, a new task: its outcome is not known yet
    assert sched.store.get(s.id).last_outcome == ""
    assert not sched.store.feedback("task-1", "succeeded")  # the old task no longer the schedule's last
    assert sched.store.feedback("task-2", "succeeded")
    assert sched.store.get(s.id).last_outcome == "succeeded"


def test_a_table_from_before_last_outcome_gets_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "fleet.db"
    conn = sqlite3.connect(path)
    conn.execute("""CREATE TABLE vla_schedules (
        id TEXT PRIMARY KEY, description TEXT NOT NULL, priority INTEGER NOT NULL, robot_id TEXT NOT NULL,
        parameters_json TEXT NOT NULL, kind TEXT NOT NULL, interval_s DOUBLE PRECISION, cron TEXT,
        due DOUBLE PRECISION NOT NULL, ready DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL, attempts INTEGER NOT NULL, runs INTEGER NOT NULL, last_task_id TEXT NOT NULL,
        last_error TEXT NOT NULL)""")
    conn.execute("INSERT INTO vla_schedules VALUES ('old', 'go', 0, '', '{}', 'at', NULL, NULL, 1.0, 1.0, 0.0, "
                 "'active', 0, 0, '', '')")
    conn.commit()
    conn.close()
    store = ScheduleStore(f"sqlite:///{path}")
    assert store.get("old").last_outcome == ""
    assert store.ready(2.0, 10)[0].id == "old"
