"""The maintenance schedule on an injected clock and the runner's queue: one task at a time off the caller's
thread, reports in order, a failing task reported failed without stopping the next, bounded queue."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from vla_fleet.maintenance.config import DEFAULT_SCHEDULE
from vla_fleet.maintenance.layout import TaskFailed
from vla_fleet.maintenance.runner import (
    COMPLETED,
    FAILED,
    STARTED,
    WARNING,
    MaintenanceRunner,
    QueueFullError,
    RequestError,
    parse_request,
)
from vla_fleet.maintenance.schedule import MaintenanceSchedule, load_record, save_record

WAIT_S = 30.0


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_seed_schedule_daily_weekly_monthly():
    schedule = MaintenanceSchedule(DEFAULT_SCHEDULE)
    assert schedule.due(at("2026-11-01 00:00:00")) == []          # a Sunday, the 1st: everything due tonight
    fired: dict[str, list[float]] = {}
    t = at("2026-11-01 00:00:00")
    while t < at("2026-12-02 00:00:00"):
        t += 600.0
        for task in schedule.due(t):
            fired.setdefault(task, []).append(t)
    assert len(fired["health_check"]) == 31 and len(fired["log_cleanup"]) == 31
    assert len(fired["full_backup"]) == 5 and len(fired["performance_review"]) == 5   # Sundays 1, 8, 15, 22, 29
    assert fired["deep_maintenance"] == [at("2026-11-01 04:00:00"), at("2026-12-01 04:00:00")]
    assert fired["security_scan"] == [at("2026-11-01 04:30:00"), at("2026-12-01 04:30:00")]


def test_missed_slots_run_once_and_a_clock_reset_starts_afresh():
    schedule = MaintenanceSchedule({"health_check": "0 2 * * *"})
    schedule.due(at("2026-11-01 00:00:00"))
    assert schedule.due(at("2026-11-05 12:00:00")) == ["health_check"]      # four slots missed: one run
    assert schedule.due(at("2026-11-05 12:00:01")) == []
    assert schedule.due(at("2026-11-01 00:00:00")) == []                     # backwards: start again
    assert schedule.due(at("2026-11-01 02:00:00")) == ["health_check"]


def test_a_slot_missed_while_down_runs_at_the_restart(tmp_path):
    first = MaintenanceSchedule({"full_backup": "0 3 * * 0", "health_check": "0 2 * * *"})
    first.due(at("2026-11-01 00:00:00"))                                      # a Sunday
    assert first.due(at("2026-11-01 03:00:01")) == ["health_check", "full_backup"]
    record = tmp_path / "state.json"
    save_record(record, "wall", first.last_s)
    # down from Saturday to Sunday 03:10: the weekly backup's slot (08th 03:00) passed while nobody ran
    again = MaintenanceSchedule(first.crons, last_s=load_record(record, "wall"))
    assert again.due(at("2026-11-08 03:10:00")) == ["health_check", "full_backup"]    # once each, at once
    assert again.due(at("2026-11-08 03:10:01")) == []
    # without a record, or with one from the other timeline, a slot before the start is not run
    for last in ({}, load_record(record, "simulated"), load_record(tmp_path / "none.json", "wall")):
        assert MaintenanceSchedule(first.crons, last_s=last).due(at("2026-11-08 03:10:00")) == []
    record.write_text("{not json")
    assert load_record(record, "wall") == {}
    # a record ahead of the clock (a simulated run started from an earlier time) is not trusted
    ahead = MaintenanceSchedule(first.crons, last_s={"health_check": at("2026-12-01 02:00:00")})
    ahead.due(at("2026-11-08 01:00:00"))
    assert ahead.due(at("2026-11-08 02:00:00")) == ["health_check"]


def test_parse_request():
    assert parse_request(" health_check ") == ("health_check", "")
    assert parse_request("restore_backup backup-20261126T020000Z.tar.gz") == (
        "restore_backup", "backup-20261126T020000Z.tar.gz")
    for bad in ("", "reboot", "health_check now", "restore_backup ../../etc/passwd", "restore_backup .x"):
        with pytest.raises(RequestError):
            parse_request(bad)


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.reports: list[tuple[str, str, dict]] = []

    def __call__(self, task, status, details):
        with self.lock:
            self.reports.append((task, status, details))


def test_runner_one_at_a_time_failures_reported_and_the_queue_goes_on():
    gate = threading.Event()
    threads, active, most = [], [0], [0]

    def slow(_arg):
        threads.append(threading.current_thread().name)
        active[0] += 1
        most[0] = max(most[0], active[0])
        gate.wait(WAIT_S)
        active[0] -= 1
        return {"problems": []}

    def broken(_arg):
        raise RuntimeError("disk on fire")

    def refuses(_arg):
        raise TaskFailed("no backup in /x")

    rec = Recorder()
    runner = MaintenanceRunner({"health_check": slow, "log_cleanup": broken, "restore_backup": refuses,
                                "security_scan": lambda _a: {"problems": ["world-writable: /x"]}}, rec, queue_size=3)
    first, queued = runner.submit("health_check")
    assert queued
    assert first.done.wait(0.05) is False                    # the caller is not held by the task
    runs = [runner.submit(t)[0] for t in ("log_cleanup", "restore_backup", "security_scan")]
    assert runner.submit("security_scan")[1] is False          # already waiting: not queued twice
    with pytest.raises(QueueFullError):
        runner.submit("health_check", "", "schedule")
    gate.set()
    assert all(r.done.wait(WAIT_S) for r in runs)
    assert [(t, s) for t, s, _ in rec.reports] == [
        ("health_check", STARTED), ("health_check", COMPLETED), ("log_cleanup", STARTED), ("log_cleanup", FAILED),
        ("restore_backup", STARTED), ("restore_backup", FAILED), ("security_scan", STARTED),
        ("security_scan", WARNING)]
    assert rec.reports[3][2]["reason"] == "RuntimeError: disk on fire"
    assert rec.reports[5][2]["reason"] == "no backup in /x"
    assert most[0] == 1 and threads == ["maintenance"]
    assert runner.counts == {COMPLETED: 1, WARNING: 1, FAILED: 2}
    runner.stop()
