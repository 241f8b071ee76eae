"""Polling helper shared by the vla_sim rostest scripts."""

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], bool], timeout_s: float, period_s: float = 0.05) -> bool:
    """True as soon as predicate() holds; False once timeout_s has passed without it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return False
