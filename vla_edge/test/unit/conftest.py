"""Fixtures of the vla_edge unit tests: policies written to a temporary folder, and a clock the test moves."""

from __future__ import annotations

import threading
import time

import pytest

from vla_edge.testing import write_policy
from vla_msgs.waiting import WaitTimeout


class ManualClock:
    """The loop's clock, moved only by the test: a wait ends when its event is set or when the test
    advances the clock past its deadline, never because wall time passed. A wait that neither can end
    within `wall_limit_s` is a test bug (or a loop that waits on something it should not): it raises."""

    def __init__(self, start_s: float = 0.0, wall_limit_s: float = 10.0):
        self._now = start_s
        self._cond = threading.Condition()
        self.wall_limit_s = wall_limit_s
        self.waiting = 0  # waits in progress, so a test can advance the clock once the loop blocks

    def now(self) -> float:
        with self._cond:
            return self._now

    def set(self, t_s: float) -> None:
        with self._cond:
            assert t_s >= self._now, "a clock never runs backwards"
            self._now = t_s
            self._cond.notify_all()

    def advance(self, dt_s: float) -> None:
        self.set(self.now() + dt_s)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        wall_end = time.monotonic() + self.wall_limit_s
        with self._cond:
            deadline = self._now + timeout_s
            self.waiting += 1
            try:
                while not event.is_set():
                    if self._now >= deadline:
                        return False
                    if time.monotonic() > wall_end:
                        raise WaitTimeout(f"a wait of {timeout_s:g} s on the manual clock was never ended")
                    self._cond.wait(0.001)  # the event has no link to this condition: look again soon
                return True
            finally:
                self.waiting -= 1


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_s=100.0)


@pytest.fixture
def make_policy(tmp_path):
    def _make(kind: str, **kwargs):
        return write_policy(kind, tmp_path / kind, **kwargs)

    return _make
