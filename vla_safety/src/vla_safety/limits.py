"""Per-command checks: finiteness, magnitude refusal, per-axis clamps and acceleration limits.

A twist is a numpy array of 6 floats in vla_msgs.names.ACTION_NAMES order: linear.x, linear.y,
linear.z, angular.x, angular.y, angular.z.
"""

from __future__ import annotations

import numpy as np

from vla_msgs import names

ZERO_TWIST = np.zeros(names.ACTION_DIM)


class CommandRejectedError(ValueError):
    """A requested twist the supervisor refuses outright; the message says why."""


def check_command(twist: np.ndarray, max_linear_magnitude: float, max_angular_magnitude: float) -> np.ndarray:
    """Returns the twist as a float array of 6 or raises CommandRejectedError (non-finite, too large)."""
    v = np.asarray(twist, dtype=np.float64)
    if v.shape != (names.ACTION_DIM,):
        raise CommandRejectedError(f"twist must have {names.ACTION_DIM} components, got shape {v.shape}")
    bad = ~np.isfinite(v)
    if bad.any():
        axes = ", ".join(names.ACTION_NAMES[i] for i in np.flatnonzero(bad))
        raise CommandRejectedError(f"non-finite command ({axes})")
    lin, ang = float(np.linalg.norm(v[:3])), float(np.linalg.norm(v[3:]))
    if lin > max_linear_magnitude:
        raise CommandRejectedError(f"linear magnitude {lin:.2f} m/s exceeds {max_linear_magnitude:.2f}")
    if ang > max_angular_magnitude:
        raise CommandRejectedError(f"angular magnitude {ang:.2f} rad/s exceeds {max_angular_magnitude:.2f}")
    return v


def clamp_axes(twist: np.ndarray, limits: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Clamps each axis to ±limit; returns the clamped twist and the names of the clamped axes."""
    out = np.clip(twist, -limits, limits)
    clamped = [names.ACTION_NAMES[i] for i in np.flatnonzero(out != twist)]
    return out, clamped


class AccelerationLimiter:
    """Limits how fast the output may speed up; slowing towards zero is never delayed.

    Braking is exempt on purpose: every stop the supervisor decides (e-stop, watchdog, collision)
    must reach the base at once, and the base applies its own deceleration limits.
    """

    def __init__(self, max_linear_accel: float, max_angular_accel: float):
        self._rate = np.array([max_linear_accel] * 3 + [max_angular_accel] * 3)
        self.last = ZERO_TWIST.copy()

    def reset(self) -> None:
        self.last = ZERO_TWIST.copy()

    def brake_to(self, twist: np.ndarray) -> np.ndarray:
        """Replaces the last output by a slower one (same signs, smaller magnitudes) decided after `step`."""
        self.last = np.asarray(twist, dtype=np.float64).copy()
        return self.last.copy()

    def step(self, target: np.ndarray, dt: float) -> np.ndarray:
        """Moves from the last output towards `target` within dt's acceleration budget."""
        dt = min(max(dt, 0.0), 1.0)
        prev = self.last
        step = self._rate * dt
        # Same sign and smaller magnitude (or zero): braking, taken at once.
        braking = (np.abs(target) <= np.abs(prev)) & (np.sign(target) * np.sign(prev) >= 0)
        # Sign reversal: brake to zero at once, then accelerate from zero.
        base = np.where(np.sign(target) * np.sign(prev) < 0, 0.0, prev)
        accel = base + np.clip(target - base, -step, step)
        out = np.where(braking, target, accel)
        self.last = out
        return out.copy()
