"""The one diagnostics helper every long-running node publishes `/diagnostics` through.

Wraps `diagnostic_updater.Updater` with the robot's hardware id and runs it on its own ROS timer,
so a node's publishing loop never has to remember to call `update()`. `rate(...)` adds a
frequency status for a stream the node depends on (tick it on every message); `stamp_age(...)`
a time-stamp status for data ages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import diagnostic_updater
import rospy
from diagnostic_msgs.msg import DiagnosticStatus

from vla_monitoring.bad_input import BadInputCounter

OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE
Status = diagnostic_updater.DiagnosticStatusWrapper


def report_bad_input(stat: Status, counter: BadInputCounter, sources: Iterable[str] = ()) -> Status:
    """Fills `stat` the way every node reports dropped input: WARN while any was dropped, then
    `dropped <source>` (every listed source, and any other that dropped something) and
    `last bad <source>` with the reason of the newest one."""
    # Copies taken at once: subscriber threads add to the counter while this runs.
    counts, reasons = dict(counter.counts), dict(counter.last_reason)
    total = sum(counts.values())
    stat.summary(OK if total == 0 else WARN, f"{total} bad inputs dropped")
    listed = list(sources)
    for source in [*listed, *sorted(set(counts) - set(listed))]:
        stat.add(f"dropped {source}", str(counts.get(source, 0)))
        if source in reasons:
            stat.add(f"last bad {source}", reasons[source])
    return stat


class Diagnostics:
    def __init__(self, hardware_id: str, period_s: float = 1.0):
        self.updater = diagnostic_updater.Updater()
        self.updater.setHardwareID(hardware_id)
        # The timer is the period; the Updater's own `~diagnostic_period` check would skip a tick that
        # fires a hair early and halve the rate, so each tick publishes.
        self._timer = rospy.Timer(rospy.Duration(period_s), lambda _event: self.updater.force_update())
        self._rates: dict[str, diagnostic_updater.HeaderlessTopicDiagnostic] = {}

    def task(self, name: str, fn: Callable[[Status], Status]) -> None:
        """Adds a component: `fn(stat)` fills the status wrapper (summary, key/values) and returns it."""
        self.updater.add(name, fn)

    def rate(self, name: str, min_hz: float, max_hz: float = float("inf"), tolerance: float = 0.1,
             window: int = 10) -> diagnostic_updater.FrequencyStatus:
        """A frequency status for a stream: call `.tick()` on every message."""
        status = diagnostic_updater.FrequencyStatus(
            diagnostic_updater.FrequencyStatusParam({"min": min_hz, "max": max_hz}, tolerance, window), name)
        self.updater.add(status)
        return status

    def stamp_age(self, name: str, max_age_s: float, min_age_s: float = -1.0) -> diagnostic_updater.TimeStampStatus:
        """A time-stamp status: call `.tick(stamp)` with each message's header stamp."""
        status = diagnostic_updater.TimeStampStatus(
            diagnostic_updater.TimeStampStatusParam(min_acceptable=min_age_s, max_acceptable=max_age_s), name)
        self.updater.add(status)
        return status

    def bad_input(self, counter: BadInputCounter, sources: Iterable[str] = (), name: str = "inputs") -> None:
        """Adds the task that reports `counter` (see report_bad_input)."""
        listed = tuple(sources)
        self.task(name, lambda stat: report_bad_input(stat, counter, listed))

    def force_update(self) -> None:
        self.updater.force_update()

    def shutdown(self) -> None:
        self._timer.shutdown()
