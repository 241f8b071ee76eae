"""The fleet manager without ROS: robots as last heard, tasks in the store, one assignment round per tick.

Inputs are plain values (parsed JSON documents, the clock's `now`); outputs are the tasks to send
to robots. Every task transition goes through the store (one transaction each), so a manager
killed and restarted goes on from the database: an assigned or running task stays with its robot
while the robot reports it as its current task, and goes back to pending when the robot falls
silent, reports an error, or has not taken it up within `ack_timeout_s`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vla_fleet.assignment import CostModel, Job, Robot, assign, cost
from vla_fleet.coordination import (
    SLOT_DONE,
    SLOT_VACANT,
    GroupChange,
    parse_action_sequence,
    sequence_from_json,
    sequence_to_json,
)
from vla_fleet.store import (
    ACTIVE_STATES,
    ASSIGNED,
    CANCELLED,
    DEFAULT_DB_URL,
    FAILED,
    MAX_SUBMIT_KEY_BYTES,
    PENDING,
    SUBMIT_KEY,
    SUCCEEDED,
    TASK_STATES,
    StoredTask,
    TaskStore,
)
from vla_monitoring.config import ConfigError, param
from vla_msgs.states import RobotState, TaskState
from vla_msgs.tasks import MAX_TASK_BYTES

_log = logging.getLogger(__name__)


class TaskRejectedError(ValueError):
    """A submission the manager refuses; the message says which field and why."""


@dataclass
class FleetManagerConfig:
    """Every parameter of fleet_manager_node (config/fleet_manager.yaml mirrors it); times in s."""

    db_url: str = param(DEFAULT_DB_URL, nonempty=True,
                        help="task store: sqlite:///path (WAL) or postgresql://user@host:port/db")
    manager_id: str = param("", help="name of this manager in the store's attempts; empty = host:pid")
    assign_period_s: float = param(1.0, lo=0.02, hi=60.0, help="one assignment round every this long [s]")
    robot_timeout_s: float = param(5.0, lo=0.5, hi=600.0, help="a robot silent this long is offline [s]")
    ack_timeout_s: float = param(10.0, lo=0.5, hi=600.0,
                                 help="an assigned task its robot has not taken up by then is requeued [s]")
    resend_period_s: float = param(1.0, lo=0.05, hi=600.0,
                                   help="an assignment not yet taken up is sent again this often [s]")
    max_retries: int = param(2, lo=0, hi=100, help="a failed task runs again this many times, then fails")
    min_battery: float = param(20.0, lo=0.0, hi=100.0, help="robots below this battery get no task [%]")
    min_priority: int = param(0, lo=-1_000_000, hi=1_000_000, help="lowest priority number accepted")
    max_priority: int = param(1000, lo=-1_000_000, hi=1_000_000, help="highest priority number accepted")
    battery_weight_m: float = param(5.0, lo=0.0, hi=1e6, help="travel [m] an empty battery costs over a full one")
    max_matrix: int = param(250_000, lo=1, hi=100_000_000, help="Hungarian up to this many cells, greedy above")
    candidates_per_robot: int = param(4, lo=1, hi=1000,
                                      help="queue-front tasks weighed per free robot in one round")
    max_pending_scan: int = param(2000, lo=1, hi=1_000_000, help="pending tasks read from the store per round")
    max_robots: int = param(10_000, lo=1, hi=1_000_000, help="robots tracked at most (the longest silent let go)")
    places_file: str = param("", help="YAML mapping place name -> [x, y]; empty = none (sim objects still count)")
    max_group_robots: int = param(10, lo=2, hi=1000, help="a coordinated task needs at most this many robots")
    replace_timeout_s: float = param(30.0, lo=0.0, hi=86400.0,
                                     help="a coordinated task that lost a robot waits this long for a "
                                          "replacement, then fails [s]")
    history_keep_days: float = param(30.0, lo=0.0, hi=36500.0,
                                     help="task history events older than this are pruned; 0 = none by age [days]")
    history_keep_rows: int = param(1_000_000, lo=0, hi=1_000_000_000,
                                   help="at most this many task history events are kept (the newest); 0 = no cap")
    prune_period_s: float = param(600.0, lo=1.0, hi=86400.0,
                                  help="the history is pruned this often, at most 10,000 events per step [s]")

    def check(self) -> None:
        if self.min_priority > self.max_priority:
            raise ConfigError(f"~min_priority {self.min_priority} is above ~max_priority {self.max_priority}")


@dataclass
class RobotView:
    robot: Robot
    status: str
    current_task_id: str
    last_heard: float
    offline: bool = False


@dataclass
class RoundResult:
    """What one tick decided: tasks to send (new and resent assignments) and tasks taken back."""
    assigned: list[StoredTask] = field(default_factory=list)
    resend: list[StoredTask] = field(default_factory=list)
    requeued: list[tuple[str, str]] = field(default_factory=list)
    went_offline: list[str] = field(default_factory=list)
    groups: list[GroupChange] = field(default_factory=list)


def default_manager_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class FleetManager:
    """One manager of a fleet; several may share one PostgreSQL store. Not thread-safe: the node
    calls it under one lock."""

    def __init__(self, store: TaskStore, config: FleetManagerConfig, clock: Callable[[], float],
                 places: Mapping[str, tuple[float, float]] | None = None) -> None:
        self.store = store
        self.cfg = config
        self.clock = clock
        self.manager_id = config.manager_id or default_manager_id()
        self.places: dict[str, tuple[float, float]] = dict(places or {})
        self.robots: dict[str, RobotView] = {}
        # set by the first round: under simulated time the clock reads 0 until /clock arrives
        self.started: float | None = None
        self.cost_model = CostModel(config.battery_weight_m, config.max_matrix)
        self._sent: dict[str, float] = {}   # task id -> when its assignment was last sent again
        self._active: dict[str, str] = {}   # task id -> robot, the active tasks as of the last round
        # coordinated tasks' changes not yet published (steps to send or stop, /vla_coordination)
        self._changes: list[GroupChange] = []
        self._pruned_at: float | None = None
        self.repeated_submits = 0   # submits whose submit_key named a stored task (answered with that task)

    # -- services -----------------------------------------------------------------------------

    def submit(self, description: str, priority: int, robot_id: str = "", parameters_json: str = "") -> StoredTask:
        """Validate and store a new task; raises TaskRejectedError naming the bad field. A submit whose
        `submit_key` (in parameters_json) names a stored task returns that task (see `submit_once`)."""
        return self.submit_once(description, priority, robot_id, parameters_json)[0]

    def submit_once(self, description: str, priority: int, robot_id: str = "",
                    parameters_json: str = "") -> tuple[StoredTask, bool]:
        """(the task, True when it is new). With a `submit_key` in parameters_json that a stored task holds,
        that task and False, whatever its state: a retried submit is the same task, never a second one.
        The key names one request: the same key with another description, priority, robot or parameters
        (compared as the client sent them, by a digest: the stored ones are normalised) is refused
        (TaskRejectedError), not answered with a task that is not the one asked for. A known key is
        answered before the parameters are checked against the places, which may have moved since."""
        text = description.strip() if isinstance(description, str) else ""
        if not text:
            raise TaskRejectedError("description is empty")
        if len(text.encode()) > MAX_TASK_BYTES:
            raise TaskRejectedError(f"description is longer than {MAX_TASK_BYTES} bytes")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TaskRejectedError(f"priority must be an integer, got {priority!r:.40}")
        if not isinstance(robot_id, str):
            raise TaskRejectedError("robot_id must be a string")
        params = _parse_parameters(parameters_json)
        key = _submit_key(params)
        digest = _digest(params) if key else ""
        held = self.store.by_submit_key(key) if key else None
        if held is not None:
            return self._repeated(held, (text, priority, robot_id.strip(), digest)), False
        if not self.cfg.min_priority <= priority <= self.cfg.max_priority:
            raise TaskRejectedError(f"priority {priority} outside [{self.cfg.min_priority}, {self.cfg.max_priority}]")
        location = self._location(params)
        if location is None:
            location = self.named_place(text)
        caps = params.get("capabilities", [])
        if not isinstance(caps, list) or not all(isinstance(c, str) and c for c in caps):
            raise TaskRejectedError("parameters_json: 'capabilities' must be a list of non-empty strings")
        robots = params.get("robots", 1)
        if isinstance(robots, bool) or not isinstance(robots, int) or not 1 <= robots <= self.cfg.max_group_robots:
            raise TaskRejectedError(f"parameters_json: 'robots' must be an integer in [1, {self.cfg.max_group_robots}]")
        if robots > 1:
            if robot_id.strip():
                raise TaskRejectedError("robot_id: a coordinated task (robots > 1) picks its robots itself")
            try:
                phases = parse_action_sequence(params, text, robots, self.places)
            except ValueError as exc:
                raise TaskRejectedError(f"parameters_json: {exc}") from exc
            params["action_sequence"] = sequence_to_json(phases)
        elif "action_sequence" in params:
            raise TaskRejectedError("parameters_json: 'action_sequence' needs 'robots' > 1")
        task, new = self.store.submit_once(text, priority, self.clock(), requested_robot=robot_id.strip(),
                                           parameters=params, location=location, capabilities=caps, robots=robots,
                                           submit_key=key, submit_digest=digest)
        if not new:  # another manager stored the key between the look-up and the insert
            return self._repeated(task, (text, priority, robot_id.strip(), digest)), False
        _log.info("task %s submitted: %r, priority %d", task.id, text, priority)
        return task, True

    def _repeated(self, task: StoredTask, asked: tuple[str, int, str, str]) -> StoredTask:
        """The stored task whose submit_key a submit carries, when it asks for the same (description,
        priority, robot_id, parameters digest); TaskRejectedError naming what differs otherwise."""
        held = (task.description, task.priority, task.requested_robot, task.submit_digest)
        if asked != held:
            differs = ", ".join(name for name, a, h in zip(("description", "priority", "robot_id", "parameters_json"),
                                                           asked, held, strict=True) if a != h)
            raise TaskRejectedError(f"parameters_json: {SUBMIT_KEY} {task.submit_key!r:.80} already names task "
                                    f"{task.id}, submitted with another {differs}")
        self.repeated_submits += 1
        _log.info("task %s submitted again (%s %r): already %s", task.id, SUBMIT_KEY, task.submit_key, task.state)
        return task

    def cancel(self, task_id: str) -> tuple[StoredTask | None, str]:
        """(the task as it was, message); an active task's robot must be told (the node publishes it)."""
        self._active.pop(task_id, None)
        task = self.store.cancel(task_id, "cancelled by request", self.clock(), changes=self._changes)
        if task is None:
            return None, f"no task {task_id!r}"
        if task.state in (SUCCEEDED, FAILED, CANCELLED):
            return task, f"task {task_id} already {task.state}"
        _log.info("task %s cancelled (was %s)", task_id, task.state)
        return task, f"task {task_id} cancelled (was {task.state})"

    def list_tasks(self, state: str = "") -> list[StoredTask]:
        if state and state not in TASK_STATES:
            raise ValueError(f"state {state!r}: expected one of {', '.join(TASK_STATES)} or empty")
        return self.store.list_tasks(state)

    def set_places(self, places: Mapping[str, tuple[float, float]]) -> None:
        self.places.update(places)

    # -- robot inputs -------------------------------------------------------------------------

    def on_robot_status(self, doc: Mapping, now: float) -> list[str]:
        """A /robot_status document (already parsed by its JSON form); raises ValueError on absurd
        values. Returns task ids the robot reports running that are no longer its own (to cancel there)."""
        robot_id = doc["robot_id"].strip()
        if not robot_id:
            raise ValueError("robot_id is empty")
        battery = float(doc["battery"])
        if not 0.0 <= battery <= 100.0:
            raise ValueError(f"{robot_id}: battery {battery} outside 0..100 %")
        pos = doc["position"]
        if len(pos) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in pos[:3]):
            raise ValueError(f"{robot_id}: position {pos!r:.60} is not [x, y(, z)] of finite numbers")
        caps = doc["capabilities"]
        if not all(isinstance(c, str) for c in caps):
            raise ValueError(f"{robot_id}: capabilities must be strings")
        if robot_id not in self.robots and len(self.robots) >= self.cfg.max_robots:
            oldest = min(self.robots.values(), key=lambda v: v.last_heard)
            if not oldest.offline:
                raise ValueError(f"{robot_id}: already tracking {self.cfg.max_robots} robots (~max_robots)")
            del self.robots[oldest.robot.robot_id]
        current = doc.get("current_task_id") or ""
        view = RobotView(Robot(robot_id, float(pos[0]), float(pos[1]), battery, frozenset(caps)), doc["status"],
                         current, now)
        previous = self.robots.get(robot_id)
        if previous is not None and previous.offline:
            _log.info("robot %s back online (%s)", robot_id, view.status)
        self.robots[robot_id] = view
        self._note_last_task(robot_id, doc, now)
        if current and self._active.get(current) != robot_id:
            # not known as this robot's task since the last round: ask the store (a round trip, rare)
            task = self.store.get(current)
            # a finished task may still show for a moment after its feedback: only a task taken back,
            # cancelled, given to another robot or unknown is stopped on the robot
            if (task is None or task.state in (PENDING, CANCELLED)
                    or (task.state in ACTIVE_STATES and task.robot_id != robot_id)):
                return [current]
        return []

    def _note_last_task(self, robot_id: str, doc: Mapping, now: float) -> None:
        """A status may repeat how the robot's last task ended (`last_task_id`, `last_task_state`,
        `last_task_reason`): a `/task_feedback` lost while this manager was down is not a task lost
        or run twice. Applied when the task is still active on that robot (before the first round
        the store is asked; afterwards only a task the last round saw active on that robot)."""
        last, state = doc.get("last_task_id"), doc.get("last_task_state")
        if not (isinstance(last, str) and last and state in (TaskState.SUCCEEDED, TaskState.FAILED,
                                                             TaskState.CANCELLED)):
            return
        if self.started is not None and self._active.get(last) != robot_id:
            return
        self._active.pop(last, None)
        new_state = self.store.finish(last, robot_id, state, str(doc.get("last_task_reason") or ""), now,
                                      self.cfg.max_retries, changes=self._changes, manager_id=self.manager_id)
        if new_state is not None:
            _log.info("task %s %s on %s (from its status) -> %s", last, state, robot_id, new_state)

    def on_feedback(self, doc: Mapping, now: float) -> str | None:
        """A /task_feedback document; the task's new state (None for `started`). Raises ValueError
        for an unknown robot or a task that is not active on that robot."""
        robot_id, task_id, state = doc["robot_id"], doc["task_id"], doc["state"]
        # the store decides, not whether the robot's status was heard yet: after a restart a robot's
        # feedback may come first, and dropping a `succeeded` would run the task again
        who = robot_id if robot_id in self.robots else f"unknown robot {robot_id!r:.40} (no /robot_status heard)"
        reason = str(doc.get("reason") or "")
        if state == TaskState.STARTED:
            if not self.store.mark_running(task_id, robot_id, now):
                raise ValueError(f"{who} started task {task_id!r:.40}, which is not assigned to it")
            return None
        self._active.pop(task_id, None)
        new_state = self.store.finish(task_id, robot_id, state, reason, now, self.cfg.max_retries,
                                      changes=self._changes, manager_id=self.manager_id)
        if new_state is None:
            task = self.store.get(task_id)
            if task is not None and task.state in (SUCCEEDED, FAILED, CANCELLED) and task.robot_id in ("", robot_id):
                _log.debug("late %s from %s for task %s, already %s", state, robot_id, task_id, task.state)
                return None
            raise ValueError(f"{who} reported {state} for task {task_id!r:.40}, which is not active on it")
        _log.info("task %s %s on %s%s -> %s", task_id, state, robot_id, f" ({reason})" if reason else "", new_state)
        return new_state

    # -- the round ----------------------------------------------------------------------------

    def tick(self, now: float) -> RoundResult:
        """Mark silent robots offline, take back tasks their robots lost, then one assignment round."""
        result = RoundResult()
        if self.started is None:
            self.started = now
        for view in self.robots.values():
            if not view.offline and now - view.last_heard > self.cfg.robot_timeout_s:
                view.offline = True
                result.went_offline.append(view.robot.robot_id)
                _log.warning("robot %s silent for %.1f s: offline", view.robot.robot_id, now - view.last_heard)
        active = self.store.active()
        self._active = {t.id: t.robot_id for t in active}
        active_ids = set(self._active)
        self._sent = {k: v for k, v in self._sent.items() if k in active_ids}
        for task in active:
            reason = self._lost_reason(task, now)
            if reason:
                self._active.pop(task.id, None)
                if self.store.requeue(task.id, reason, now, changes=self._changes):
                    result.requeued.append((task.id, reason))
                    if task.parent_id:
                        _log.warning("step %s of coordinated task %s lost: %s", task.id, task.parent_id, reason)
                    else:
                        _log.warning("task %s back to pending: %s", task.id, reason)
            elif (task.state == ASSIGNED and self._robot_current(task.robot_id) != task.id
                  and now - self._sent.get(task.id, task.assignment_time) >= self.cfg.resend_period_s):
                # not taken up yet: the message may have been lost (or sent before a restart)
                self._sent[task.id] = now
                result.resend.append(task)
        free = [v.robot for v in self.robots.values()
                if not v.offline and v.status == RobotState.AVAILABLE and not v.current_task_id
                and v.robot.battery >= self.cfg.min_battery]
        free = self._group_round(now, free)
        result.groups = self.take_changes()
        if free:
            # twice the candidates a round weighs, so that tasks no free robot can take leave room
            scan = min(self.cfg.max_pending_scan, 2 * self.cfg.candidates_per_robot * len(free))
            result.assigned = self.store.assign_round(lambda pending, busy: self._decide(pending, busy, free),
                                                      self.manager_id, now, scan)
            for task in result.assigned:
                self._active[task.id] = task.robot_id
                _log.info("task %s assigned to %s", task.id, task.robot_id)
        self._prune(now)
        return result

    def _prune(self, now: float) -> None:
        """Every `prune_period_s` one bounded step (sooner again while a step found more than it deletes)."""
        if self._pruned_at is not None and now - self._pruned_at < self.cfg.prune_period_s:
            return
        keep_s = self.cfg.history_keep_days * 86400.0
        batch = 10_000
        deleted = self.store.prune_history(now - keep_s if keep_s > 0 else None, self.cfg.history_keep_rows, batch)
        # a full batch means more to go: the next round prunes again instead of waiting a period
        self._pruned_at = None if deleted >= batch else now
        if deleted:
            _log.info("history: %d old events pruned", deleted)

    def take_changes(self) -> list[GroupChange]:
        """The coordinated tasks' changes since the last call, in order: the node sends their steps
        (assigned, cancelled) and publishes each on /vla_coordination."""
        changes, self._changes = self._changes, []
        for change in changes:
            _log.info("coordinated task %s: %s (phase %d, robots %s)%s", change.task_id, change.event, change.phase,
                      ", ".join(r or "-" for r in change.robots), f": {change.reason}" if change.reason else "")
        return changes

    def _group_round(self, now: float, free: list[Robot]) -> list[Robot]:
        """Coordinated tasks before single ones: slots whose robot is lost at the barrier are vacated,
        vacant slots get the cheapest free capable robot (or the task fails after `replace_timeout_s`),
        then each waiting coordinated task (queue order) gets its k robots chosen together at least
        cost, or waits whole. The free robots left for the single tasks come back."""
        groups = self.store.groups()
        reserved = {s.robot_id for _, slots in groups for s in slots if s.robot_id}
        free = [r for r in free if r.robot_id not in reserved]
        for parent, slots in groups:
            phases = sequence_from_json(parent.parameters["action_sequence"])
            for slot in slots:
                if slot.state == SLOT_DONE:
                    reason = self._waiting_robot_lost(slot.robot_id, now)
                    if reason:
                        self._note(self.store.vacate(parent.id, slot.slot, reason, now))
                        continue
                if slot.state != SLOT_VACANT:
                    continue
                job = Job(parent.id, parent.priority, phases[slot.phase][slot.slot].location,
                          frozenset(parent.capabilities))
                # only robots heard since the slot fell vacant: the robot that just handed its step back
                # may still look available in a status sent before its fault
                able = [r for r in free if job.capabilities <= r.capabilities
                        and self.robots[r.robot_id].last_heard >= (slot.vacant_since or now)]
                if able:
                    best = min(able, key=lambda r: cost(r, job, self.cost_model))
                    change = self.store.fill_slot(parent.id, slot.slot, best.robot_id, self.manager_id, now)
                    if change is not None:
                        free.remove(best)
                        self._note(change)
                elif now - (slot.vacant_since or now) >= self.cfg.replace_timeout_s:
                    self._note(self.store.fail_group(
                        parent.id, f"slot {slot.slot} found no replacement robot within "
                                   f"{self.cfg.replace_timeout_s:g} s", now))
        if len(free) < 2:
            return free
        for parent in self.store.pending_groups(self.cfg.max_pending_scan):
            if len(free) < parent.robots:
                continue
            first = sequence_from_json(parent.parameters["action_sequence"])[0]
            jobs = [Job(f"{parent.id}#{i}", parent.priority, step.location, frozenset(parent.capabilities))
                    for i, step in enumerate(first)]
            pairs = dict(assign(jobs, free, self.cost_model))
            if len(pairs) < len(jobs):
                continue  # all k together or none: a part of the group would only hold robots idle
            robot_ids = [pairs[job.task_id] for job in jobs]
            change = self.store.start_group(parent.id, robot_ids, self.manager_id, now)
            if change is not None:
                self._note(change)
                free = [r for r in free if r.robot_id not in robot_ids]
                if len(free) < 2:
                    break
        return free

    def _waiting_robot_lost(self, robot_id: str, now: float) -> str:
        """Why a robot held by a coordinated task between phases can no longer take its next step."""
        view = self.robots.get(robot_id)
        if view is None:
            if now - (self.started or now) > self.cfg.robot_timeout_s:
                return f"{robot_id} not heard since the manager started"
            return ""
        if view.offline:
            return f"{robot_id} offline (silent)"
        if view.status in (RobotState.ERROR, RobotState.OFFLINE, RobotState.CHARGING):
            return f"{robot_id} reports {view.status}"
        return ""

    def _note(self, change: GroupChange | None) -> None:
        if change is not None:
            self._changes.append(change)

    def _decide(self, pending: list[StoredTask], busy: set[str], robots: list[Robot]) -> list[tuple[str, str]]:
        free = [r for r in robots if r.robot_id not in busy]
        if not free:
            return []
        limit = self.cfg.candidates_per_robot * len(free)
        jobs = []
        free_ids = {r.robot_id for r in free}
        takers: dict[frozenset[str], set[str]] = {}  # requirement set -> free robots that meet it
        for task in pending:
            job = Job(task.id, task.priority, task.location, frozenset(task.capabilities), task.requested_robot,
                      self._retry_elsewhere(task))
            able = takers.get(job.capabilities)
            if able is None:
                able = takers[job.capabilities] = {r.robot_id for r in free if job.capabilities <= r.capabilities}
            # a task no free robot can take does not crowd the round (it waits for a capable robot)
            if (able - job.exclude and not job.robot_id) or (job.robot_id in able and job.robot_id in free_ids):
                jobs.append(job)
                if len(jobs) >= limit:
                    break
        return assign(jobs, free, self.cost_model)

    def _retry_elsewhere(self, task: StoredTask) -> frozenset[str]:
        """The robots a retried task may not go back to: those it failed on or was lost with, as long as
        a capable robot it has not failed on is in service (available, busy or charging: it waits for
        that one). A robot that got stuck on a task (boxed in, a target it cannot reach from where it
        stands) would most likely fail the same way again; once every capable robot has tried, any may."""
        if task.requested_robot or task.reasons_json == "[]":   # the common case, without parsing JSON
            return frozenset()
        failed = task.failed_on
        if not failed:
            return failed
        need = frozenset(task.capabilities)
        for robot_id, view in self.robots.items():
            if (robot_id not in failed and not view.offline and need <= view.robot.capabilities
                    and view.status not in (RobotState.ERROR, RobotState.OFFLINE)):
                return failed
        return frozenset()

    def _lost_reason(self, task: StoredTask, now: float) -> str:
        view = self.robots.get(task.robot_id)
        if view is None:
            # after a restart the robot has ~robot_timeout to be heard again
            if now - max(self.started or now, task.updated_time) > self.cfg.robot_timeout_s:
                return f"robot {task.robot_id} not heard since the manager started"
            return ""
        if view.offline:
            return f"robot {task.robot_id} offline (silent)"
        if view.status in (RobotState.ERROR, RobotState.OFFLINE):
            return f"robot {task.robot_id} reports {view.status}"
        if view.current_task_id != task.id and now - task.assignment_time > self.cfg.ack_timeout_s:
            return f"robot {task.robot_id} did not take it up within {self.cfg.ack_timeout_s:g} s"
        return ""

    def _robot_current(self, robot_id: str) -> str:
        view = self.robots.get(robot_id)
        return view.current_task_id if view else ""

    def named_place(self, description: str) -> tuple[float, float] | None:
        """The location of the one known place a description names ("go to the red cube" names the place
        `red cube`), whole words, any case; None when it names none or several (a place whose name is
        part of a longer one named too counts once). Travel cost then picks the nearest robot."""
        words = _words(description)
        named = [p for p in self.places if _words(p).strip() and _words(p) in words]
        named = [p for p in named if not any(p != q and _words(p) in _words(q) for q in named)]
        return self.places[named[0]] if len(named) == 1 else None

    def _location(self, params: dict) -> tuple[float, float] | None:
        if "location" in params:
            loc = params["location"]
            if (not isinstance(loc, list) or len(loc) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in loc)):
                raise TaskRejectedError("parameters_json: 'location' must be [x, y] of finite numbers")
            return float(loc[0]), float(loc[1])
        if "place" in params:
            place = params["place"]
            if not isinstance(place, str) or place not in self.places:
                known = ", ".join(sorted(self.places)) or "none"
                raise TaskRejectedError(f"parameters_json: unknown place {place!r:.40} (known: {known})")
            return self.places[place]
        return None


_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> str:
    """Lower-case words between single spaces, with a space at each end (for whole-word matching)."""
    return " " + " ".join(_WORD.findall(text.lower())) + " "


def _parse_parameters(text: str) -> dict:
    if not text or not text.strip():
        return {}
    try:
        params = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, TypeError) as exc:
        raise TaskRejectedError(f"parameters_json is not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise TaskRejectedError("parameters_json must be one JSON object")
    return params


def _submit_key(params: dict) -> str:
    """The submit's idempotency key ("" for none: absent or empty)."""
    key = params.get(SUBMIT_KEY, "")
    if not isinstance(key, str):
        raise TaskRejectedError(f"parameters_json: '{SUBMIT_KEY}' must be a string")
    if len(key.encode()) > MAX_SUBMIT_KEY_BYTES:
        raise TaskRejectedError(f"parameters_json: '{SUBMIT_KEY}' is longer than {MAX_SUBMIT_KEY_BYTES} bytes")
    return key


def _digest(params: dict) -> str:
    """A keyed submit's parameters as its client sent them, in one canonical form, hashed: the same
    request sent again hashes the same whatever the key order or spacing."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def task_document(task: StoredTask, state: str = "") -> dict:
    """The `task` object of /task_assignment: vla_msgs/Task's fields plus the resolved location."""
    return {
        "id": task.id, "description": task.description, "priority": task.priority, "scheduled_time": 0.0,
        "created_time": task.created_time, "state": state or task.state, "robot_id": task.robot_id,
        "parameters_json": task.parameters_json, "location": list(task.location) if task.location else None,
        "capabilities": list(task.capabilities), "attempt": task.attempts,
        # a step of a coordinated task: which task, phase and slot (the agent repeats it in its feedback)
        **({"coordination": task.parameters.get("coordination")} if task.parent_id else {}),
    }


def load_places(path: str) -> dict[str, tuple[float, float]]:
    """A places file: a YAML mapping name -> [x, y]; raises ConfigError naming a bad entry."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"~places_file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"~places_file {path}: expected a mapping name -> [x, y]")
    places = {}
    for name, xy in doc.items():
        if (not isinstance(xy, list) or len(xy) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in xy)):
            raise ConfigError(f"~places_file {path}: place {name!r} must be [x, y] of finite numbers, got {xy!r}")
        places[str(name)] = (float(xy[0]), float(xy[1]))
    return places


def parse_submit_document(text: str | bytes) -> tuple[str, int, str, str]:
    """The JSON submit topic's document -> submit_task's (description, priority, robot_id,
    parameters_json). `{"description": "go to the red cube", "priority": 1, "robot_id": "",
    "parameters": {"place": "red cube"}}`; only description is required; no timestamp needed, so
    that `rostopic pub` can send it by hand. Raises TaskRejectedError naming the field."""
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, TypeError) as exc:
        raise TaskRejectedError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise TaskRejectedError("expected one JSON object with 'description'")
    description = doc.get("description")
    if not isinstance(description, str):
        raise TaskRejectedError("'description' must be a string")
    priority = doc.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TaskRejectedError(f"'priority' must be an integer, got {priority!r:.40}")
    robot_id = doc.get("robot_id", "") or ""
    if not isinstance(robot_id, str):
        raise TaskRejectedError("'robot_id' must be a string")
    params = doc.get("parameters", {})
    if "parameters_json" in doc:
        if not isinstance(doc["parameters_json"], str):
            raise TaskRejectedError("'parameters_json' must be a string holding a JSON object")
        return description, priority, robot_id, doc["parameters_json"]
    if not isinstance(params, dict):
        raise TaskRejectedError("'parameters' must be a JSON object")
    return description, priority, robot_id, json.dumps(params)
