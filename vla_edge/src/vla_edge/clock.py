"""The clock the control loop reads and waits on, injected so that ROS (or simulated) time drives it.

A clock answers `now()` and `wait(event, timeout_s)`: block until the event is set (True) or until
`timeout_s` has passed on this clock (False). The inference node passes `PolledClock(rospy.get_time)`,
so a simulator's /clock paces its waits as it paces its timers; unit tests pass a clock of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def wait(self, event: threading.Event, timeout_s: float) -> bool: ...


class MonotonicClock:
    """Wall time: for tools that run a policy without ROS."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(0.0, timeout_s))


class PolledClock:
    """Any clock given as a function (ROS time): waits on the event in short slices, checking the clock between.

    With `wall_time` (ROS time without /use_sim_time is wall time) a wait needs no slices: the event is
    waited on until the deadline at once, so a robot pays no polling. A clock that stops (a paused or
    dead simulator) would hold a wait for ever; `wall_factor` bounds each wait to that many times its
    timeout in wall time (at least `min_wall_s`), after which it ends as a timeout.
    """

    def __init__(self, now: Callable[[], float], poll_s: float = 0.002, wall_factor: float = 20.0,
                 min_wall_s: float = 2.0, wall_time: bool = False):
        self._now = now
        self._poll_s = poll_s
        self._wall_factor = wall_factor
        self._min_wall_s = min_wall_s
        self._wall_time = wall_time

    def now(self) -> float:
        return self._now()

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        if timeout_s <= 0:
            return event.is_set()
        deadline = self._now() + timeout_s
        wall_end = time.monotonic() + max(self._min_wall_s, self._wall_factor * timeout_s)
        while True:
            remaining = deadline - self._now()
            if remaining <= 0 or time.monotonic() > wall_end:
                return event.is_set()
            if event.wait(remaining if self._wall_time else min(remaining, self._poll_s)):
                return True
