"""The maintenance queue: tasks run one at a time on a worker thread of their own, in the order asked.

Whoever asks (the run_task service, the schedule) only enqueues and may wait for the result with a bound;
the queue has a size, and a task asked again while it still waits is not queued twice. Every run is
reported through the injected `report(task, status, details)`: `started`, then `completed`, `warning`
(the task ran and found problems: `details["problems"]`) or `failed` (it could not do its work:
`details["reason"]`). A failure never stops the worker: the next task runs.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vla_fleet.maintenance.layout import TaskFailed
from vla_msgs.states import MAINTENANCE_TASKS

_log = logging.getLogger(__name__)

STARTED, COMPLETED, WARNING, FAILED = "started", "completed", "warning", "failed"
# tasks that take one argument after the name (`restore_backup backup-20261126T020000Z.tar.gz`)
WITH_ARGUMENT = {"restore_backup"}

TaskFn = Callable[[str], dict]                  # argument -> details (with a "problems" list)
Report = Callable[[str, str, dict], None]      # task, status, details


class RequestError(ValueError):
    """A run_task request that names no known task or has a bad argument; the message says which."""


class QueueFullError(Exception):
    """As many tasks wait as the queue holds."""


def parse_request(text: str) -> tuple[str, str]:
    """'<task> [argument]' -> (task, argument); RequestError saying what is allowed otherwise."""
    parts = text.strip().split(maxsplit=1)
    if not parts or parts[0] not in MAINTENANCE_TASKS:
        raise RequestError(f"unknown task {text.strip()[:60]!r}; one of {', '.join(MAINTENANCE_TASKS)}")
    task, argument = parts[0], parts[1].strip() if len(parts) > 1 else ""
    if argument and task not in WITH_ARGUMENT:
        raise RequestError(f"{task} takes no argument, got {argument[:60]!r}")
    if argument and ("/" in argument or argument.startswith(".") or len(argument) > 200):
        raise RequestError(f"{task}'s argument must be a backup's file name, got {argument[:60]!r}")
    return task, argument


@dataclass
class Run:
    id: int
    task: str
    argument: str
    source: str                                  # "request" or "schedule"
    done: threading.Event = field(default_factory=threading.Event)
    status: str = ""
    details: dict = field(default_factory=dict)


class MaintenanceRunner:
    def __init__(self, tasks: dict[str, TaskFn], report: Report, queue_size: int,
                 wall: Callable[[], float] = time.monotonic):
        self.tasks = tasks
        self.report = report
        self.wall = wall
        self._queue: queue.Queue[Run | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._waiting: dict[tuple[str, str], Run] = {}
        self._ids = itertools.count(1)
        self.running: Run | None = None
        self.last: dict[str, Run] = {}           # the newest finished run of each task
        self.counts = {COMPLETED: 0, WARNING: 0, FAILED: 0}
        self._thread = threading.Thread(target=self._work, name="maintenance", daemon=True)
        self._thread.start()

    def submit(self, task: str, argument: str = "", source: str = "request") -> tuple[Run, bool]:
        """Queues a run; (the run, False) when the same run already waits. QueueFullError when full."""
        if task not in self.tasks:
            raise RequestError(f"unknown task {task!r}")
        with self._lock:
            waiting = self._waiting.get((task, argument))
            if waiting is not None:
                return waiting, False
            run = Run(next(self._ids), task, argument, source)
            try:
                self._queue.put_nowait(run)
            except queue.Full:
                raise QueueFullError(f"{self._queue.qsize()} tasks already wait") from None
            self._waiting[(task, argument)] = run
        return run, True

    def pending(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Lets the running task finish; the waiting ones are dropped."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while (run := self._queue.get()) is not None:
            with self._lock:
                self._waiting.pop((run.task, run.argument), None)
                self.running = run
            self._run(run)
            with self._lock:
                self.running = None
                self.last[run.task] = run
                self.counts[run.status] += 1
            run.done.set()

    def _run(self, run: Run) -> None:
        head = {"run_id": run.id, "source": run.source} | ({"argument": run.argument} if run.argument else {})
        self._say(run.task, STARTED, head)
        t0 = self.wall()
        try:
            details = self.tasks[run.task](run.argument)
            run.status = WARNING if details.get("problems") else COMPLETED
        except TaskFailed as exc:
            details, run.status = {"reason": str(exc)}, FAILED
        except Exception as exc:  # a bug in one task must not stop the queue: reported as failed, logged in full
            _log.exception("maintenance task %s crashed", run.task)
            details, run.status = {"reason": f"{type(exc).__name__}: {exc}"}, FAILED
        run.details = head | details | {"duration_s": round(self.wall() - t0, 3)}
        if run.status == FAILED:
            _log.error("%s failed: %s", run.task, run.details["reason"])
        else:
            _log.info("%s %s in %.3f s", run.task, run.status, run.details["duration_s"])
        self._say(run.task, run.status, run.details)

    def _say(self, task: str, status: str, details: dict) -> None:
        try:
            self.report(task, status, details)
        except Exception:  # a report that cannot go out (node shutting down) must not stop the queue
            _log.exception("report of %s %s failed", task, status)
