"""Health of a robot stack: evidence of life per component, an overall verdict, and change events."""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

from vla_safety.config import COMPONENTS, HealthConfig

LOG = logging.getLogger(__name__)

HEALTHY, DEGRADED, CRITICAL = "healthy", "degraded", "critical"
IDLE_TASKS = ("standby", "stop")
_MAX_FRAME_TIMES = 1000


@dataclass(frozen=True)
class ComponentState:
    name: str
    healthy: bool
    reason: str
    age_s: float  # since the last evidence of life; -1 if never seen


@dataclass(frozen=True)
class HealthReport:
    overall_status: str
    components: list[ComponentState]
    changes: list[ComponentState]  # components whose health changed since the previous report


class HealthMonitor:
    """Collects evidence (arrival times, probe results) and turns it into a `HealthReport`.

    Node names in `expected_nodes` are components of their own; anything else reported through
    `set_probe` under an unknown name is warned about and ignored.
    """

    def __init__(self, config: HealthConfig):
        self.config = config
        self._frames: deque[float] = deque(maxlen=_MAX_FRAME_TIMES)
        self._instruction_s: float | None = None
        self._task = ""
        self._model_version = ""
        self._stats_s: float | None = None
        self._action_s: float | None = None
        self._probes: dict[str, tuple[bool, str]] = {}
        self._previous: dict[str, bool] = {}
        self.known = list(COMPONENTS) + list(config.expected_nodes)
        self.unknown_updates = 0

    # ------------------------------------------------------------------ evidence
    def note_frame(self, now_s: float) -> None:
        self._frames.append(now_s)

    def note_instruction(self, now_s: float, text: str) -> None:
        self._instruction_s, self._task = now_s, text.strip()

    def note_stats(self, now_s: float, model_version: str) -> None:
        self._stats_s, self._model_version = now_s, model_version

    def note_action(self, now_s: float) -> None:
        self._action_s = now_s

    def set_probe(self, name: str, healthy: bool, reason: str = "") -> bool:
        """Records a probe result (communication, a node name); False (and a warning) for unknown names."""
        if name not in self.known:
            self.unknown_updates += 1
            LOG.warning("health update for unknown component %r ignored (known: %s)", name, ", ".join(self.known))
            return False
        self._probes[name] = (bool(healthy), reason)
        return True

    # ------------------------------------------------------------------ verdict
    def _vision(self, now_s: float) -> ComponentState:
        if not self._frames:
            return ComponentState("vision", False, "no camera image received yet", -1.0)
        age = now_s - self._frames[-1]
        if age > self.config.camera_timeout:
            return ComponentState("vision", False, f"camera silent for {age:.1f} s", age)
        window = [t for t in self._frames if now_s - t <= self.config.rate_window]
        rate = len(window) / self.config.rate_window
        if len(self._frames) >= 2 and rate < self.config.min_camera_rate and now_s - self._frames[0] >= \
                self.config.rate_window:
            return ComponentState("vision", False,
                                  f"camera rate {rate:.1f} Hz below {self.config.min_camera_rate:.1f} Hz", age)
        return ComponentState("vision", True, "", age)

    def _language(self, now_s: float) -> ComponentState:
        age = -1.0 if self._instruction_s is None else now_s - self._instruction_s
        if not self._model_version:
            return ComponentState("language", False, "encoder not ready (no model_version in inference stats)", age)
        if self._instruction_s is None:
            return ComponentState("language", False, "no instruction received on task_command", age)
        return ComponentState("language", True, "", age)

    def _action(self, now_s: float) -> ComponentState:
        age = -1.0 if self._action_s is None else now_s - self._action_s
        if self._task.lower() in IDLE_TASKS:
            return ComponentState("action", True, "", age)  # an idle policy is expected to be silent
        if self._action_s is None:
            return ComponentState("action", False, "no policy action received yet", age)
        if age > self.config.action_timeout:
            return ComponentState("action", False, f"no policy action for {age:.1f} s", age)
        return ComponentState("action", True, "", age)

    def _probe(self, name: str) -> ComponentState:
        healthy, reason = self._probes.get(name, (False, "not checked yet"))
        return ComponentState(name, healthy, reason, -1.0)

    def report(self, now_s: float) -> HealthReport:
        states = [self._vision(now_s), self._language(now_s), self._action(now_s), self._probe("communication")]
        states += [self._probe(n) for n in self.config.expected_nodes]
        states = [s if math.isfinite(s.age_s) else ComponentState(s.name, s.healthy, s.reason, -1.0) for s in states]
        changes = [s for s in states if self._previous.get(s.name) != s.healthy]
        for s in changes:
            if s.name in self._previous or not s.healthy:
                (LOG.info if s.healthy else LOG.warning)(
                    "component %s is now %s%s", s.name, "healthy" if s.healthy else "UNHEALTHY",
                    f": {s.reason}" if s.reason else "")
            self._previous[s.name] = s.healthy
        unhealthy = [s.name for s in states if not s.healthy]
        if any(n in self.config.critical_components for n in unhealthy):
            overall = CRITICAL
        elif unhealthy:
            overall = DEGRADED
        else:
            overall = HEALTHY
        return HealthReport(overall, states, changes)
