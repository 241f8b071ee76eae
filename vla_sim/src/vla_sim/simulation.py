"""Running the world in time, no ROS: fixed physics steps paced against wall time scaled by a real-time
factor, the simulated clock the node publishes on /clock, the publishing schedule in simulated time,
each robot's command watchdog, and the measured real-time factor.

The node owns the only wall clock: it calls `tick(wall_s)` and sleeps until `next_wake_s()`.
"""

from __future__ import annotations

import logging

from vla_sim.config import STREAM_RATES, SimNodeConfig
from vla_sim.world import World

LOG = logging.getLogger(__name__)

# A late tick is made up with at most this many physics steps; simulated time beyond them is lost
# (counted), so a stalled machine slows the simulation down instead of freezing it in catch-up.
MAX_STEPS_PER_TICK = 10
# Step counts are whole numbers of steps; this absorbs the rounding of wall-time sums.
_EPS_STEPS = 1e-6


class Pacer:
    """How many fixed physics steps wall time owes: `real_time_factor` simulated seconds per wall second."""

    def __init__(self, step_s: float, real_time_factor: float, max_steps: int = MAX_STEPS_PER_TICK):
        if not (step_s > 0 and real_time_factor > 0 and max_steps >= 1):
            raise ValueError("step_s and real_time_factor must be > 0, max_steps >= 1")
        self.step_s = step_s
        self.real_time_factor = real_time_factor
        self.max_steps = max_steps
        self.lost_s = 0.0  # simulated time dropped because ticks came too late
        self._wall_s: float | None = None
        self._owed_s = 0.0  # simulated time owed but not yet stepped (less than one step after a tick)

    def steps_due(self, wall_s: float) -> int:
        """Steps to run now; the first call only starts the clock."""
        if self._wall_s is None:
            self._wall_s = wall_s
            return 0
        self._owed_s += max(0.0, wall_s - self._wall_s) * self.real_time_factor
        self._wall_s = max(self._wall_s, wall_s)
        steps = int(self._owed_s / self.step_s + _EPS_STEPS)
        if steps > self.max_steps:
            self.lost_s += self._owed_s - self.max_steps * self.step_s
            steps = self.max_steps
            self._owed_s = 0.0
        else:
            self._owed_s = max(0.0, self._owed_s - steps * self.step_s)
        return steps

    def next_wake_s(self) -> float:
        """Wall time at which the next step falls due."""
        if self._wall_s is None:
            return 0.0
        return self._wall_s + (self.step_s - self._owed_s) / self.real_time_factor


class Schedule:
    """Streams published every `period` of simulated time. A stream that fell a whole period behind
    skips ahead rather than bursting to catch up."""

    def __init__(self, periods_s: dict[str, float], start_s: float):
        self.periods_s = dict(periods_s)
        self._next_s = dict.fromkeys(periods_s, start_s)

    def pop_due(self, now_s: float) -> list[str]:
        due = []
        for name, period in self.periods_s.items():
            if now_s + 1e-9 >= self._next_s[name]:
                nxt = self._next_s[name] + period
                self._next_s[name] = nxt if nxt > now_s + 1e-9 else now_s + period
                due.append(name)
        return due


class RateWindow:
    """The real-time factor achieved: simulated over wall seconds, over windows of `window_s` wall seconds."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self.factor: float | None = None  # None until the first window closes
        self._start: tuple[float, float] | None = None

    def add(self, wall_s: float, sim_s: float) -> None:
        if self._start is None:
            self._start = (wall_s, sim_s)
            return
        wall0, sim0 = self._start
        if wall_s - wall0 >= self.window_s:
            self.factor = (sim_s - sim0) / (wall_s - wall0)
            self._start = (wall_s, sim_s)


class Simulation:
    """The world stepped in fixed steps on a simulated clock that never goes back (not even on reset)."""

    def __init__(self, world: World, config: SimNodeConfig):
        self.world = world
        self.config = config
        self.step_s = 1.0 / config.physics_rate_hz
        self.pacer = Pacer(self.step_s, config.real_time_factor)
        self.schedule = Schedule({name: 1.0 / getattr(config, field) for name, field in STREAM_RATES.items()},
                                 start_s=self.step_s)
        self.rate = RateWindow()
        self.steps = 0
        self._last_cmd_s = dict.fromkeys(world.robot_ids, -float("inf"))

    @property
    def time_s(self) -> float:
        """Simulated seconds since start: whole steps, so the clock has no rounding drift."""
        return self.steps * self.step_s

    def command(self, robot_id: str, linear_x: float, linear_y: float, angular_z: float) -> bool:
        """A robot's cmd_vel: False (and counted by the world) for a non-finite twist, which is ignored."""
        ok = self.world.set_twist(robot_id, linear_x, linear_y, angular_z)
        if ok:
            self._last_cmd_s[robot_id] = self.time_s
        return ok

    def reset(self, seed: int) -> None:
        """A new layout; the clock goes on."""
        self.world.reset(seed)

    def tick(self, wall_s: float) -> list[str]:
        """Steps the physics owed by the wall time that passed; returns the streams now due."""
        for _ in range(self.pacer.steps_due(wall_s)):
            self._stop_silent_robots()
            self.world.step(self.step_s)
            self.steps += 1
        self.rate.add(wall_s, self.time_s)
        return self.schedule.pop_due(self.time_s) if self.steps else []

    def next_wake_s(self) -> float:
        return self.pacer.next_wake_s()

    def _stop_silent_robots(self) -> None:
        """A robot whose controller fell silent must not keep driving on its last command."""
        now = self.time_s
        for rid, last in self._last_cmd_s.items():
            if now - last > self.config.cmd_timeout_s:
                self.world.set_twist(rid, 0.0, 0.0, 0.0)
