"""The one wrapper every subscriber and service callback goes through: nothing escapes a callback."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from vla_monitoring.bad_input import BadInputCounter

_log = logging.getLogger(__name__)


def counted_callback(source: str, bad_input: tuple[type[BaseException], ...],
                     counter: Callable[[object], BadInputCounter] = lambda node: node.bad) -> Callable:
    """Wraps a node method: `bad_input` errors are counted on the node's BadInputCounter and dropped;
    anything else is a bug, logged with its traceback (throttled by the counter) and counted too."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(self, msg):
            try:
                return fn(self, msg)
            except bad_input as exc:
                counter(self).reject(source, str(exc))
            except Exception as exc:  # a node must outlive any one message: log the bug, keep running
                counter(self).reject(source, f"internal error {type(exc).__name__}: {exc}")
                _log.exception("unexpected error handling %s", source)
            return None
        return inner
    return wrap
