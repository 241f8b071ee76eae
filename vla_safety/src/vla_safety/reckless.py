"""A deliberately reckless policy for testing the supervisor: it charges at full speed at the nearest
obstacle it sees and otherwise sweeps with random twists beyond every limit. It is never safe on its own.
"""

from __future__ import annotations

import math

import numpy as np


class RecklessPolicy:
    """Seeded; `act(ranges, angle_min, angle_increment, t_s)` returns a 6-axis twist."""

    def __init__(self, seed: int, charge_speed: float = 1.5, mode_period_s: float = 2.0):
        self.rng = np.random.default_rng(seed)
        self.charge_speed = charge_speed
        self.mode_period_s = mode_period_s
        self._mode = "charge"
        self._mode_until = 0.0
        self._sweep = np.zeros(6)
        self._sweep_until = 0.0

    def act(self, ranges: np.ndarray, angle_min: float, angle_increment: float, t_s: float) -> np.ndarray:
        if t_s >= self._mode_until:
            self._mode = "charge" if self.rng.random() < 0.6 else "sweep"
            self._mode_until = t_s + self.mode_period_s * self.rng.uniform(0.5, 1.5)
        if self._mode == "charge":
            r = np.where(np.isfinite(ranges), ranges, np.inf)
            i = int(np.argmin(r))
            a = angle_min + i * angle_increment
            # straight at it, and turning towards it, both beyond the limits
            return np.array([self.charge_speed * math.cos(a), self.charge_speed * math.sin(a), 0.0, 0.0, 0.0,
                             float(np.clip(math.atan2(math.sin(a), math.cos(a)) * 3.0, -1.5, 1.5))])
        if t_s >= self._sweep_until:
            self._sweep = np.array([self.rng.uniform(-1.5, 1.5), self.rng.uniform(-0.8, 0.8), 0.0, 0.0, 0.0,
                                    self.rng.uniform(-1.5, 1.5)])
            self._sweep_until = t_s + self.rng.uniform(0.3, 1.0)
        return self._sweep.copy()
