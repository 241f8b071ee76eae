"""Health of one robot stack: the evidence behind each component, its verdict, and the overall level.

ROS-free: the node feeds arrival times (ROS time), parsed task commands and probe results in, and
asks for a `HealthReport` at any time. Components: vision (camera age and rate), language (the
policy takes up the current instruction), action (the policy acts while a task is active),
communication (master, and the cloud service when configured) and each expected node.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from dataclasses import dataclass

from vla_monitoring.config import ConfigError, param
from vla_msgs.states import HealthLevel
from vla_msgs.tasks import TaskCommand, normalise

LOG = logging.getLogger(__name__)

COMPONENTS: tuple[str, ...] = ("vision", "language", "action", "communication")
# Probe names of the communication component; a '.' is not legal in a ROS name, so no expected node
# can share one.
MASTER_PROBE = "communication.master"
CLOUD_PROBE = "communication.cloud"
# A relative or absolute ROS graph name (no private `~` names: a node pings others, not itself).
_NODE_NAME = re.compile(r"^/?[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*$")
# Frame arrival times kept for the rate: enough for 1 kHz over the longest allowed window.
_MAX_FRAME_TIMES = 60_000


@dataclass
class HealthConfig:
    """Every parameter of health_node (config/health.yaml mirrors it); times in s, rates in Hz."""

    robot_id: str = param("robot_1", nonempty=True, help="robot this report describes")
    publish_rate: float = param(1.0, lo=0.1, hi=50.0, help="vla_health / vla/health rate [Hz]")
    camera_timeout: float = param(1.0, lo=0.01, hi=60.0, help="vision unhealthy when no image for this long [s]")
    min_camera_rate: float = param(5.0, lo=0.0, hi=1000.0, help="vision unhealthy below this image rate [Hz]")
    rate_window: float = param(2.0, lo=0.1, hi=60.0, help="window of the camera rate [s]")
    action_timeout: float = param(1.0, lo=0.01, hi=60.0,
                                  help="while a task is active: longest gap in vla/action, and longest wait "
                                       "for the policy to take up a new instruction [s]")
    expected_nodes: list[str] = param(["safety_node"], items=str, nonempty=True,
                                      help="nodes that must be registered and answering getPid")
    node_ping_timeout: float = param(0.5, lo=0.01, hi=10.0, help="per-node ping timeout [s]")
    cloud_health_url: str = param("", help="cloud service /health URL; empty = no cloud check")
    cloud_timeout: float = param(1.0, lo=0.01, hi=10.0, help="HTTP timeout of the cloud health check [s]")
    critical_components: list[str] = param(["vision", "communication"], items=str, nonempty=True,
                                           help="unhealthy -> overall critical; any other -> degraded")

    def check(self) -> None:
        bad = [n for n in self.expected_nodes if not _NODE_NAME.match(n)]
        if bad:
            raise ConfigError(f"~expected_nodes holds names that are not ROS node names: {bad}")
        if self.cloud_health_url and not self.cloud_health_url.startswith(("http://", "https://")):
            raise ConfigError(f"~cloud_health_url must be empty or an http(s) URL, got {self.cloud_health_url!r}")
        known = set(COMPONENTS) | set(self.expected_nodes)
        unknown = [c for c in self.critical_components if c not in known]
        if unknown:
            raise ConfigError(f"~critical_components has unknown entries {unknown}; allowed: "
                              f"{[*COMPONENTS, *self.expected_nodes]}")


@dataclass(frozen=True)
class ComponentState:
    name: str
    healthy: bool
    reason: str     # why it is unhealthy; empty when healthy
    age_s: float    # since the last evidence of life; -1 if never seen (or not timed)


@dataclass(frozen=True)
class HealthReport:
    level: HealthLevel
    components: list[ComponentState]
    changes: list[ComponentState]  # components whose health changed since the previous report

    @property
    def healthy(self) -> bool:
        """vla_health's `overall_status`: true only when every component is healthy."""
        return self.level is HealthLevel.HEALTHY


class HealthMonitor:
    """Collects evidence and turns it into a `HealthReport`; every time is on one clock (ROS time)."""

    def __init__(self, config: HealthConfig):
        self.config = config
        self._frames: deque[float] = deque(maxlen=_MAX_FRAME_TIMES)
        self._first_frame_s: float | None = None
        self._task = ""                         # the active instruction; empty while idle
        self._task_s: float | None = None       # when it was given
        self._taken_up_s: float | None = None   # the newest evidence that the policy acts on it
        self._action_s: float | None = None
        self._probes: dict[str, tuple[bool, str]] = {}
        self._previous: dict[str, bool] = {}
        self.probe_names = [MASTER_PROBE, *([CLOUD_PROBE] if config.cloud_health_url else []),
                            *config.expected_nodes]

    # ------------------------------------------------------------------ evidence
    def note_frame(self, now_s: float) -> None:
        if self._first_frame_s is None:
            self._first_frame_s = now_s
        self._frames.append(now_s)
        while self._frames and now_s - self._frames[0] > self.config.rate_window:
            self._frames.popleft()

    def note_task(self, now_s: float, task: TaskCommand) -> None:
        """A task_command that vla_msgs.tasks accepted; an idle one ends the active task."""
        self._task = "" if task.idle else task.description
        self._task_s = now_s
        self._taken_up_s = None

    def note_policy_task(self, now_s: float, task: str) -> None:
        """The instruction the policy says it is acting on (vla/action `task`, vla/inference_stats
        `current_task`): evidence for language when it is the active one."""
        if self._task and normalise(task) == self._task:
            self._taken_up_s = now_s

    def note_action(self, now_s: float, task: str) -> None:
        self._action_s = now_s
        self.note_policy_task(now_s, task)

    def set_probe(self, name: str, healthy: bool, reason: str = "") -> None:
        """Records the newest result of one probe (MASTER_PROBE, CLOUD_PROBE or an expected node)."""
        if name not in self.probe_names:
            raise ValueError(f"no probe named {name!r} (known: {', '.join(self.probe_names)})")
        self._probes[name] = (bool(healthy), "" if healthy else reason)

    def probed(self) -> bool:
        """Whether every probe has a first result (an answer, or its deadline passed): before that, a
        component is not known to be down, only not checked yet, and no verdict is given."""
        return all(name in self._probes for name in self.probe_names)

    # ------------------------------------------------------------------ verdict
    def _vision(self, now_s: float) -> ComponentState:
        if not self._frames:
            return ComponentState("vision", False, "no camera image received yet", -1.0)
        age = now_s - self._frames[-1]
        if age > self.config.camera_timeout:
            return ComponentState("vision", False, f"camera silent for {age:.1f} s", age)
        window = self.config.rate_window
        # The rate means something only once a whole window has been watched.
        if now_s - self._first_frame_s >= window:
            rate = sum(1 for t in self._frames if now_s - t <= window) / window
            if rate < self.config.min_camera_rate:
                return ComponentState("vision", False,
                                      f"camera rate {rate:.1f} Hz below {self.config.min_camera_rate:.1f} Hz", age)
        return ComponentState("vision", True, "", age)

    def _language(self, now_s: float) -> ComponentState:
        if not self._task:
            return ComponentState("language", True, "", -1.0)  # idle: no instruction to take up
        timeout = self.config.action_timeout
        if self._taken_up_s is None:
            waited = now_s - self._task_s
            if waited > timeout:
                return ComponentState("language", False, f"policy has not taken up instruction {self._task!r:.80} "
                                                         f"in {waited:.1f} s", -1.0)
            return ComponentState("language", True, "", -1.0)  # within its time to take it up
        age = now_s - self._taken_up_s
        if age > timeout:
            return ComponentState("language", False,
                                  f"policy has not acted on instruction {self._task!r:.80} for {age:.1f} s", age)
        return ComponentState("language", True, "", age)

    def _action(self, now_s: float) -> ComponentState:
        age = -1.0 if self._action_s is None else now_s - self._action_s
        if not self._task:
            return ComponentState("action", True, "", age)  # an idle policy is expected to be silent
        # Actions of the previous task count from the moment the new one was given.
        since = max(self._task_s, self._action_s) if self._action_s is not None else self._task_s
        gap = now_s - since
        if gap > self.config.action_timeout:
            what = "no policy action received yet" if self._action_s is None else f"no policy action for {age:.1f} s"
            return ComponentState("action", False, what, age)
        return ComponentState("action", True, "", age)

    def _probe(self, component: str, names: list[str]) -> ComponentState:
        reasons = []
        for name in names:
            healthy, reason = self._probes.get(name, (False, "not checked yet"))
            if not healthy:
                reasons.append(reason if len(names) == 1 else f"{name.split('.')[-1]}: {reason}")
        return ComponentState(component, not reasons, "; ".join(reasons), -1.0)

    def report(self, now_s: float) -> HealthReport:
        states = [self._vision(now_s), self._language(now_s), self._action(now_s),
                  self._probe("communication", [n for n in self.probe_names if n.startswith("communication.")])]
        states += [self._probe(n, [n]) for n in self.config.expected_nodes]
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
            level = HealthLevel.CRITICAL
        elif unhealthy:
            level = HealthLevel.DEGRADED
        else:
            level = HealthLevel.HEALTHY
        return HealthReport(level, states, changes)
