"""The one wait-until helper of every test, demo and benchmark: poll a condition, never a fixed sleep.

`clock` says what the timeout is measured in: `time.monotonic` (the default) for wall time, or
`rospy.get_time` in a rostest so that the limit is in simulated seconds and a loaded machine that
runs the simulator slower does not fail a test. A wall-clock `wall_limit_s` still bounds a wait
on a clock that stopped (a dead simulator), so no wait is unbounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):  # noqa: N818 (an assertion: a wait that times out fails its test)
    """The condition did not hold in time; an AssertionError, so a test that waits fails, not errors."""


def wait_until(condition: Callable[[], T], timeout_s: float, what: str = "condition", *,
               clock: Callable[[], float] = time.monotonic, poll_s: float = 0.01,
               wall_limit_s: float | None = None) -> T:
    """Returns the condition's first truthy value; raises WaitTimeout after `timeout_s` on `clock`.

    `wall_limit_s` (default: 10 x timeout_s, at least 30 s) bounds the wait in wall time too.
    """
    wall_limit = max(30.0, 10.0 * timeout_s) if wall_limit_s is None else wall_limit_s
    wall_end = time.monotonic() + wall_limit
    start = clock()
    while True:
        value = condition()
        if value:
            return value
        if clock() - start > timeout_s:
            raise WaitTimeout(f"timed out after {timeout_s:g} s waiting for {what}")
        if time.monotonic() > wall_end:
            raise WaitTimeout(f"timed out after {wall_limit:g} s of wall time waiting for {what} "
                              f"(the clock advanced {clock() - start:.3g} s of its {timeout_s:g})")
        time.sleep(poll_s)
