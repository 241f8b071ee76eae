"""The latched emergency stop: set by a trigger, cleared only by a reset that no cause blocks."""

from __future__ import annotations

import logging

LOG = logging.getLogger(__name__)


class EmergencyStopLatch:
    """Latches on `trigger`; `reset` succeeds only when the caller reports no blocking cause.

    A `true` on the trigger topic keeps blocking a reset for `hold_s` after it was last seen, so a
    button that is still pressed (and keeps publishing) cannot be reset past.
    """

    def __init__(self, hold_s: float):
        self.hold_s = hold_s
        self.latched = False
        self.cause = ""
        self.triggers = 0
        self._last_signal_s: float | None = None

    def trigger(self, now_s: float, cause: str, signal: bool = False) -> bool:
        """Latches the stop; returns True when this call changed the state (was not latched before)."""
        self.triggers += 1
        if signal:
            self._last_signal_s = now_s
        if self.latched:
            return False
        self.latched, self.cause = True, cause
        LOG.warning("EMERGENCY STOP latched: %s", cause)
        return True

    def forget_signal(self) -> None:
        """Drops the last trigger signal's time (the clock went back; a still-pressed button sends again)."""
        self._last_signal_s = None

    def signal_blocker(self, now_s: float) -> str | None:
        """The reason a recent trigger signal blocks a reset, or None."""
        if self._last_signal_s is None:
            return None
        age = now_s - self._last_signal_s
        if age < self.hold_s:
            return f"emergency_stop/trigger was true {age:.2f} s ago (must be clear for {self.hold_s:.1f} s)"
        return None

    def reset(self, now_s: float, blockers: list[str]) -> tuple[bool, str]:
        """Clears the latch unless a cause persists; returns (success, message)."""
        if not self.latched:
            return True, "emergency stop was not active"
        causes = list(blockers)
        held = self.signal_blocker(now_s)
        if held:
            causes.insert(0, held)
        if causes:
            message = "reset refused: " + "; ".join(causes)
            LOG.warning("%s", message)
            return False, message
        LOG.warning("EMERGENCY STOP reset (was: %s)", self.cause)
        self.latched, self.cause = False, ""
        return True, "emergency stop cleared"
