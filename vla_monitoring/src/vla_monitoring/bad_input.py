"""Counting and logging rejected input: every node drops bad messages the same way."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)


class BadInputCounter:
    """Counts rejected messages per source and logs each source's problem at most once per period."""

    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = _log):
        self.counts: dict[str, int] = {}
        self.last_reason: dict[str, str] = {}
        self._period_s = period_s
        self._clock = clock
        self._logger = logger
        self._last_log: dict[str, float] = {}

    def reject(self, source: str, reason: str) -> None:
        self.counts[source] = self.counts.get(source, 0) + 1
        self.last_reason[source] = reason
        now = self._clock()
        if now - self._last_log.get(source, -float("inf")) >= self._period_s:
            self._last_log[source] = now
            self._logger.warning("dropped bad input on %s (%d so far): %s", source, self.counts[source], reason)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
