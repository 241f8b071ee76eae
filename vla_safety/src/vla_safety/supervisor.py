"""The safety supervisor: from the policy's request and the sensors to the one twist the robot may follow.

Plain inputs (numpy twists, sensor-frame points, seconds on the caller's clock), one `Decision` per
output. The caller decides when to output: at once for each command (`set_command` then `step`),
and whenever `until_output_s` says the least output rate is due, for watchdogs, ramps and stops.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_msgs import names, states
from vla_safety.collision import Choice, CollisionChecker, reduce_points
from vla_safety.config import SENSORS, SafetyConfig
from vla_safety.estop import EmergencyStopLatch
from vla_safety.limits import ZERO_TWIST, AccelerationLimiter, CommandRejectedError, check_command, clamp_axes
from vla_safety.watchdog import Watchdog

LOG = logging.getLogger(__name__)
TIME_RESOLUTION_S = 1e-6  # two times closer than this are the same instant

SafetyState = states.SafetyState
OK, LIMITED, STOPPED, EMERGENCY_STOP = (SafetyState.OK, SafetyState.LIMITED, SafetyState.STOPPED,
                                        SafetyState.EMERGENCY_STOP)


def _point(p: tuple[float, float] | None) -> list[float] | None:
    return None if p is None else [float(p[0]), float(p[1])]


@dataclass
class Decision:
    """What the supervisor commands for one output, and why."""

    level: SafetyState
    reason: str
    commanded: np.ndarray
    requested: np.ndarray
    emergency_stop: bool
    speed_scale: float = 1.0
    nearest_obstacle_m: float = -1.0
    nearest_obstacle: tuple[float, float] | None = None
    limiting_obstacle: tuple[float, float] | None = None
    clamped_axes: list[str] = field(default_factory=list)
    rejected_commands: int = 0
    cmd_age_s: float | None = None
    sensor_ages_s: dict[str, float | None] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.level.name

    def fields(self) -> dict[str, Any]:
        """The decision as `vla_safety_status` fields (vla_msgs.json_forms.SAFETY_STATUS adds the timestamp)."""
        return {
            "status": self.status,
            "reason": self.reason,
            "emergency_stop": self.emergency_stop,
            "speed_scale": self.speed_scale,
            "nearest_obstacle_m": self.nearest_obstacle_m,
            "nearest_obstacle": _point(self.nearest_obstacle),
            "limiting_obstacle": _point(self.limiting_obstacle),
            "clamped_axes": list(self.clamped_axes),
            "requested": dict(zip(names.ACTION_NAMES, self.requested.tolist(), strict=True)),
            "commanded": dict(zip(names.ACTION_NAMES, self.commanded.tolist(), strict=True)),
            "rejected_commands": self.rejected_commands,
            "cmd_age_s": self.cmd_age_s,
            "sensor_ages_s": dict(self.sensor_ages_s),
        }


class SafetySupervisor:
    """Holds the newest request and obstacle points; `step(now)` decides the output twist."""

    def __init__(self, config: SafetyConfig):
        self.config = config
        self._axis_limits = np.array(config.axis_limits, dtype=np.float64)
        self._limiter = AccelerationLimiter(config.max_linear_accel, config.max_angular_accel)
        self.latch = EmergencyStopLatch(config.trigger_hold)
        self.checker = CollisionChecker(config.robot_radius, config.collision_threshold,
                                        config.prediction_horizon, config.prediction_steps)
        self._cmd_watchdog = Watchdog(names.CMD_VEL_VLA, config.cmd_timeout)
        self.sensors = {name: Watchdog(name, config.sensor_timeout) for name in SENSORS}
        self._obstacles: dict[str, np.ndarray] = {}
        self._requested = ZERO_TWIST.copy()
        self.rejection: str | None = None
        self.rejected_commands = 0
        self._last_output_s: float | None = None
        self._due_s: float | None = None  # when the least output rate needs the next output
        self._last_level: SafetyState | None = None

    # ------------------------------------------------------------------ inputs
    def set_command(self, twist: np.ndarray, now_s: float) -> bool:
        """Takes a new request; a refused one stops the robot until the next valid request."""
        self._cmd_watchdog.feed(now_s)
        try:
            self._requested = check_command(twist, self.config.max_linear_magnitude,
                                            self.config.max_angular_magnitude)
        except CommandRejectedError as exc:
            self.rejected_commands += 1
            self.rejection = str(exc)
            raw = np.asarray(twist, dtype=np.float64).reshape(-1)
            self._requested = raw if raw.shape == ZERO_TWIST.shape else ZERO_TWIST.copy()
            return False
        self.rejection = None
        return True

    def obstacle_points(self, sensor: str, points: np.ndarray) -> np.ndarray:
        """One message's points in its sensor frame ([N, 2] scan, [N, 3] cloud) reduced to the base-frame
        points [M, 2] that can limit a command: within `crop_radius`, the cloud's between the obstacle
        heights, voxel-thinned. Reads only the config, so a caller may run it outside its lock."""
        cfg = self.config
        if sensor == names.SCAN:
            return reduce_points(points, cfg.scan_pose, cfg.crop_radius, cfg.voxel_size, cfg.max_obstacle_points)
        if sensor == names.POINTS:
            return reduce_points(points, cfg.cloud_pose, cfg.crop_radius, cfg.voxel_size, cfg.max_obstacle_points,
                                 (cfg.obstacle_min_height, cfg.obstacle_max_height))
        raise ValueError(f"{sensor} carries no obstacle points")

    def set_obstacles(self, sensor: str, points_xy: np.ndarray, data_s: float) -> None:
        """Replaces one sensor's base-frame obstacle points [N, 2], describing time `data_s`."""
        self._obstacles[sensor] = points_xy
        self.sensors[sensor].feed(data_s)

    def note_sensor(self, sensor: str, data_s: float) -> None:
        """Records that a sensor without obstacle points (odom) is alive at time `data_s`."""
        self.sensors[sensor].feed(data_s)

    def trigger_estop(self, now_s: float, cause: str, signal: bool = False) -> bool:
        """Latches the e-stop; True when newly latched (the caller then outputs at once)."""
        newly = self.latch.trigger(now_s, cause, signal)
        if newly:
            self._limiter.reset()
        return newly

    def reset(self, now_s: float) -> tuple[bool, str]:
        """Clears a latched e-stop unless a cause persists."""
        blockers = self._stale_sensor_reasons(now_s)
        nearest, clearance = self.checker.nearest(self._points(now_s))
        if nearest is not None and clearance < self.config.collision_threshold:
            blockers.append(f"obstacle at ({nearest[0]:.2f}, {nearest[1]:.2f}) is {clearance:.2f} m away, "
                            f"inside collision_threshold {self.config.collision_threshold:.2f} m")
        ok, message = self.latch.reset(now_s, blockers)
        if ok:
            self._limiter.reset()
        return ok, message

    # ------------------------------------------------------------------ timing
    def until_output_s(self, now_s: float) -> float:
        """Seconds until the least output rate needs the next output (<= 0: due now).

        An output forwarded early (for a command or an e-stop) pushes the next one back a whole period,
        so no output follows another by less than a period unless a command asked for it. An output on
        schedule sets the next one a period after the time it was due, not after the time it went out:
        a caller that wakes late (a simulated clock that advances in steps) keeps the rate on average.
        """
        if self._due_s is None or (self._last_output_s is not None and now_s < self._last_output_s):
            return 0.0
        wait_s = self._due_s - now_s
        # The due time is a sum of periods: rounding can leave it a hair after a clock reading that means
        # it, and a simulated clock would not move for that hair (the caller would spin until /clock ticks).
        return 0.0 if wait_s < TIME_RESOLUTION_S else wait_s

    def _schedule(self, now_s: float) -> None:
        period = self.config.output_period_s
        if self._due_s is not None and self._due_s - now_s >= TIME_RESOLUTION_S:  # early: a command or e-stop
            self._due_s = now_s + period
        elif self._due_s is not None and self._due_s + period > now_s:  # on schedule, or a little late
            self._due_s += period
        else:  # the first output, or a stall of more than a period: start afresh rather than catch up
            self._due_s = now_s + period

    # ------------------------------------------------------------------ decision
    def step(self, now_s: float) -> Decision:
        """Decides the twist to output now; speeding up is limited by the time since the last output."""
        if self._last_output_s is not None and now_s < self._last_output_s:
            self._restart(now_s)
        dt = self.config.output_period_s if self._last_output_s is None else now_s - self._last_output_s
        self._last_output_s = now_s
        self._schedule(now_s)
        d = Decision(level=OK, reason="", commanded=ZERO_TWIST.copy(), requested=self._requested.copy(),
                     emergency_stop=self.latch.latched, rejected_commands=self.rejected_commands,
                     cmd_age_s=self._cmd_watchdog.age(now_s),
                     sensor_ages_s={n: w.age(now_s) for n, w in self.sensors.items()})
        points = self._points(now_s)
        d.nearest_obstacle, clearance = self.checker.nearest(points)
        d.nearest_obstacle_m = clearance if math.isfinite(clearance) else -1.0
        target, d.level, d.reason = self._target(now_s, points, d)
        if d.level >= STOPPED:
            d.speed_scale = 0.0
        d.commanded = self._limiter.step(target, dt)
        if d.level <= LIMITED and not np.array_equal(d.commanded, target):
            self._check_ramp(points, d)
        self._log_transition(d)
        return d

    def _restart(self, now_s: float) -> None:
        """The clock went back (a simulator restarted, a bag looped): every age is unknown, so the robot
        stops until each input arrives again on the new timeline."""
        LOG.warning("clock moved back %.3f s: forgetting commands and sensors", self._last_output_s - now_s)
        self._cmd_watchdog.forget()
        for watchdog in self.sensors.values():
            watchdog.forget()
        self._obstacles.clear()
        self._requested = ZERO_TWIST.copy()
        self.rejection = None
        self.latch.forget_signal()  # the latch itself holds: only a reset clears it
        self._limiter.reset()
        self._last_output_s = self._due_s = None

    def _points(self, now_s: float) -> np.ndarray:
        fresh = [p for name, p in self._obstacles.items() if not self.sensors[name].expired(now_s)]
        if not fresh:
            return np.zeros((0, 2))
        return fresh[0] if len(fresh) == 1 else np.concatenate(fresh)

    def _stale_sensor_reasons(self, now_s: float) -> list[str]:
        return [self.sensors[s].describe(now_s) for s in self.config.required_sensors
                if self.sensors[s].expired(now_s)]

    def _target(self, now_s: float, points: np.ndarray, d: Decision) -> tuple[np.ndarray, SafetyState, str]:
        if self.latch.latched:
            return ZERO_TWIST, EMERGENCY_STOP, f"emergency stop latched: {self.latch.cause}"
        stale = self._stale_sensor_reasons(now_s)
        if stale:
            return ZERO_TWIST, STOPPED, "stale sensor: " + "; ".join(stale)
        if self._cmd_watchdog.expired(now_s):
            return ZERO_TWIST, STOPPED, "command watchdog: " + self._cmd_watchdog.describe(now_s)
        if self.rejection is not None:
            return ZERO_TWIST, STOPPED, f"command refused: {self.rejection}"
        twist, d.clamped_axes = clamp_axes(self._requested, self._axis_limits)
        reasons = []
        if d.clamped_axes:
            reasons.append("clamped " + ", ".join(d.clamped_axes))
        choice = self.checker.safest((twist[0], twist[1], twist[5]), points)
        d.speed_scale = choice.scale
        d.limiting_obstacle = choice.limiting_point
        if choice.kind is not Choice.REQUEST:
            px, py = choice.limiting_point
            where = f"obstacle at ({px:.2f}, {py:.2f}) m in {self.config.base_frame}"
            if choice.kind is Choice.SCALED:
                twist = twist * choice.scale
                reasons.append(f"collision avoidance: speed scaled to {choice.scale:.2f} for {where}")
            elif choice.kind is Choice.SLIDE:
                vx, vy, wz = choice.twist
                twist = np.array([vx, vy, twist[2], twist[3], twist[4], wz]) * choice.scale
                reasons.append(f"collision avoidance: sliding along {where}: approach component removed, "
                               f"scale {choice.scale:.2f}")
            elif choice.kind is Choice.TURN:
                twist = np.concatenate([np.zeros(3), twist[3:]])
                reasons.append(f"collision avoidance: no safe linear motion ({where}), turning in place only")
            else:  # a stop is all zeros, whatever else the request held
                return ZERO_TWIST, STOPPED, f"collision avoidance: no safe motion, {where}"
        return twist, (LIMITED if reasons else OK), "; ".join(reasons)

    def _check_ramp(self, points: np.ndarray, d: Decision) -> None:
        """While accelerating, the axes ramp separately, so the output can point elsewhere than the checked
        target (speeding up forward while a sideways part brakes at once); it gets its own check."""
        result = self.checker.check((d.commanded[0], d.commanded[1], d.commanded[5]), points)
        if result.scale < 1.0:
            d.commanded = self._limiter.brake_to(d.commanded * result.scale)
            d.speed_scale = min(d.speed_scale, result.scale)
            d.level = LIMITED
            px, py = result.limiting_point
            d.reason = "; ".join(filter(None, [d.reason, f"collision avoidance: accelerating output scaled to "
                                                         f"{result.scale:.2f} for obstacle at ({px:.2f}, {py:.2f})"
                                                         f" m in {self.config.base_frame}"]))

    def _log_transition(self, d: Decision) -> None:
        if d.level != self._last_level:
            log = LOG.info if d.level <= LIMITED else LOG.warning
            log("safety status %s -> %s%s", self._last_level.name if self._last_level is not None else "-",
                d.status, f": {d.reason}" if d.reason else "")
            self._last_level = d.level
