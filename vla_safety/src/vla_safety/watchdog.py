"""Freshness on an injected clock: watchdogs, and the time a stamped sensor message describes."""

from __future__ import annotations


class StaleDataError(ValueError):
    """A message whose stamp cannot describe the present: too old, or too far ahead of this clock."""


def data_time(stamp_s: float, now_s: float, max_age_s: float) -> float:
    """The time a sensor message describes, to feed its watchdog with.

    A stamped message counts from its stamp, so delays in transport and queues age it; a zero stamp
    (a driver or tool that does not stamp) counts from its receipt. A stamp older than `max_age_s`
    is stale data; one more than `max_age_s` ahead of this clock would keep its sensor looking fresh
    after it fell silent. Both raise StaleDataError; a small lead (clock offset) counts as now.
    """
    if stamp_s == 0.0:
        return now_s
    age = now_s - stamp_s
    if age > max_age_s:
        raise StaleDataError(f"stamp is {age:.2f} s old (sensor_timeout {max_age_s:.2f} s)")
    if -age > max_age_s:
        raise StaleDataError(f"stamp is {-age:.2f} s ahead of this node's clock (sensor_timeout {max_age_s:.2f} s)")
    return min(stamp_s, now_s)


class Watchdog:
    """Expires when nothing was fed for longer than `timeout_s`; never fed counts as expired."""

    def __init__(self, name: str, timeout_s: float):
        self.name = name
        self.timeout_s = timeout_s
        self.last_s: float | None = None

    def feed(self, now_s: float) -> None:
        self.last_s = now_s

    def forget(self) -> None:
        """Back to never fed (the clock moved backwards: what was fed belongs to another timeline)."""
        self.last_s = None

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
