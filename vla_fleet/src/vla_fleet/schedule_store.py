"""The scheduler's persistent table: schedules kept in the fleet's database, next-ready order from its index.

One table, `vla_schedules`, in the same database as the fleet manager's, opened by the fleet store's
own connection helpers (`sqlite:///file` in WAL mode, or `postgresql://...` through psycopg); created
if missing. The next schedules to run come from a partial index on (ready, priority) of the
active rows with `ORDER BY ... LIMIT`, so neither an insert nor a pop re-sorts the whole set.
`due` is the slot a schedule stands for; `ready` is when it may next be tried (its slot, or later
after a failed submit).

`python -m vla_fleet.schedule_store [--db-url URL] [--state active]` lists the schedules, in the order
they run, while scheduler_node runs or not.
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from vla_fleet.store import DEFAULT_DB_URL, _open_postgresql, _open_sqlite
from vla_fleet.store import StoreError as FleetStoreError

ACTIVE, DONE, CANCELLED, FAILED = "active", "done", "cancelled", "failed"
STATES = (ACTIVE, DONE, CANCELLED, FAILED)
AT, INTERVAL, CRON = "at", "interval", "cron"


class StoreError(ValueError):
    """A database this store cannot open (a URL of another form, a file it cannot create); says why."""


@dataclass(frozen=True)
class Schedule:
    id: str
    description: str
    priority: int                # lower runs first
    robot_id: str                # empty = any suitable robot
    parameters_json: str         # what goes to submit_task ("{}" when none)
    kind: str                    # AT, INTERVAL or CRON
    interval_s: float | None     # INTERVAL only
    cron: str | None             # CRON only
    due: float                   # the slot this schedule runs for next [s, the node's clock]
    ready: float                 # when it may next be tried: `due`, or later after a failed submit
    created: float
    state: str = ACTIVE
    attempts: int = 0            # failed submits of the current slot
    runs: int = 0                # successful submits
    last_task_id: str = ""
    last_error: str = ""
    last_outcome: str = ""       # the newest /task_feedback on last_task_id: `state` or `state: reason`


_COLUMNS = tuple(f.name for f in dataclasses.fields(Schedule))
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS vla_schedules (
        id TEXT PRIMARY KEY, description TEXT NOT NULL, priority INTEGER NOT NULL, robot_id TEXT NOT NULL,
        parameters_json TEXT NOT NULL, kind TEXT NOT NULL, interval_s DOUBLE PRECISION, cron TEXT,
        due DOUBLE PRECISION NOT NULL, ready DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL, attempts INTEGER NOT NULL, runs INTEGER NOT NULL, last_task_id TEXT NOT NULL,
        last_error TEXT NOT NULL, last_outcome TEXT NOT NULL DEFAULT '')""",
    # Only active rows are ever popped: the partial index stays the size of what is still to run.
    "CREATE INDEX IF NOT EXISTS vla_schedules_ready ON vla_schedules (ready, priority, created) "
    "WHERE state = 'active'",
    # feedback names a task: its schedule found without a scan
    "CREATE INDEX IF NOT EXISTS vla_schedules_last_task ON vla_schedules (last_task_id)",
)
# Columns added after the table's first form, with their definitions: added to an older table on open.
_ADDED_COLUMNS = {"last_outcome": "TEXT NOT NULL DEFAULT ''"}


class ScheduleStore:
    """The schedules table; safe to share between threads (one connection under one lock).

    One scheduler per fleet: it pops without claiming, so two on one PostgreSQL database would both submit.
    """

    def __init__(self, db_url: str):
        self._lock = threading.Lock()
        try:
            # the fleet store's connections: the same URL forms, WAL and autocommit, as the manager's
            if db_url.startswith("sqlite:///") and len(db_url) > len("sqlite:///"):
                self._mark, self._db_errors = "?", (sqlite3.Error,)
                self._conn = _open_sqlite(db_url[len("sqlite:///"):])
            elif db_url.startswith(("postgresql://", "postgres://")):
                import psycopg  # only a PostgreSQL store needs it

                self._mark, self._db_errors = "%s", (psycopg.Error,)
                self._conn = _open_postgresql(db_url)
            else:
                raise StoreError(f"db_url {db_url!r} is not sqlite:///<file> (sqlite:////absolute/path, "
                                 f"sqlite:///~/file.db, sqlite:///:memory:) or postgresql://user@host:port/db")
            if self._mark == "%s":
                with self._conn.transaction():
                    # two processes starting together must not both create the table
                    self._conn.execute("SELECT pg_advisory_xact_lock(4243)")
                    self._create()
            else:
                self._create()
        except (OSError, FleetStoreError, *getattr(self, "_db_errors", (sqlite3.Error,))) as exc:  # read when raised
            raise StoreError(f"cannot open the schedules in {db_url}: {exc}") from exc

    def _create(self) -> None:
        self._conn.execute(_SCHEMA[0])
        present = {d[0] for d in self._conn.execute("SELECT * FROM vla_schedules LIMIT 0").description}
        for name, definition in _ADDED_COLUMNS.items():
            if name not in present:
                self._conn.execute(f"ALTER TABLE vla_schedules ADD COLUMN {name} {definition}")
        for statement in _SCHEMA[1:]:
            self._conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _execute(self, sql: str, args: tuple = ()) -> Any:
        """One statement, committed on its own; `?` placeholders in both dialects. Call with the lock held.
        A database error (locked too long, connection lost) is a StoreError: the caller answers or retries."""
        try:
            return self._conn.execute(sql if self._mark == "?" else sql.replace("?", self._mark), args)
        except self._db_errors as exc:
            raise StoreError(f"database error: {exc}") from exc

    def _query(self, sql: str, args: tuple = ()) -> list[Schedule]:
        with self._lock:
            rows = self._execute(sql, args).fetchall()
        return [Schedule(*row) for row in rows]

    def _update(self, sql: str, args: tuple) -> bool:
        with self._lock:
            return self._execute(sql, args).rowcount > 0

    def add(self, schedule: Schedule) -> None:
        with self._lock:
            self._execute(f"INSERT INTO vla_schedules ({', '.join(_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                               dataclasses.astuple(schedule))

    def get(self, schedule_id: str) -> Schedule | None:
        found = self._query(f"SELECT {', '.join(_COLUMNS)} FROM vla_schedules WHERE id = ?", (schedule_id,))
        return found[0] if found else None

    def ready(self, now: float, limit: int) -> list[Schedule]:
        """Active schedules ready at `now`, earliest first, then by priority (lower first), then oldest."""
        return self._query(f"SELECT {', '.join(_COLUMNS)} FROM vla_schedules WHERE state = 'active' AND ready <= ? "
                           "ORDER BY ready, priority, created LIMIT ?", (now, limit))

    def next_ready(self) -> float | None:
        """When the earliest active schedule is ready, or None when none is active."""
        with self._lock:
            row = self._execute("SELECT ready FROM vla_schedules WHERE state = 'active' "
                                     "ORDER BY ready, priority, created LIMIT 1").fetchone()
        return None if row is None else row[0]

    def count(self, state: str = ACTIVE) -> int:
        with self._lock:
            return self._execute("SELECT COUNT(*) FROM vla_schedules WHERE state = ?", (state,)).fetchone()[0]

    def list(self, state: str = "") -> list[Schedule]:
        """Every schedule (or those in `state`), in the order they run."""
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        return self._query(f"SELECT {', '.join(_COLUMNS)} FROM vla_schedules {where} "
                           "ORDER BY ready, priority, created", args)

    def submitted(self, schedule_id: str, task_id: str, next_due: float | None) -> bool:
        """Records a successful submit: a one-shot (next_due None) is done, a recurring one moves to its next
        slot. Only an active row changes (a schedule cancelled while its submit ran stays cancelled)."""
        if next_due is None:
            return self._update("UPDATE vla_schedules SET state = 'done', attempts = 0, runs = runs + 1, "
                                "last_task_id = ?, last_error = '', last_outcome = '' "
                                "WHERE id = ? AND state = 'active'",
                                (task_id, schedule_id))
        return self._update("UPDATE vla_schedules SET due = ?, ready = ?, attempts = 0, runs = runs + 1, "
                            "last_task_id = ?, last_error = '', last_outcome = '' WHERE id = ? AND state = 'active'",
                            (next_due, next_due, task_id, schedule_id))

    def retry_at(self, schedule_id: str, ready: float, error: str) -> bool:
        """Records a failed submit: the slot stays due, tried again at `ready`."""
        return self._update("UPDATE vla_schedules SET ready = ?, attempts = attempts + 1, last_error = ? "
                            "WHERE id = ? AND state = 'active'", (ready, error, schedule_id))

    def rejected(self, schedule_id: str, error: str, next_due: float | None) -> bool:
        """Records a submit the manager refused: a one-shot is failed, a recurring one skips to its next slot."""
        if next_due is None:
            return self._update("UPDATE vla_schedules SET state = 'failed', last_error = ? "
                                "WHERE id = ? AND state = 'active'", (error, schedule_id))
        return self._update("UPDATE vla_schedules SET due = ?, ready = ?, attempts = 0, last_error = ? "
                            "WHERE id = ? AND state = 'active'", (next_due, next_due, error, schedule_id))

    def feedback(self, task_id: str, outcome: str) -> bool:
        """Records a robot's report on a task the scheduler submitted; False when no schedule's last task it is."""
        return self._update("UPDATE vla_schedules SET last_outcome = ? WHERE last_task_id = ?", (outcome, task_id))

    def cancel(self, schedule_id: str) -> bool:
        """Cancels an active schedule; False when there is none by that id."""
        return self._update("UPDATE vla_schedules SET state = 'cancelled' WHERE id = ? AND state = 'active'",
                            (schedule_id,))


def describe(s: Schedule) -> str:
    """One line of the listing: id, state, kind, next slot, priority, runs, last task and error, description."""
    every = f"every {s.interval_s:g} s" if s.kind == INTERVAL else f"cron {s.cron!r}" if s.kind == CRON else "once"
    line = (f"{s.id}  {s.state:<9}  {every:<18}  due {s.due:.3f}  ready {s.ready:.3f}  priority {s.priority}  "
            f"runs {s.runs}  last task {s.last_task_id or '-'}  {s.description!r}")
    return (line + (f"  last outcome: {s.last_outcome}" if s.last_outcome else "")
            + (f"  last error: {s.last_error}" if s.last_error else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vla_fleet.schedule_store",
                                 description="Lists the scheduler's schedules, in the order they run.")
    ap.add_argument("--db-url", default=DEFAULT_DB_URL, help="the fleet's database (default %(default)s)")
    ap.add_argument("--state", default="", choices=("", *STATES), help="only schedules in this state")
    args = ap.parse_args(argv)
    try:
        store = ScheduleStore(args.db_url)
    except StoreError as exc:
        ap.error(str(exc))
    try:
        for schedule in store.list(args.state):
            print(describe(schedule))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
