"""Rolling statistics over a time window, bounded in samples."""

from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np


class RollingWindow:
    """(time, value) samples kept for window_s seconds, at most max_samples of them."""

    def __init__(self, window_s: float, max_samples: int = 4096):
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def add(self, now_s: float, value: float) -> None:
        with self._lock:
            self._samples.append((now_s, value))

    def values(self, now_s: float) -> np.ndarray:
        with self._lock:
            while self._samples and self._samples[0][0] < now_s - self.window_s:
                self._samples.popleft()
            return np.array([v for _, v in self._samples], dtype=np.float64)

    def rate_hz(self, now_s: float) -> float:
        """Samples per second over the window (or over the span seen so far, if shorter)."""
        with self._lock:
            while self._samples and self._samples[0][0] < now_s - self.window_s:
                self._samples.popleft()
            if len(self._samples) < 2:
                return 0.0
            span = self._samples[-1][0] - self._samples[0][0]
            return (len(self._samples) - 1) / span if span > 0 else 0.0


def summary(values: np.ndarray) -> dict[str, float]:
    """mean, p50, p99; NaN (unknown, never 0) for an empty window."""
    if values.size == 0:
        return {"mean": math.nan, "p50": math.nan, "p99": math.nan}
    p50, p99 = np.percentile(values, [50, 99])
    return {"mean": float(values.mean()), "p50": float(p50), "p99": float(p99)}
