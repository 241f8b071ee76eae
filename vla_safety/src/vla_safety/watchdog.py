"""Freshness watchdogs on an injected monotonic clock."""

from __future__ import annotations


class Watchdog:
    """Expires when nothing was fed for longer than `timeout_s`; never fed counts as expired."""

    def __init__(self, name: str, timeout_s: float):
        self.name = name
        self.timeout_s = timeout_s
        self.last_s: float | None = None

    def feed(self, now_s: float) -> None:
        self.last_s = now_s

    def age(self, now_s: float) -> float | None:
        """Seconds since the last feed, None if never fed."""
        return None if self.last_s is None else max(0.0, now_s - self.last_s)

    def expired(self, now_s: float) -> bool:
        age = self.age(now_s)
        return age is None or age > self.timeout_s

    def describe(self, now_s: float) -> str:
        """Why the watchdog is expired, in words."""
        age = self.age(now_s)
        if age is None:
            return f"no {self.name} received yet"
        return f"no {self.name} for {age:.2f} s (timeout {self.timeout_s:.2f} s)"
