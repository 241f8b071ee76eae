"""The fleet's task store: tasks, their attempts (one per assignment) and their history, on SQLite or PostgreSQL.

Every transition is one transaction, so a process killed at any moment leaves each task in exactly
one state. A task is claimed for a robot with a conditional update (`state = 'pending'`) inside a
transaction that holds the candidates: SQLite takes the single writer lock first (`BEGIN
IMMEDIATE`), PostgreSQL locks the candidate rows with `SELECT ... FOR UPDATE SKIP LOCKED`, so of
several managers on one database each task is claimed by one. Behind that, the claim's update
requires the task still pending, an attempt's key (task, attempt number) is unique, and a unique
partial index keeps one active (assigned or running) task per robot, whichever manager assigned
it: a round that loses a race to another manager rolls back whole and decides again next time.

A submit may carry an idempotency key (`submit_key` in its parameters; the scheduler sets one per
schedule slot): a unique partial index on the column makes the key name one task in the database,
whichever manager stored it, and a submit whose key is taken inserts nothing and gets that task back
(`INSERT ... ON CONFLICT DO NOTHING`: the index decides a race between two managers, the loser reads
the winner's row). A key lives as long as its task row; rows are never deleted (pruning removes
history events only), so a key is never taken by a second task.

`open_store("sqlite:///path")` (WAL) or `open_store("postgresql://user@host:port/db")` (psycopg).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_fleet.coordination import (
    PAUSED,
    PHASE,
    RESUMED,
    RETRY,
    SLOT_DONE,
    SLOT_RUNNING,
    SLOT_VACANT,
    STARTED,
    GroupChange,
    Slot,
    Step,
    barrier,
    robots_label,
    sequence_from_json,
)

PENDING, ASSIGNED, RUNNING = "pending", "assigned", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
TASK_STATES = (PENDING, ASSIGNED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE_STATES = (ASSIGNED, RUNNING)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)
DEFAULT_DB_URL = "sqlite:///~/.ros/vla_fleet/fleet.db"
# The parameters_json key of a submit's idempotency key: a submit carrying a key the store holds is that task.
SUBMIT_KEY = "submit_key"
MAX_SUBMIT_KEY_BYTES = 256


class StoreError(RuntimeError):
    """The database could not be opened or refused a statement."""



def robot_reason(robot_id: str, why: str) -> str:
    """A task's reason that names the robot it failed on or was lost with (`StoredTask.failed_on` reads it back)."""
    return f"{robot_id}: {why}"


@dataclass
class StoredTask:
    """One task as stored; `robot_id` is the robot it runs on (empty while pending)."""
    id: str
    description: str
    priority: int
    requested_robot: str
    parameters_json: str
    state: str
    robot_id: str
    created_time: float
    updated_time: float
    assignment_time: float
    attempts: int
    failures: int
    reasons_json: str = "[]"
    seq: int = 0
    x: float | None = None
    y: float | None = None
    capabilities: tuple[str, ...] = ()
    robots: int = 1                  # k > 1: a coordinated task (its steps are tasks of their own)
    parent_id: str = ""              # a step of a coordinated task: that task's id
    submit_key: str = ""             # the submit's idempotency key (empty: none)
    submit_digest: str = ""          # with a key: what the submit asked for, as its client sent it (a hash)

    # parsed when asked for: a round reads thousands of rows and needs neither
    @property
    def parameters(self) -> dict:
        return json.loads(self.parameters_json)

    @property
    def reasons(self) -> list[str]:
        return json.loads(self.reasons_json)

    @property
    def failed_on(self) -> frozenset[str]:
        """The robots this task failed on or was lost with: its reasons written by `robot_reason` (a
        hand-back reads `<robot_id> handed it back: ...`, an operator's `cancelled: ...`; robot ids hold
        no space)."""
        robots = set()
        for reason in self.reasons:
            head, sep, _ = reason.partition(": ")
            if sep and head and " " not in head and head != "cancelled":
                robots.add(head)
        return frozenset(robots)

    @property
    def location(self) -> tuple[float, float] | None:
        return None if self.x is None or self.y is None else (self.x, self.y)


_COLUMNS = ("id, description, priority, requested_robot, parameters_json, state, robot_id, created_time, "
            "updated_time, assignment_time, attempts, failures, reasons_json, seq, x, y, capabilities, robots, "
            "parent_id, submit_key, submit_digest")

_TABLES = """
CREATE TABLE IF NOT EXISTS tasks (
    seq {serial},
    id TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    priority INTEGER NOT NULL,
    requested_robot TEXT NOT NULL DEFAULT '',
    parameters_json TEXT NOT NULL DEFAULT '{{}}',
    state TEXT NOT NULL,
    robot_id TEXT NOT NULL DEFAULT '',
    created_time DOUBLE PRECISION NOT NULL,
    updated_time DOUBLE PRECISION NOT NULL,
    assignment_time DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    reasons_json TEXT NOT NULL DEFAULT '[]',
    x DOUBLE PRECISION,
    y DOUBLE PRECISION,
    capabilities TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (state, priority, created_time, seq);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_active_per_robot ON tasks (robot_id)
    WHERE state IN ('assigned', 'running');
CREATE TABLE IF NOT EXISTS attempts (
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    robot_id TEXT NOT NULL,
    manager_id TEXT NOT NULL,
    assigned_time DOUBLE PRECISION NOT NULL,
    ended_time DOUBLE PRECISION,
    outcome TEXT,
    reason TEXT,
    PRIMARY KEY (task_id, attempt)
);
CREATE TABLE IF NOT EXISTS history (
    id {serial},
    task_id TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    event TEXT NOT NULL,
    robot_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS history_task ON history (task_id, id);
"""
# Columns added after the first release: an older database gets them when opened.
_ADDED_COLUMNS = {"robots": "INTEGER NOT NULL DEFAULT 1", "parent_id": "TEXT NOT NULL DEFAULT ''",
                  "submit_key": "TEXT", "submit_digest": "TEXT NOT NULL DEFAULT ''"}
# One task per idempotency key; NULL (a submit without a key) is never a conflict. Partial: only keyed rows
# are indexed, and an INSERT ... ON CONFLICT names the same condition (both dialects require it).
_KEYED = "submit_key IS NOT NULL"
_KEY_INDEX = f"CREATE UNIQUE INDEX IF NOT EXISTS tasks_submit_key ON tasks (submit_key) WHERE {_KEYED}"
# Coordinated tasks: one row per robot slot of a running group; a robot is in one group at most.
# The partial index holds the coordinated tasks waiting for robots (literals: SQLite uses a partial
# index only when the query's WHERE states its condition).
_GROUP_TABLES = """
CREATE TABLE IF NOT EXISTS coordination (
    task_id TEXT NOT NULL,
    slot INTEGER NOT NULL,
    robot_id TEXT NOT NULL DEFAULT '',
    phase INTEGER NOT NULL,
    state TEXT NOT NULL,
    step_id TEXT NOT NULL DEFAULT '',
    vacant_since DOUBLE PRECISION,
    PRIMARY KEY (task_id, slot)
);
CREATE UNIQUE INDEX IF NOT EXISTS coordination_one_group_per_robot ON coordination (robot_id) WHERE robot_id <> '';
CREATE INDEX IF NOT EXISTS tasks_group_queue ON tasks (priority, created_time, seq)
    WHERE state = 'pending' AND robots > 1;
CREATE INDEX IF NOT EXISTS tasks_groups_running ON tasks (seq) WHERE state = 'running' AND robots > 1;
CREATE INDEX IF NOT EXISTS tasks_single_queue ON tasks (priority, created_time, seq)
    WHERE state = 'pending' AND robots = 1;
CREATE INDEX IF NOT EXISTS history_time ON history (time)
"""
_GROUP_PENDING = "state = 'pending' AND robots > 1"
_SINGLE_PENDING = "state = 'pending' AND robots = 1"
_GROUP_RUNNING = "state = 'running' AND robots > 1"


class TaskStore:
    """The tasks of one fleet in one database; safe to share between threads of one process."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._lock = threading.Lock()
        # claims rolled back because another manager claimed the same robot or task at the same moment
        # (PostgreSQL with several managers): the round decides again next tick, nothing is lost
        self.lost_rounds = 0
        if db_url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self._conn = _open_sqlite(db_url[len("sqlite:///"):])
            serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
        elif db_url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self._conn = _open_postgresql(db_url)
            serial = "BIGSERIAL PRIMARY KEY"
        else:
            raise StoreError(f"db_url {db_url!r}: expected sqlite:///path or postgresql://...")
        with self._tx() as cur:
            if self.dialect == "postgresql":
                # two managers starting together must not both create the tables
                cur.execute("SELECT pg_advisory_xact_lock(4242)")
            for statement in _TABLES.format(serial=serial).split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute("SELECT * FROM tasks LIMIT 0")
            present = {d[0] for d in cur.description}
            for name, definition in _ADDED_COLUMNS.items():
                if name not in present:
                    cur.execute(f"ALTER TABLE tasks ADD COLUMN {name} {definition}")
            for statement in _GROUP_TABLES.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(_KEY_INDEX)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Any]:
        """One transaction; on SQLite a writing one takes the writer lock at its start so that a
        read-then-claim is atomic, a reading one sees the last commit without waiting for a writer."""
        with self._lock:
            if self.dialect == "sqlite":
                cur = self._conn.cursor()
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield _Cursor(cur, "?")
                except BaseException:
                    self._conn.rollback()
                    raise
                self._conn.commit()
            else:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield _Cursor(cur, "%s")

    # -- reads --------------------------------------------------------------------------------

    def get(self, task_id: str) -> StoredTask | None:
        with self._tx(write=False) as cur:
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        return _task(rows[0]) if rows else None

    def by_submit_key(self, submit_key: str) -> StoredTask | None:
        """The task stored with this idempotency key, or None."""
        with self._tx(write=False) as cur:
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE submit_key = ?", (submit_key,))
        return _task(rows[0]) if rows else None

    def list_tasks(self, state: str = "", limit: int = 10_000) -> list[StoredTask]:
        """Tasks in queue order (priority, then submission), all states or one."""
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        with self._tx(write=False) as cur:
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks {where} ORDER BY priority, created_time, seq LIMIT ?",
                             (*args, limit))
        return [_task(r) for r in rows]

    def active(self) -> list[StoredTask]:
        """Tasks assigned or running on one robot, by any manager (a coordinated task's steps, not the
        coordinated task itself: its robots are in `groups()`)."""
        with self._tx(write=False) as cur:
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE state IN (?, ?) AND robots = 1 ORDER BY seq",
                             ACTIVE_STATES)
        return [_task(r) for r in rows]

    def history(self, task_id: str) -> list[tuple[float, str, str, str]]:
        with self._tx(write=False) as cur:
            return [tuple(r) for r in cur.query(
                "SELECT time, event, robot_id, detail FROM history WHERE task_id = ? ORDER BY id", (task_id,))]

    def attempts(self, task_id: str) -> list[tuple[int, str, str, str | None, str | None]]:
        """(attempt, robot_id, manager_id, outcome, reason) of each assignment of the task."""
        with self._tx(write=False) as cur:
            return [tuple(r) for r in cur.query(
                "SELECT attempt, robot_id, manager_id, outcome, reason FROM attempts WHERE task_id = ? "
                "ORDER BY attempt", (task_id,))]

    def count(self, state: str) -> int:
        with self._tx(write=False) as cur:
            return int(cur.query("SELECT COUNT(*) FROM tasks WHERE state = ?", (state,))[0][0])

    def prune_history(self, before: float | None, keep_rows: int, batch: int = 10_000) -> int:
        """Delete history events older than `before` (None: none by age) and all but the newest
        `keep_rows` (0: no cap), at most `batch` of each in one short transaction (a long one would hold
        the writer lock against the rounds). Returns how many went; `batch` of either means more remain."""
        deleted = 0
        with self._tx() as cur:
            if before is not None:
                cur.run("DELETE FROM history WHERE id IN (SELECT id FROM history WHERE time < ? ORDER BY time LIMIT ?)",
                        (before, batch))
                deleted += max(cur.rowcount, 0)
            if keep_rows > 0:
                # by id, not by count (a count reads every row): ids have gaps (rolled back rounds), so
                # this keeps at most keep_rows events, a few fewer after gaps
                newest = cur.query("SELECT MAX(id) FROM history")[0][0]
                if newest is not None and int(newest) > keep_rows:
                    cur.run("DELETE FROM history WHERE id IN "
                            "(SELECT id FROM history WHERE id <= ? ORDER BY id LIMIT ?)",
                            (int(newest) - keep_rows, batch))
                    deleted += max(cur.rowcount, 0)
        return deleted

    def history_count(self) -> int:
        with self._tx(write=False) as cur:
            return int(cur.query("SELECT COUNT(*) FROM history")[0][0])

    # -- transitions --------------------------------------------------------------------------

    def submit(self, description: str, priority: int, now: float, *, requested_robot: str = "",
               parameters: dict | None = None, location: tuple[float, float] | None = None,
               capabilities: Sequence[str] = (), robots: int = 1) -> StoredTask:
        """A new pending task with a fresh UUID4 id; `robots` > 1 makes it a coordinated task (its
        parameters hold the normalised `action_sequence`)."""
        return self.submit_once(description, priority, now, requested_robot=requested_robot, parameters=parameters,
                                location=location, capabilities=capabilities, robots=robots)[0]

    def submit_once(self, description: str, priority: int, now: float, *, requested_robot: str = "",
                    parameters: dict | None = None, location: tuple[float, float] | None = None,
                    capabilities: Sequence[str] = (), robots: int = 1,
                    submit_key: str = "", submit_digest: str = "") -> tuple[StoredTask, bool]:
        """(the task, True) for a new task as `submit` stores it; with a `submit_key` another task already
        holds, (that task, False) and nothing is written, whatever its state: the same submit again is the
        same task. The unique index decides a race: the loser's insert does nothing (on PostgreSQL it waits
        for the winner's commit) and reads the winner's row. `submit_digest` is kept with the key, for the
        caller to tell the same request from another one under the same key."""
        task_id = str(uuid.uuid4())
        params = json.dumps(parameters or {}, allow_nan=False)
        x, y = location if location is not None else (None, None)
        digest = submit_digest if submit_key else ""
        with self._tx() as cur:
            cur.run("INSERT INTO tasks (id, description, priority, requested_robot, parameters_json, state, "
                    "created_time, updated_time, x, y, capabilities, robots, submit_key, submit_digest) "
                    f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (submit_key) WHERE {_KEYED} "
                    "DO NOTHING",
                    (task_id, description, priority, requested_robot, params, PENDING, now, now, x, y,
                     ",".join(sorted(set(capabilities))), robots, submit_key or None, digest))
            if cur.rowcount == 0:
                rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE submit_key = ?", (submit_key,))
                if not rows:  # not possible: only a key that is held conflicts, and rows are not deleted
                    raise StoreError(f"submit_key {submit_key!r} conflicted but names no task")
                return _task(rows[0]), False
            _event(cur, task_id, now, "submitted", requested_robot, f"priority {priority}")
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        return _task(rows[0]), True

    def assign_round(self, decide: Callable[[list[StoredTask], set[str]], list[tuple[str, str]]],
                     manager_id: str, now: float, limit: int) -> list[StoredTask]:
        """Claim tasks for robots in one transaction: `decide(pending, busy_robots)` sees up to `limit`
        pending tasks (queue order, none another manager is deciding on) and the robots with an active
        task, and returns (task_id, robot_id) pairs; the claimed tasks come back. A robot another
        manager claimed meanwhile makes the whole round roll back: the next round decides again."""
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        try:
            with self._tx() as cur:
                # the queue front in index order (tasks_single_queue): PostgreSQL, its statistics not yet
                # gathered, otherwise sorted and locked every pending row (13 ms against 2.4 at 10,000);
                # a literal condition, since a partial index is not matched to a parameter
                rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE {_SINGLE_PENDING} "
                                 f"ORDER BY priority, created_time, seq LIMIT ?{lock}", (limit,))
                pending = [_task(r) for r in rows]
                if not pending:
                    return []
                busy = _busy_robots(cur)
                by_id = {t.id: t for t in pending}
                claimed = []
                # claims in robot order: two managers racing for robots wait on each other, never in a cycle
                for task_id, robot_id in sorted(decide(pending, busy), key=lambda pair: pair[1]):
                    task = by_id.pop(task_id, None)
                    if task is None or robot_id in busy:
                        raise StoreError(f"decide() returned task {task_id} or robot {robot_id} twice or unknown")
                    busy.add(robot_id)
                    task.state, task.robot_id, task.assignment_time, task.updated_time = ASSIGNED, robot_id, now, now
                    task.attempts += 1
                    claimed.append(task)
                if not claimed:
                    return []
                # one batch per statement (PostgreSQL pipelines it): a round is three round trips, not 300
                cur.run_many("UPDATE tasks SET state = ?, robot_id = ?, assignment_time = ?, updated_time = ?, "
                             "attempts = ? WHERE id = ? AND state = ?",
                             [(ASSIGNED, t.robot_id, now, now, t.attempts, t.id, PENDING) for t in claimed])
                if cur.rowcount != len(claimed):
                    raise StoreError("a task left pending during the round")
                cur.run_many("INSERT INTO attempts (task_id, attempt, robot_id, manager_id, assigned_time) "
                             "VALUES (?, ?, ?, ?, ?)",
                             [(t.id, t.attempts, t.robot_id, manager_id, now) for t in claimed])
                cur.run_many("INSERT INTO history (task_id, time, event, robot_id, detail) VALUES (?, ?, ?, ?, ?)",
                             [(t.id, now, "assigned", t.robot_id, f"attempt {t.attempts} by {manager_id}")
                              for t in claimed])
                return claimed
        except _lost_race_errors():
            self.lost_rounds += 1
            return []

    def mark_running(self, task_id: str, robot_id: str, now: float) -> bool:
        """The robot started its assigned task; False when the task is not assigned to it."""
        with self._tx() as cur:
            cur.run("UPDATE tasks SET state = ?, updated_time = ? WHERE id = ? AND robot_id = ? AND state IN (?, ?)",
                    (RUNNING, now, task_id, robot_id, *ACTIVE_STATES))
            if cur.rowcount != 1:
                return False
            _event(cur, task_id, now, "started", robot_id, "")
            return True

    def finish(self, task_id: str, robot_id: str, outcome: str, reason: str, now: float,
               max_retries: int = 0, changes: list[GroupChange] | None = None, manager_id: str = "") -> str | None:
        """The robot's attempt ended: succeeded, failed (retried while failures <= max_retries, then
        failed for good with every reason) or handed back (`cancelled` by the robot: pending again,
        not counted as a failure). The task's new state, or None when it was not active on that robot.
        A step of a coordinated task ends as it is and moves its group (barrier, retry, pause): the
        group's change is appended to `changes`."""
        if outcome not in (SUCCEEDED, FAILED, CANCELLED):
            raise ValueError(f"outcome {outcome!r}: expected succeeded, failed or cancelled")
        with self._tx() as cur:
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ? AND robot_id = ? AND state IN (?, ?)",
                             (task_id, robot_id, *ACTIVE_STATES))
            if not rows:
                return None
            task = _task(rows[0])
            if task.parent_id:
                change = self._step_ended(cur, task, outcome, reason, now, max_retries, manager_id)
                state = outcome
            else:
                change = None
                failures, reasons = task.failures, list(task.reasons)
                if outcome == SUCCEEDED:
                    state = SUCCEEDED
                elif outcome == FAILED:
                    failures += 1
                    reasons.append(robot_reason(robot_id, reason or "failed"))
                    state = PENDING if failures <= max_retries else FAILED
                else:
                    reasons.append(f"{robot_id} handed it back: {reason or 'cancelled'}")
                    state = PENDING
                self._end_attempt(cur, task, state, outcome, reason, now, failures, reasons)
        _note(changes, change)
        return state

    def requeue(self, task_id: str, reason: str, now: float, changes: list[GroupChange] | None = None) -> bool:
        """An active task whose robot went silent or dropped it goes back to pending at its priority (a
        step of a coordinated task ends instead, and its slot waits for a replacement robot)."""
        with self._tx() as cur:
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ? AND state IN (?, ?)",
                             (task_id, *ACTIVE_STATES))
            if not rows:
                return False
            task = _task(rows[0])
            change = None
            if task.parent_id:
                change = self._step_ended(cur, task, "lost", reason, now, 0, "")
            else:
                self._end_attempt(cur, task, PENDING, "lost", reason, now, task.failures,
                                  [*task.reasons, robot_reason(task.robot_id, reason)])
        _note(changes, change)
        return True

    def cancel(self, task_id: str, reason: str, now: float,
               changes: list[GroupChange] | None = None) -> StoredTask | None:
        """Cancel a pending or active task; the task as it was (None when unknown); a task already
        finished is left as it is. Cancelling a step of a coordinated task cancels the coordinated
        task: its running steps are cancelled (in the change appended to `changes`)."""
        with self._tx() as cur:
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
            if not rows:
                return None
            task = _task(rows[0])
            if task.parent_id and task.state not in FINAL_STATES:
                parent = self._lock_task(cur, task.parent_id)
                if parent is not None and parent.state not in FINAL_STATES:
                    task = parent
            change = None
            if task.state in FINAL_STATES:
                return task
            if task.robots > 1 and task.state in ACTIVE_STATES:
                change = self._end_group(cur, task, CANCELLED, reason, now)
            elif task.state in ACTIVE_STATES:
                self._end_attempt(cur, task, CANCELLED, CANCELLED, reason, now, task.failures,
                                  [*task.reasons, f"cancelled: {reason}"])
            else:
                cur.run("UPDATE tasks SET state = ?, updated_time = ? WHERE id = ?", (CANCELLED, now, task.id))
                _event(cur, task.id, now, CANCELLED, "", reason)
        _note(changes, change)
        return task

    def _end_attempt(self, cur: _Cursor, task: StoredTask, state: str, outcome: str, reason: str, now: float,
                     failures: int, reasons: list[str]) -> None:
        robot_id = task.robot_id if state in FINAL_STATES and state != CANCELLED else ""
        cur.run("UPDATE tasks SET state = ?, robot_id = ?, updated_time = ?, failures = ?, reasons_json = ? "
                "WHERE id = ?", (state, robot_id, now, failures, json.dumps(reasons), task.id))
        cur.run("UPDATE attempts SET ended_time = ?, outcome = ?, reason = ? WHERE task_id = ? AND attempt = ?",
                (now, outcome, reason, task.id, task.attempts))
        _event(cur, task.id, now, outcome if state != PENDING else f"{outcome}, requeued", task.robot_id, reason)

    # -- coordinated tasks (vla_fleet.coordination) ----------------------------------------------
    # Every transition of a group locks the coordinated task's row first (SQLite: the writer lock of
    # BEGIN IMMEDIATE; PostgreSQL: SELECT ... FOR UPDATE), so two steps ending at once on two managers
    # see each other's slot and exactly one of them releases the barrier.

    def pending_groups(self, limit: int) -> list[StoredTask]:
        """Coordinated tasks waiting for their robots, in queue order."""
        with self._tx(write=False) as cur:
            rows = cur.query(f"SELECT {_COLUMNS} FROM tasks{self._indexed_by('tasks_group_queue')} "
                             f"WHERE {_GROUP_PENDING} ORDER BY priority, created_time, seq LIMIT ?", (limit,))
        return [_task(r) for r in rows]

    def groups(self) -> list[tuple[StoredTask, list[Slot]]]:
        """The running coordinated tasks with their slots (slot order)."""
        with self._tx(write=False) as cur:
            parents = [_task(r) for r in cur.query(
                f"SELECT {_COLUMNS} FROM tasks{self._indexed_by('tasks_groups_running')} "
                f"WHERE {_GROUP_RUNNING} ORDER BY seq")]
            return [(p, _slots(cur, p.id)) for p in parents]

    def start_group(self, task_id: str, robot_ids: Sequence[str], manager_id: str,
                    now: float) -> GroupChange | None:
        """Claim robots (one per slot, in slot order) for a pending coordinated task and assign them the
        first phase's steps; None when the task is no longer pending or a robot was taken meanwhile."""
        try:
            with self._tx() as cur:
                parent = self._lock_task(cur, task_id)
                if (parent is None or parent.state != PENDING or parent.robots != len(robot_ids)
                        or len(set(robot_ids)) != len(robot_ids) or set(robot_ids) & _busy_robots(cur)):
                    return None
                phases = sequence_from_json(parent.parameters["action_sequence"])
                slots = [Slot(i, r, 0, SLOT_RUNNING) for i, r in enumerate(robot_ids)]
                cur.run_many("INSERT INTO coordination (task_id, slot, robot_id, phase, state) VALUES (?, ?, ?, ?, ?)",
                             [(task_id, s.slot, s.robot_id, s.phase, s.state) for s in slots])
                steps = [self._new_step(cur, parent, s, phases, manager_id, now) for s in slots]
                cur.run("UPDATE tasks SET state = ?, robot_id = ?, assignment_time = ?, updated_time = ?, "
                        "attempts = attempts + 1 WHERE id = ?", (RUNNING, robots_label(slots), now, now, task_id))
                _event(cur, task_id, now, "started", robots_label(slots), f"phase 0 of {len(phases)} by {manager_id}")
                return self._change(parent, slots, phases, STARTED, "", assigned=steps)
        except _lost_race_errors():
            self.lost_rounds += 1
            return None

    def fill_slot(self, task_id: str, slot_no: int, robot_id: str, manager_id: str,
                  now: float) -> GroupChange | None:
        """A replacement robot takes a vacant slot and runs that slot's step of the current phase."""
        try:
            with self._tx() as cur:
                parent = self._lock_task(cur, task_id)
                if parent is None or parent.state != RUNNING or robot_id in _busy_robots(cur):
                    return None
                slots = _slots(cur, task_id)
                slot = next((s for s in slots if s.slot == slot_no and s.state == SLOT_VACANT), None)
                if slot is None:
                    return None
                phases = sequence_from_json(parent.parameters["action_sequence"])
                slot.robot_id, slot.vacant_since = robot_id, None
                step = self._new_step(cur, parent, slot, phases, manager_id, now)
                self._save_slot(cur, task_id, slot)
                self._relabel(cur, parent, slots, now)
                reason = f"{robot_id} replaces slot {slot_no} in phase {slot.phase}"
                _event(cur, task_id, now, RESUMED, robot_id, reason)
                return self._change(parent, slots, phases, RESUMED, reason, assigned=[step])
        except _lost_race_errors():
            self.lost_rounds += 1
            return None

    def vacate(self, task_id: str, slot_no: int, reason: str, now: float) -> GroupChange | None:
        """The robot of a slot is lost (silent, in error, charging) while it waits at the barrier or runs
        its step: the slot waits for a replacement, which does the slot's step of the current phase."""
        with self._tx() as cur:
            parent = self._lock_task(cur, task_id)
            if parent is None or parent.state != RUNNING:
                return None
            slots = _slots(cur, task_id)
            slot = next((s for s in slots if s.slot == slot_no and s.state != SLOT_VACANT), None)
            if slot is None:
                return None
            cancelled = []
            if slot.step_id:
                rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ? AND state IN (?, ?)",
                                 (slot.step_id, *ACTIVE_STATES))
                for step in map(_task, rows):
                    self._end_attempt(cur, step, CANCELLED, "lost", reason, now, step.failures, step.reasons)
                    cancelled.append(step)
            change = self._vacate(cur, parent, slots, slot, reason, now)
            change.cancelled.extend(cancelled)
            return change

    def fail_group(self, task_id: str, reason: str, now: float) -> GroupChange | None:
        """End a running coordinated task as failed (its running steps cancelled)."""
        with self._tx() as cur:
            parent = self._lock_task(cur, task_id)
            if parent is None or parent.state != RUNNING or parent.robots < 2:
                return None
            return self._end_group(cur, parent, FAILED, reason, now)

    def _indexed_by(self, index: str) -> str:
        """SQLite's planner prefers tasks_queue (state = ...) to a partial index and would read every
        pending row each round to find the few coordinated ones; PostgreSQL picks the partial index."""
        return f" INDEXED BY {index}" if self.dialect == "sqlite" else ""

    def _lock_task(self, cur: _Cursor, task_id: str) -> StoredTask | None:
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        rows = cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?{lock}", (task_id,))
        return _task(rows[0]) if rows else None

    def _step_ended(self, cur: _Cursor, step: StoredTask, outcome: str, reason: str, now: float,
                    max_retries: int, manager_id: str) -> GroupChange | None:
        """A step ended on its robot (succeeded, failed, cancelled = handed back, lost): end it, then move
        its group: the barrier, a retry on the same robot, or the slot vacant."""
        parent = self._lock_task(cur, step.parent_id)
        state = {SUCCEEDED: SUCCEEDED, FAILED: FAILED}.get(outcome, CANCELLED)
        self._end_attempt(cur, step, state, outcome, reason, now, step.failures + (outcome == FAILED),
                          [*step.reasons, robot_reason(step.robot_id, reason or outcome)] if outcome != SUCCEEDED
                          else step.reasons)
        if parent is None or parent.state != RUNNING:
            return None
        slots = _slots(cur, parent.id)
        slot = next((s for s in slots if s.step_id == step.id), None)
        if slot is None:
            return None
        phases = sequence_from_json(parent.parameters["action_sequence"])
        if outcome == SUCCEEDED:
            slot.state, slot.step_id = SLOT_DONE, ""
            self._save_slot(cur, parent.id, slot)
            _event(cur, parent.id, now, f"phase {slot.phase} step done", slot.robot_id, f"slot {slot.slot}")
            verdict = barrier(slots, len(phases))
            if verdict == "complete":
                return self._end_group(cur, parent, SUCCEEDED, f"all {len(phases)} phases done", now)
            if verdict != "release":
                return None
            steps = []
            for s in slots:
                s.phase += 1
                steps.append(self._new_step(cur, parent, s, phases, manager_id, now))
            _event(cur, parent.id, now, f"phase {slot.phase}", robots_label(slots), "barrier released")
            return self._change(parent, slots, phases, PHASE, "every robot finished the previous phase",
                                assigned=steps)
        if outcome == FAILED:
            failures = parent.failures + 1
            reasons = [*parent.reasons, f"{step.robot_id} phase {slot.phase}: {reason or 'failed'}"]
            cur.run("UPDATE tasks SET failures = ?, reasons_json = ?, updated_time = ? WHERE id = ?",
                    (failures, json.dumps(reasons), now, parent.id))
            parent.failures, parent.reasons_json = failures, json.dumps(reasons)
            if failures > max_retries:
                return self._end_group(cur, parent, FAILED, "; ".join(reasons), now)
            retry = self._new_step(cur, parent, slot, phases, manager_id, now)
            return self._change(parent, slots, phases, RETRY, f"{step.robot_id}: {reason or 'failed'}",
                                assigned=[retry])
        return self._vacate(cur, parent, slots, slot, f"{step.robot_id}: {reason or outcome}", now)

    def _vacate(self, cur: _Cursor, parent: StoredTask, slots: list[Slot], slot: Slot, reason: str,
                now: float) -> GroupChange:
        phases = sequence_from_json(parent.parameters["action_sequence"])
        lost = slot.robot_id
        slot.robot_id, slot.state, slot.step_id, slot.vacant_since = "", SLOT_VACANT, "", now
        self._save_slot(cur, parent.id, slot)
        reasons = [*parent.reasons, f"slot {slot.slot} lost {lost} in phase {slot.phase}: {reason}"]
        cur.run("UPDATE tasks SET reasons_json = ? WHERE id = ?", (json.dumps(reasons), parent.id))
        parent.reasons_json = json.dumps(reasons)
        if all(s.state == SLOT_VACANT for s in slots):
            return self._end_group(cur, parent, FAILED, "every robot lost: " + "; ".join(reasons), now)
        self._relabel(cur, parent, slots, now)
        _event(cur, parent.id, now, PAUSED, lost, reason)
        return self._change(parent, slots, phases, PAUSED, f"{lost} lost in phase {slot.phase}: {reason}")

    def _end_group(self, cur: _Cursor, parent: StoredTask, state: str, reason: str, now: float) -> GroupChange:
        """The coordinated task ends (succeeded, failed, cancelled): its running steps are cancelled and
        its robots let go."""
        slots = _slots(cur, parent.id)
        phases = sequence_from_json(parent.parameters["action_sequence"])
        steps = [_task(r) for r in cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE parent_id = ? AND state IN (?, ?)",
                                             (parent.id, *ACTIVE_STATES))]
        for step in steps:
            self._end_attempt(cur, step, CANCELLED, CANCELLED, f"coordinated task {state}: {reason}", now,
                              step.failures, step.reasons)
        cur.run("DELETE FROM coordination WHERE task_id = ?", (parent.id,))
        reasons = parent.reasons if state == SUCCEEDED else [*parent.reasons, f"{state}: {reason}"]
        cur.run("UPDATE tasks SET state = ?, updated_time = ?, reasons_json = ? WHERE id = ?",
                (state, now, json.dumps(reasons), parent.id))
        _event(cur, parent.id, now, state, parent.robot_id, reason)
        return self._change(parent, slots, phases, state, reason, cancelled=steps)

    def _new_step(self, cur: _Cursor, parent: StoredTask, slot: Slot, phases: list[list[Step]], manager_id: str,
                  now: float) -> StoredTask:
        """The task that runs one slot's step of its phase, assigned to the slot's robot at once."""
        step = phases[slot.phase][slot.slot]
        step_id = str(uuid.uuid4())
        params = json.dumps({"coordination": {"task": parent.id, "phase": slot.phase, "phases": len(phases),
                                              "slot": slot.slot}})
        x, y = step.location if step.location is not None else (None, None)
        cur.run("INSERT INTO tasks (id, description, priority, requested_robot, parameters_json, state, robot_id, "
                "created_time, updated_time, assignment_time, attempts, x, y, capabilities, robots, parent_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, 1, ?)",
                (step_id, step.description, parent.priority, slot.robot_id, params, ASSIGNED, slot.robot_id, now, now,
                 now, x, y, ",".join(parent.capabilities), parent.id))
        cur.run("INSERT INTO attempts (task_id, attempt, robot_id, manager_id, assigned_time) VALUES (?, 1, ?, ?, ?)",
                (step_id, slot.robot_id, manager_id, now))
        _event(cur, step_id, now, "assigned", slot.robot_id, f"phase {slot.phase} slot {slot.slot} of {parent.id}")
        slot.step_id, slot.state = step_id, SLOT_RUNNING
        self._save_slot(cur, parent.id, slot)
        return _task(cur.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (step_id,))[0])

    def _save_slot(self, cur: _Cursor, task_id: str, slot: Slot) -> None:
        cur.run("UPDATE coordination SET robot_id = ?, phase = ?, state = ?, step_id = ?, vacant_since = ? "
                "WHERE task_id = ? AND slot = ?",
                (slot.robot_id, slot.phase, slot.state, slot.step_id, slot.vacant_since, task_id, slot.slot))

    def _relabel(self, cur: _Cursor, parent: StoredTask, slots: list[Slot], now: float) -> None:
        parent.robot_id = robots_label(slots)
        cur.run("UPDATE tasks SET robot_id = ?, updated_time = ? WHERE id = ?", (parent.robot_id, now, parent.id))

    @staticmethod
    def _change(parent: StoredTask, slots: list[Slot], phases: list[list[Step]], event: str, reason: str,
                assigned: Sequence[StoredTask] = (), cancelled: Sequence[StoredTask] = ()) -> GroupChange:
        ordered = sorted(slots, key=lambda s: s.slot)
        return GroupChange(parent.id, event, max((s.phase for s in ordered), default=0),
                           [s.robot_id for s in ordered] or parent.robot_id.split(","), phases, reason,
                           parent.description, parent.priority, list(assigned), list(cancelled))


class _Cursor:
    """A DB-API cursor that takes `?` placeholders in both dialects."""

    def __init__(self, cur: Any, mark: str) -> None:
        self._cur, self._mark = cur, mark

    def run(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._cur.execute(sql if self._mark == "?" else sql.replace("?", self._mark), tuple(args))

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(sql if self._mark == "?" else sql.replace("?", self._mark), [tuple(r) for r in rows])

    def execute(self, sql: str) -> None:
        self._cur.execute(sql)

    @property
    def description(self) -> Any:
        return self._cur.description

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Sequence[Any]]:
        self.run(sql, args)
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


def _busy_robots(cur: _Cursor) -> set[str]:
    """Robots with an active task, and robots held by a running coordinated task (also between phases)."""
    return {r[0] for r in cur.query("SELECT robot_id FROM tasks WHERE state IN (?, ?) UNION "
                                    "SELECT robot_id FROM coordination WHERE robot_id <> ''", ACTIVE_STATES)}


def _slots(cur: _Cursor, task_id: str) -> list[Slot]:
    return [Slot(int(slot), robot, int(phase), state, step, vacant)
            for slot, robot, phase, state, step, vacant in cur.query(
                "SELECT slot, robot_id, phase, state, step_id, vacant_since FROM coordination WHERE task_id = ? "
                "ORDER BY slot", (task_id,))]


def _note(changes: list[GroupChange] | None, change: GroupChange | None) -> None:
    if changes is not None and change is not None:
        changes.append(change)


def _event(cur: _Cursor, task_id: str, now: float, event: str, robot_id: str, detail: str) -> None:
    cur.run("INSERT INTO history (task_id, time, event, robot_id, detail) VALUES (?, ?, ?, ?, ?)",
            (task_id, now, event, robot_id, detail))


def _task(row: Sequence[Any]) -> StoredTask:
    (task_id, description, priority, requested, params, state, robot_id, created, updated, assigned, attempts,
     failures, reasons, seq, x, y, caps, robots, parent_id, submit_key, submit_digest) = row
    return StoredTask(task_id, description, int(priority), requested, params, state, robot_id,
                      float(created), float(updated), float(assigned), int(attempts), int(failures),
                      reasons, int(seq), x, y, tuple(c for c in caps.split(",") if c) if caps else (),
                      int(robots), parent_id, submit_key or "", submit_digest)


def _open_sqlite(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        # isolation_level=None: transactions are the explicit BEGIN IMMEDIATE ... COMMIT of _tx
        conn = sqlite3.connect(str(Path(path).expanduser()) if path != ":memory:" else path,
                               timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open SQLite database {path}: {exc}") from exc
    return conn


def _open_postgresql(url: str) -> Any:
    import psycopg  # only a PostgreSQL store needs it
    import psycopg_binary  # noqa: F401  psycopg's C implementation (psycopg picks it): rows load ~5x faster

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to {url}: {exc}") from exc


def _lost_race_errors() -> tuple[type[BaseException], ...]:
    """What another manager's concurrent claim of the same robot raises (the round is then rolled back)."""
    errors: list[type[BaseException]] = [sqlite3.IntegrityError]
    try:
        import psycopg
    except ImportError:
        return tuple(errors)
    return (*errors, psycopg.IntegrityError, psycopg.errors.TransactionRollback)


def open_store(db_url: str = DEFAULT_DB_URL) -> TaskStore:
    """The store at db_url (`sqlite:///path`, `postgresql://...`); tables created when missing."""
    return TaskStore(db_url)
