"""When each maintenance task is due: one cron expression per task, read on an injected clock (ROS time).

After the clock jumped past several slots (a node that was down, a simulator running fast) a task is due
once, not once per missed slot. A clock that runs backwards (a simulator reset) starts the schedule afresh.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter


class MaintenanceSchedule:
    def __init__(self, crons: dict[str, str], timezone: str = "UTC"):
        self.crons = dict(crons)
        self._tz = ZoneInfo(timezone)
        self.next_s: dict[str, float] = {}
        self._last_now: float | None = None

    def _after(self, expression: str, now: float) -> float:
        return float(croniter(expression, datetime.fromtimestamp(now, self._tz)).get_next(float))

    def due(self, now: float) -> list[str]:
        """The tasks whose slot came at or before `now` since the last call, in schedule order; the first call
        only sets the next slots (a node starting at 02:10 does not run the 02:00 task)."""
        if self._last_now is None or now < self._last_now:
            self.next_s = {task: self._after(expr, now) for task, expr in self.crons.items()}
            self._last_now = now
            return []
        self._last_now = now
        ready = sorted((t for t, at in self.next_s.items() if at <= now), key=lambda t: self.next_s[t])
        for task in ready:
            self.next_s[task] = self._after(self.crons[task], now)
        return ready
