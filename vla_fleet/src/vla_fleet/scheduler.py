"""The scheduler's logic, without ROS: requests checked into schedules, due ones submitted, recurrence, retries.

A schedule runs at a time, after a delay, or recurring (every `interval_s`, or on a cron expression
read by croniter), with a priority. `Scheduler.run_due(now, submit)` hands every ready schedule to
`submit` (the fleet manager's submit_task, injected); after downtime a recurring schedule runs once
for all the slots it missed, then waits for its next slot after `now`. A submit that fails is tried
again with exponential backoff and the slot stays due until one succeeds. Every try of one slot carries
the same idempotency key in its parameters_json (`submit_key`: `<schedule id>@<slot, ROS time [s] to the
microsecond>`), and the fleet manager answers a key it has stored with that task: a try whose answer was
lost (a timeout, the manager restarted after its commit, this node killed before recording the answer)
and is sent again is the same task, so each slot is submitted exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from vla_fleet.schedule_store import AT, CRON, INTERVAL, Schedule, ScheduleStore
from vla_fleet.store import DEFAULT_DB_URL, SUBMIT_KEY
from vla_monitoring.config import ConfigError, param
from vla_msgs import tasks

_log = logging.getLogger(__name__)

# parameters_json keys the scheduler reads (and takes out before the rest goes to submit_task)
DELAY_KEY, INTERVAL_KEY, CRON_KEY = "delay_s", "interval_s", "cron"
MAX_PARAMETERS_BYTES = 16 * 1024
# A cron expression that fires less than once in this many years is refused as one that never fires.
CRON_SEARCH_YEARS = 5


@dataclass
class SchedulerConfig:
    db_url: str = param(DEFAULT_DB_URL, nonempty=True,
                        help="the fleet's database: sqlite:///<file> (WAL), shared with fleet_manager_node")
    poll_period_s: float = param(0.1, lo=0.01, hi=10.0, help="how often due schedules are looked for [s, ROS time]")
    max_submits_per_poll: int = param(100, lo=1, hi=10000, help="schedules submitted at most per poll")
    min_priority: int = param(0, lo=-1000000, hi=1000000, help="lowest priority number accepted (runs first)")
    max_priority: int = param(1000, lo=-1000000, hi=1000000, help="highest priority number accepted (runs last)")
    min_interval_s: float = param(1.0, lo=0.01, hi=86400.0, help="shortest recurrence accepted [s]")
    max_interval_s: float = param(31622400.0, lo=1.0, hi=3.2e8, help="longest recurrence accepted [s] (366 days)")
    max_ahead_s: float = param(316224000.0, lo=1.0, hi=3.2e9,
                               help="farthest in the future a schedule may start [s] (about 10 years)")
    retry_initial_s: float = param(1.0, lo=0.01, hi=3600.0, help="first wait after a failed submit [s]")
    retry_max_s: float = param(60.0, lo=0.01, hi=86400.0, help="longest wait between submit retries [s]")
    cron_timezone: str = param("UTC", nonempty=True, help="time zone cron expressions are read in (IANA name)")
    submit_timeout_s: float = param(10.0, lo=0.1, hi=600.0,
                                    help="a submit_task call unanswered this long is a failed submit, tried again "
                                         "with the slot's submit_key [s, wall time: a network wait]")

    def check(self) -> None:
        if self.min_priority > self.max_priority:
            raise ConfigError(f"~min_priority ({self.min_priority}) must be <= ~max_priority ({self.max_priority})")
        if self.min_interval_s > self.max_interval_s:
            raise ConfigError(f"~min_interval_s ({self.min_interval_s:g}) must be <= ~max_interval_s "
                              f"({self.max_interval_s:g})")
        if self.retry_initial_s > self.retry_max_s:
            raise ConfigError(f"~retry_initial_s ({self.retry_initial_s:g}) must be <= ~retry_max_s "
                              f"({self.retry_max_s:g})")
        try:
            ZoneInfo(self.cron_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"~cron_timezone must be an IANA time zone name, got {self.cron_timezone!r}") from exc


class ScheduleError(ValueError):
    """A schedule request that is refused; the message says why."""


class SubmitError(Exception):
    """The manager could not be reached (down, timed out): the slot stays due and is tried again."""


class SubmitRejectedError(Exception):
    """The manager answered and refused the task: retrying the same request would be refused again."""


@dataclass(frozen=True)
class Request:
    """One schedule_task request, as the service carries it."""
    description: str
    priority: int = 0
    scheduled_time: float = 0.0    # earliest start [s]; 0 = now
    robot_id: str = ""
    parameters_json: str = ""      # may hold delay_s, interval_s or cron besides the manager's own keys


# submit(schedule) -> the manager's task id; raises SubmitError or SubmitRejectedError
Submit = Callable[[Schedule], str]


@dataclass(frozen=True)
class Outcome:
    schedule_id: str
    task_id: str = ""     # set when submitted
    error: str = ""       # set when the submit failed or was refused
    retry: bool = False   # the slot stays due (the manager was not reached)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _number(doc: dict, key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScheduleError(f"parameters_json '{key}' must be a finite number of seconds, got {value!r}")
    return float(value)


class Scheduler:
    def __init__(self, store: ScheduleStore, config: SchedulerConfig,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.store = store
        self.cfg = config
        self._tz = ZoneInfo(config.cron_timezone)
        self._new_id = new_id
        self.submitted = 0          # successful submits since start
        self.failed_submits = 0     # submits that will be retried
        self.rejected = 0           # submits the manager refused

    # ------------------------------------------------------------------ requests
    def _parameters(self, text: str) -> dict:
        if not text.strip():
            return {}
        if len(text.encode("utf-8", "surrogatepass")) > MAX_PARAMETERS_BYTES:
            raise ScheduleError(f"parameters_json is longer than {MAX_PARAMETERS_BYTES} bytes")
        try:
            doc = json.loads(text, parse_constant=_no_constant)
        except ValueError as exc:
            raise ScheduleError(f"parameters_json is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ScheduleError(f"parameters_json must be a JSON object, got {type(doc).__name__}")
        return doc

    def _cron_next(self, expression: str, after: float) -> float:
        try:
            it = croniter(expression, datetime.fromtimestamp(after, self._tz),
                          max_years_between_matches=CRON_SEARCH_YEARS)
            return float(it.get_next(float))
        except CroniterBadDateError as exc:
            raise ScheduleError(f"cron expression {expression!r} never fires (no time in "
                                f"{CRON_SEARCH_YEARS} years matches it)") from exc
        except (CroniterBadCronError, ValueError, KeyError) as exc:
            raise ScheduleError(f"cron expression {expression!r} is not valid: {exc}") from exc

    def parse(self, req: Request, now: float) -> tuple[Schedule, str]:
        """The schedule a request asks for and a note for the reply; raises ScheduleError saying why not."""
        try:
            command = tasks.parse_task_command(req.description)
        except tasks.TaskRejectedError as exc:
            raise ScheduleError(f"description refused: {exc}") from exc
        if command.idle:
            raise ScheduleError(f"description {req.description.strip()!r} is an idle word, not a task")
        if not self.cfg.min_priority <= req.priority <= self.cfg.max_priority:
            raise ScheduleError(f"priority must be in [{self.cfg.min_priority}, {self.cfg.max_priority}], "
                                f"got {req.priority}")
        if not math.isfinite(req.scheduled_time) or req.scheduled_time < 0:
            raise ScheduleError(f"scheduled_time must be 0 (now) or a time in seconds, got {req.scheduled_time!r}")
        if req.scheduled_time > now + self.cfg.max_ahead_s:
            raise ScheduleError(f"scheduled_time {req.scheduled_time:.3f} is more than max_ahead_s "
                                f"({self.cfg.max_ahead_s:g} s) ahead of now ({now:.3f})")
        doc = self._parameters(req.parameters_json)
        delay_s, interval_s = _number(doc, DELAY_KEY), _number(doc, INTERVAL_KEY)
        cron = doc.get(CRON_KEY)
        if cron is not None and (not isinstance(cron, str) or not cron.strip()):
            raise ScheduleError(f"parameters_json 'cron' must be a cron expression string, got {cron!r}")
        if interval_s is not None and cron is not None:
            raise ScheduleError("parameters_json may hold 'interval_s' or 'cron', not both")
        if SUBMIT_KEY in doc:
            raise ScheduleError(f"parameters_json '{SUBMIT_KEY}' is the scheduler's own: each slot gets one")
        if delay_s is not None and req.scheduled_time > 0:
            raise ScheduleError("give scheduled_time or parameters_json 'delay_s', not both")
        if delay_s is not None and not 0.0 <= delay_s <= self.cfg.max_ahead_s:
            raise ScheduleError(f"delay_s must be in [0, {self.cfg.max_ahead_s:g}] s, got {delay_s:g}")
        if interval_s is not None and not self.cfg.min_interval_s <= interval_s <= self.cfg.max_interval_s:
            raise ScheduleError(f"interval_s must be in [{self.cfg.min_interval_s:g}, {self.cfg.max_interval_s:g}] s, "
                                f"got {interval_s:g}")
        rest = {k: v for k, v in doc.items() if k not in (DELAY_KEY, INTERVAL_KEY, CRON_KEY)}

        note = ""
        start = now + delay_s if delay_s is not None else req.scheduled_time or now
        if req.scheduled_time and req.scheduled_time < now:
            start, note = now, f"scheduled_time is {now - req.scheduled_time:.3f} s in the past: runs now"
        kind = AT
        if interval_s is not None:
            kind = INTERVAL
        elif cron is not None:
            kind, cron = CRON, cron.strip()
            first = self._cron_next(cron, start - 1e-6)  # a start on a slot runs on it
            second = self._cron_next(cron, first)
            if second - first < self.cfg.min_interval_s:
                raise ScheduleError(f"cron expression {cron!r} fires every {second - first:g} s, more often than "
                                    f"min_interval_s ({self.cfg.min_interval_s:g} s)")
            start = first
        schedule = Schedule(id=self._new_id(), description=command.description, priority=req.priority,
                            robot_id=req.robot_id.strip(), parameters_json=json.dumps(rest), kind=kind,
                            interval_s=interval_s, cron=cron if kind == CRON else None, due=start, ready=start,
                            created=now)
        return schedule, note

    def add(self, req: Request, now: float) -> tuple[Schedule, str]:
        """Checks and stores a request; returns the schedule and a note (empty, or what was adjusted)."""
        schedule, note = self.parse(req, now)
        self.store.add(schedule)
        _log.info("schedule %s: %r (%s) first at %.3f, priority %d", schedule.id, schedule.description,
                  schedule.kind, schedule.due, schedule.priority)
        return schedule, note

    def cancel(self, schedule_id: str) -> tuple[bool, str]:
        if self.store.cancel(schedule_id):
            _log.info("schedule %s cancelled", schedule_id)
            return True, f"schedule {schedule_id} cancelled"
        found = self.store.get(schedule_id)
        if found is None:
            return False, f"no schedule {schedule_id!r}"
        return False, f"schedule {schedule_id} is already {found.state}"

    # ------------------------------------------------------------------ running
    def next_due(self, schedule: Schedule, now: float) -> float | None:
        """The first slot after `now` (None for a one-shot): every slot missed before `now` is skipped, so a
        recurring schedule runs once after downtime, not once per missed slot."""
        if schedule.kind == INTERVAL:
            missed = math.floor((now - schedule.due) / schedule.interval_s) + 1 if now >= schedule.due else 1
            return schedule.due + missed * schedule.interval_s
        if schedule.kind == CRON:
            return self._cron_next(schedule.cron, max(now, schedule.due))
        return None

    def backoff_s(self, attempts: int) -> float:
        """The wait before the next try after `attempts` failed ones (1, 2, ...): doubling up to retry_max_s."""
        return min(self.cfg.retry_max_s, self.cfg.retry_initial_s * 2.0 ** min(attempts - 1, 60))

    def run_due(self, now: float, submit: Submit) -> list[Outcome]:
        """Submits every schedule ready at `now` (at most max_submits_per_poll), earliest then lowest priority
        number first; returns what happened to each."""
        outcomes = []
        for schedule in self.store.ready(now, self.cfg.max_submits_per_poll):
            outcomes.append(self._run(schedule, now, submit))
            if outcomes[-1].retry:
                break  # the manager is unreachable: the rest stay ready for the next poll, not a failure each
        return outcomes

    def _run(self, schedule: Schedule, now: float, submit: Submit) -> Outcome:
        try:
            task_id = submit(with_submit_key(schedule))
        except SubmitError as exc:
            attempts = schedule.attempts + 1
            wait_s = self.backoff_s(attempts)
            self.store.retry_at(schedule.id, now + wait_s, str(exc))
            self.failed_submits += 1
            _log.warning("schedule %s: submit failed (try %d), again in %.3g s: %s", schedule.id, attempts, wait_s, exc)
            return Outcome(schedule.id, error=str(exc), retry=True)
        except SubmitRejectedError as exc:
            next_due = self._next_or_none(schedule, now)
            self.store.rejected(schedule.id, str(exc), next_due)
            self.rejected += 1
            _log.error("schedule %s: the manager refused %r: %s", schedule.id, schedule.description, exc)
            return Outcome(schedule.id, error=str(exc))
        self.store.submitted(schedule.id, task_id, self._next_or_none(schedule, now))
        self.submitted += 1
        _log.info("schedule %s: submitted %r as task %s (slot %.3f)", schedule.id, schedule.description, task_id,
                  schedule.due)
        return Outcome(schedule.id, task_id=task_id)

    def _next_or_none(self, schedule: Schedule, now: float) -> float | None:
        try:
            return self.next_due(schedule, now)
        except ScheduleError as exc:  # a cron that fired before and never will again: finished, not an error
            _log.warning("schedule %s: %s; no further runs", schedule.id, exc)
            return None


def submit_key(schedule: Schedule) -> str:
    """The idempotency key of the schedule's current slot: the same on every try of that slot, another on the
    next slot (slots are at least min_interval_s >= 0.01 s apart; the slot is written to the microsecond)."""
    return f"{schedule.id}@{schedule.due:.6f}"


def with_submit_key(schedule: Schedule) -> Schedule:
    """The schedule as submitted: its parameters_json with the slot's `submit_key` added."""
    params = json.loads(schedule.parameters_json or "{}")
    params[SUBMIT_KEY] = submit_key(schedule)
    return dataclasses.replace(schedule, parameters_json=json.dumps(params))
