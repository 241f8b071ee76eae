"""Shared node plumbing: typed config from `~` params, logging bridged to rosout, throttled bad-input logs."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import rospy

from vla_safety.config import ConfigError, build_config


def load_config(cls: type) -> Any:
    """Reads every field of `cls` from the private namespace; logfatal and exit on an invalid value."""
    values = {f.name: rospy.get_param("~" + f.name) for f in fields(cls) if rospy.has_param("~" + f.name)}
    try:
        return build_config(cls, values)
    except (ConfigError, TypeError) as exc:
        rospy.logfatal("invalid parameter: %s", exc)
        raise SystemExit(2) from exc


class RosoutHandler(logging.Handler):
    """Forwards the core's `logging` records to rosout."""

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            rospy.logerr(msg)
        elif record.levelno >= logging.WARNING:
            rospy.logwarn(msg)
        elif record.levelno >= logging.INFO:
            rospy.loginfo(msg)
        else:
            rospy.logdebug(msg)


def bridge_logging(package: str) -> None:
    logger = logging.getLogger(package)
    if not any(isinstance(h, RosoutHandler) for h in logger.handlers):
        logger.addHandler(RosoutHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


class BadInputCounter:
    """Counts rejected messages per topic and logs each topic's problems at most once per period."""

    def __init__(self, period_s: float = 5.0):
        self.counts: dict[str, int] = {}
        self._period_s = period_s
        self._last_log: dict[str, float] = {}

    def reject(self, topic: str, reason: str) -> None:
        self.counts[topic] = self.counts.get(topic, 0) + 1
        now = time.monotonic()
        if now - self._last_log.get(topic, -1e9) >= self._period_s:
            self._last_log[topic] = now
            rospy.logwarn("dropped bad message on %s (%d so far): %s", topic, self.counts[topic], reason)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def guarded(topic: str, bad_input: tuple[type[BaseException], ...]) -> Callable:
    """Wraps a node method callback so nothing escapes it: `bad_input` errors are counted and logged
    (throttled) on the node's `bad` counter; anything else is a bug, logged loudly and counted too."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(self, msg):
            try:
                fn(self, msg)
            except bad_input as exc:
                self.bad.reject(topic, str(exc))
            except Exception as exc:  # a supervisor or monitor must outlive any one message
                self.bad.reject(topic, f"internal error {type(exc).__name__}: {exc}")
                rospy.logerr_throttle(5.0, f"unexpected error handling {topic}: {exc!r}")
        return inner
    return wrap
