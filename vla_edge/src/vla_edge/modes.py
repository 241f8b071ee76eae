"""Where the policy runs: edge, cloud or hybrid, switched at run time.

- edge: the on-board model only.
- cloud: the cloud server only; when it fails the robot is stopped (one zero command, then nothing
  until the server answers again), never driven by a model the operator did not choose.
- hybrid: the cloud first; a request that fails or misses its deadline is served by the edge model
  in the same control period.

`cloud` and `hybrid` are available only when a cloud client is configured (`~cloud_url`); without
one they are refused with a message that says so, never silently run on the edge.
"""

from __future__ import annotations

import threading

from vla_edge.config import MODES

EDGE = "edge"
CLOUD = "cloud"
HYBRID = "hybrid"
SOURCE_EDGE = EDGE    # vla/action `source` of a chunk computed on the robot
SOURCE_CLOUD = CLOUD  # ... and of one computed by the cloud server


class ModeSwitch:
    def __init__(self, available: tuple[str, ...] = (EDGE,), initial: str = EDGE):
        self._available = tuple(available)
        self._mode = initial
        self._lock = threading.Lock()
        ok, message = self.check(initial)
        if not ok:
            raise ValueError(message)

    @classmethod
    def for_cloud(cls, cloud_configured: bool, initial: str = EDGE) -> ModeSwitch:
        return cls((EDGE, CLOUD, HYBRID) if cloud_configured else (EDGE,), initial)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def uses_cloud(self) -> bool:
        return self._mode != EDGE

    def check(self, mode: str) -> tuple[bool, str]:
        if mode not in MODES:
            return False, f"unknown mode {mode!r}: allowed {', '.join(MODES)}"
        if mode not in self._available:
            return False, (f"mode {mode!r} needs a cloud server, and ~cloud_url is not set on this node; "
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
