"""When each maintenance task is due: one cron expression per task, read on an injected clock (ROS time),
and the record of when each last ran, kept in a small JSON file so that a restart does not lose a slot.

After the clock jumped past several slots (a node that was down, a simulator running fast) a task is due
once, not once per missed slot. A task with no record starts from the first slot after the node's start.
A clock that runs backwards (a simulator reset) starts the schedule afresh. The record names its timeline
(simulated or wall time): a record from the other timeline is ignored, since its times mean nothing here.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter

_log = logging.getLogger(__name__)


class MaintenanceSchedule:
    def __init__(self, crons: dict[str, str], timezone: str = "UTC", last_s: dict[str, float] | None = None):
        self.crons = dict(crons)
        self._tz = ZoneInfo(timezone)
        self.next_s: dict[str, float] = {}
        self.last_s: dict[str, float] = {t: v for t, v in (last_s or {}).items() if t in self.crons}
        self._last_now: float | None = None

    def _after(self, expression: str, now: float) -> float:
        return float(croniter(expression, datetime.fromtimestamp(now, self._tz)).get_next(float))

    def due(self, now: float) -> list[str]:
        """The tasks whose slot came at or before `now`, in slot order; each slot is given out once. The first
        call sets the next slots: from a task's last run when recorded (a slot missed while the node was down
        is due now), else from `now` (a node first starting at 02:10 does not run the 02:00 task)."""
        if self._last_now is None or now < self._last_now:
            if self._last_now is not None:  # backwards: the record belongs to a timeline that is gone
                self.last_s = {}
            self.next_s = {task: self._after(expr, self.last_s[task] if self.last_s.get(task, now + 1) <= now
                                             else now)
                           for task, expr in self.crons.items()}
        self._last_now = now
        ready = sorted((t for t, at in self.next_s.items() if at <= now), key=lambda t: self.next_s[t])
        for task in ready:
            self.next_s[task] = self._after(self.crons[task], now)
            self.last_s[task] = now
        return ready


def load_record(path: Path, timeline: str) -> dict[str, float]:
    """task -> when it last ran, from `path` when it was written on this timeline; {} otherwise."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _log.warning("schedule record %s unreadable (%s): starting without it", path, exc)
        return {}
    if not isinstance(doc, dict) or doc.get("timeline") != timeline or not isinstance(doc.get("last_run"), dict):
        return {}
    return {str(t): float(v) for t, v in doc["last_run"].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def save_record(path: Path, timeline: str, last_s: dict[str, float]) -> None:
    """Writes the record atomically (a crash leaves the old record or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps({"timeline": timeline, "last_run": last_s}, indent=1, sort_keys=True))
    os.replace(part, path)
