"""Sliding-window statistics in bounded memory: latency samples with percentiles, and event rates.

ROS-free, every time on one injected clock (the node passes ROS time). `SampleWindow` keeps the
samples of the last `window_s` seconds in a ring buffer of at most `max_samples` (at a higher rate
the oldest samples leave early, and `Summary.span_s` says how much time the samples cover);
`RateCounter` counts events in fixed time buckets, so its memory does not grow with the rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES: tuple[float, ...] = (50.0, 95.0, 99.0)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linearly interpolated between the two
    nearest ranks (numpy's default method); NaN for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    rank = (n - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (rank - lo)


@dataclass(frozen=True)
class Summary:
    """What a window holds right now; every statistic NaN when it holds no sample."""

    count: int
    mean: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float
    span_s: float   # from the oldest sample kept to now; 0 without samples


class SampleWindow:
    """Samples of the last `window_s` seconds (at most `max_samples` of them) and their statistics."""

    def __init__(self, window_s: float, max_samples: int):
        if window_s <= 0 or max_samples < 1:
            raise ValueError(f"window_s must be > 0 and max_samples >= 1, got {window_s}, {max_samples}")
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)

    def add(self, now_s: float, value: float) -> None:
        """One sample taken at `now_s`; non-finite values are refused (ValueError)."""
        if not math.isfinite(value):
            raise ValueError(f"sample must be finite, got {value!r}")
        self._samples.append((now_s, float(value)))

    def _expire(self, now_s: float) -> None:
        horizon = now_s - self.window_s
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)

    def summary(self, now_s: float) -> Summary:
        self._expire(now_s)
        if not self._samples:
            nan = math.nan
            return Summary(0, nan, nan, nan, nan, nan, nan, 0.0)
        values = sorted(v for _t, v in self._samples)
        p50, p95, p99 = (percentile(values, q) for q in PERCENTILES)
        return Summary(len(values), math.fsum(values) / len(values), values[0], values[-1], p50, p95, p99,
                       max(0.0, now_s - self._samples[0][0]))


class RateCounter:
    """Events per second over the last `window_s`, counted in `buckets` time slots of equal length.

    The rate divides the events of the whole slots inside the window, plus the current slot, by the
    time they cover; before a whole window has passed it divides by the time since the first event's slot.
    """

    def __init__(self, window_s: float, buckets: int = 20):
        if window_s <= 0 or buckets < 1:
            raise ValueError(f"window_s must be > 0 and buckets >= 1, got {window_s}, {buckets}")
        self.window_s = window_s
        self.bucket_s = window_s / buckets
        self._counts: deque[tuple[int, int]] = deque(maxlen=buckets + 1)  # (slot index, events)
        self._first_slot: int | None = None

    def _slot(self, now_s: float) -> int:
        return math.floor(now_s / self.bucket_s)

    def add(self, now_s: float, events: int = 1) -> None:
        slot = self._slot(now_s)
        if self._first_slot is None:
            self._first_slot = slot
        if self._counts and self._counts[-1][0] == slot:
            self._counts[-1] = (slot, self._counts[-1][1] + events)
        elif self._counts and self._counts[-1][0] > slot:
            # The clock went back (a simulator reset): count it in the newest slot rather than lose it.
            self._counts[-1] = (self._counts[-1][0], self._counts[-1][1] + events)
        else:
            self._counts.append((slot, events))

    def rate(self, now_s: float) -> float:
        """Events per second; 0 before any event."""
        if self._first_slot is None:
            return 0.0
        current = self._slot(now_s)
        oldest = current - round(self.window_s / self.bucket_s)  # the first whole slot inside the window
        events = sum(n for slot, n in self._counts if oldest < slot <= current)
        start_s = max(oldest + 1, self._first_slot) * self.bucket_s
        covered_s = max(now_s - start_s, self.bucket_s)
        return events / covered_s
