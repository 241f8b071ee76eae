"""When control steps run: at the control rate on average, each one as a camera frame arrives.

A free-running timer beats against the camera (10 Hz against 30 Hz locks into one phase) and can
act on frames almost a camera period old. Stepping on the first frame that arrives within half a
camera period of each due time keeps the rate and acts on a frame that is only transport-old. A
fallback timer still steps when frames stop (those steps publish nothing and count as stale).
"""

from __future__ import annotations

import threading

_EMA = 0.2


class StepScheduler:
    def __init__(self, control_rate_hz: float):
        self.period_s = 1.0 / control_rate_hz
        self._next_due: float | None = None
        self._last_arrival: float | None = None
        self.frame_period_s = 0.0  # running estimate of the camera period
        self._lock = threading.Lock()

    def on_frame(self, now_s: float) -> bool:
        """A frame arrived at now_s (ROS time in the node); True when a control step should run on it now."""
        with self._lock:
            if self._last_arrival is not None:
                gap = min(max(now_s - self._last_arrival, 0.0), 1.0)
                self.frame_period_s = gap if self.frame_period_s == 0 else (
                    (1 - _EMA) * self.frame_period_s + _EMA * gap)
            self._last_arrival = now_s
            if self._next_due is None or now_s >= self._next_due - 0.5 * self.frame_period_s:
                self._advance(now_s)
                return True
            return False

    def on_timer(self, now_s: float) -> bool:
        """Called at the control rate; True when no frame came in time and a step should run anyway."""
        with self._lock:
            if self._next_due is None or now_s >= self._next_due + 0.5 * self.period_s:
                self._advance(now_s)
                return True
            return False

    def _advance(self, now_s: float) -> None:
        due = now_s if self._next_due is None else self._next_due
        due += self.period_s
        if due < now_s:  # fell more than a period behind (no frames, a stall): restart the grid here
            due = now_s + self.period_s
        self._next_due = due
