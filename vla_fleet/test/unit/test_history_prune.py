"""History pruning on a real store (SQLite, and PostgreSQL where the server binaries are installed): events
older than the kept days go, at most the kept rows stay (the newest), each step bounded; the manager
prunes once per period from its rounds, again at once while a step found a full batch."""

from __future__ import annotations

import pytest

from vla_fleet.manager import FleetManager, FleetManagerConfig
from vla_fleet.store import open_store
from vla_monitoring.config import build_config

DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("postgres_url")


def events(store):
    with store._tx(write=False) as cur:
        return [(float(t), e) for t, e in cur.query("SELECT time, event FROM history ORDER BY id")]


def test_prune_by_age_keeps_the_newer_events(db_url):
    store = open_store(db_url)
    old = [store.submit(f"old {i}", 1, now=i * 1.0) for i in range(5)]
    new = store.submit("new", 1, now=40 * DAY)
    store.cancel(old[0].id, "operator", now=40 * DAY)
    assert store.prune_history(before=10 * DAY, keep_rows=0) == 5
    assert [t for t, _e in events(store)] == [40 * DAY, 40 * DAY]
    assert store.history(new.id) == [(40 * DAY, "submitted", "", "priority 1")]
    # the tasks themselves stay: only their audit trail is pruned
    assert store.get(old[1].id).description == "old 1"
    assert store.prune_history(before=10 * DAY, keep_rows=0) == 0


def test_prune_keeps_at_most_the_newest_rows_in_bounded_steps(db_url):
    store = open_store(db_url)
    for i in range(30):
        store.submit(f"t{i}", 1, now=float(i))
    assert store.history_count() == 30
    assert store.prune_history(before=None, keep_rows=10, batch=15) == 15
    assert store.history_count() == 15
    assert store.prune_history(before=None, keep_rows=10, batch=15) == 5
    assert [t for t, _e in events(store)] == [float(i) for i in range(20, 30)]
    assert store.prune_history(before=None, keep_rows=10, batch=15) == 0


def test_manager_prunes_once_a_period(db_url):
    t = [40 * DAY]
    cfg = build_config(FleetManagerConfig, {"db_url": db_url, "history_keep_days": 30.0, "prune_period_s": 600.0})
    mgr = FleetManager(open_store(db_url), cfg, clock=lambda: t[0])
    for i in range(3):
        mgr.store.submit(f"old {i}", 1, now=float(i))
    mgr.tick(t[0])
    assert mgr.store.history_count() == 0
    mgr.store.submit("older than 30 days at the next step", 1, now=5 * DAY)
    t[0] += 599.0
    mgr.tick(t[0])
    assert mgr.store.history_count() == 1, "pruned again before prune_period_s"
    t[0] += 2.0
    mgr.tick(t[0])
    assert mgr.store.history_count() == 0


def test_keep_days_zero_prunes_nothing_by_age(db_url):
    cfg = build_config(FleetManagerConfig, {"db_url": db_url, "history_keep_days": 0.0, "history_keep_rows": 0})
    mgr = FleetManager(open_store(db_url), cfg, clock=lambda: 1000 * DAY)
    mgr.store.submit("ancient", 1, now=0.0)
    mgr.tick(1000 * DAY)
    assert mgr.store.history_count() == 1
