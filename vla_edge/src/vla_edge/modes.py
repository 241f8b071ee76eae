"""Where the policy runs: edge, cloud or hybrid. The seam the cloud client (a later issue) plugs into.

A mode is available only when a policy source is registered for it; until a cloud client exists,
`cloud` and `hybrid` are refused with a message that says so, never silently run on the edge.
"""

from __future__ import annotations

import threading

from vla_edge.config import MODES

EDGE = "edge"


class ModeSwitch:
    def __init__(self, available: tuple[str, ...] = (EDGE,), initial: str = EDGE):
        self._available = tuple(available)
        self._mode = initial
        self._lock = threading.Lock()
        ok, message = self.check(initial)
        if not ok:
            raise ValueError(message)

    @property
    def mode(self) -> str:
        return self._mode

    def check(self, mode: str) -> tuple[bool, str]:
        if mode not in MODES:
            return False, f"unknown mode {mode!r}: allowed {', '.join(MODES)}"
        if mode not in self._available:
            return False, (f"mode {mode!r} needs a cloud inference client, which this node does not have yet; "
                           f"available: {', '.join(self._available)}")
        return True, f"mode {mode}"

    def request(self, mode: str) -> tuple[bool, str, str]:
        """Returns (success, message, mode in force)."""
        mode = mode.strip().lower()
        ok, message = self.check(mode)
        with self._lock:
            if ok:
                self._mode = mode
            return ok, message, self._mode
