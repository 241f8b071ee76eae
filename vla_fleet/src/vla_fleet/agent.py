"""The robot agent's state machine: one robot's fleet status, the task it runs and how that task ends.

ROS-free: the node feeds in parsed inputs (odometry, battery, e-stop, health, sim ground truth, a
real robot's done signal, assignments) with their ROS time and asks `tick(now)` what to publish.
Outputs are plain values: `Feedback` for /task_feedback and the text for the robot's task_command.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from vla_monitoring.config import ConfigError, param
from vla_msgs.states import RobotState, TaskState
from vla_msgs.tasks import TaskRejectedError, normalise, parse_task_command, task_command_json

LOG = logging.getLogger(__name__)

# How a task's success is known: the simulator's ground truth (`sim/state` says this robot reached
# this task's target), a real robot's done topic (std_msgs/Bool true), or a fixed time.
SUCCESS_CONDITIONS: tuple[str, ...] = ("sim", "topic", "timeout")
# The text that idles the policy (and clears the simulator's task) between tasks.
IDLE_COMMAND = "standby"


@dataclass
class AgentConfig:
    """Every parameter of robot_agent_node (config/robot_agent.yaml mirrors it); times in s."""

    robot_id: str = param("robot_1", nonempty=True, help="this robot's id in the fleet (and the simulator)")
    capabilities: list[str] = param(["camera", "lidar"], items=str,
                                    help="what this robot can do; the manager matches a task's capabilities")
    status_rate: float = param(1.0, lo=0.1, hi=20.0, help="/robot_status and /fleet/robot_status rate [Hz]")
    success_condition: str = param("sim", choices=SUCCESS_CONDITIONS,
                                   help="sim: sim/state reached; topic: ~success_topic true; timeout: "
                                        "~success_after_s after the start")
    success_topic: str = param("task_done", nonempty=True,
                               help="std_msgs/Bool; true ends the running task with success (topic mode)")
    success_after_s: float = param(30.0, lo=0.1, hi=86400.0, help="a task succeeds this long after its start "
                                                                   "(timeout mode)")
    task_timeout_s: float = param(180.0, lo=1.0, hi=86400.0, help="a task not done within this long fails")
    battery_low_percent: float = param(20.0, lo=0.0, hi=100.0, help="idle below this -> charging")
    battery_resume_percent: float = param(80.0, lo=0.0, hi=100.0, help="charging until at least this")
    dock_command: str = param("", help="task_command that sends the robot to its dock when it goes charging; "
                                       "empty = the robot is docked by other means (it only idles)")
    command_resend_s: float = param(2.0, lo=0.0, hi=600.0,
                                    help="task_command sent again this often until the policy (vla/inference_stats) "
                                         "and, in simulation, sim/state show the task; 0 = never")
    input_timeout_s: float = param(5.0, lo=0.1, hi=600.0,
                                   help="odom or battery_state older than this -> error (unknown = unsafe)")

    def check(self) -> None:
        if self.battery_resume_percent <= self.battery_low_percent:
            raise ConfigError(f"~battery_resume_percent ({self.battery_resume_percent}) must be above "
                              f"~battery_low_percent ({self.battery_low_percent})")
        if self.dock_command:
            try:
                parse_task_command(self.dock_command)
            except TaskRejectedError as exc:
                raise ConfigError(f"~dock_command is not a task command: {exc}") from exc


class AssignmentError(ValueError):
    """A /task_assignment for this robot that cannot be taken as it is."""


@dataclass(frozen=True)
class Feedback:
    task_id: str
    state: TaskState
    reason: str = ""
    # a step of a coordinated task: {"task", "phase", "slot", ...} from its assignment, repeated so that
    # /task_feedback says which phase ended (the barrier itself is the manager's, from its store)
    coordination: Mapping | None = None


@dataclass(frozen=True)
class Status:
    """One /robot_status report."""

    robot_id: str
    status: RobotState
    position: tuple[float, float, float]
    battery_percent: float
    current_task_id: str
    capabilities: tuple[str, ...]
    reason: str  # why the robot is in error or charging; empty otherwise
    # How the last task ended, so that a manager that missed its feedback (down, restarted) learns it.
    last_task: Feedback | None = None


@dataclass
class _Task:
    task_id: str
    description: str
    started_at: float
    command: str
    sent_at: float
    policy_took: bool = False
    sim_took: bool = False
    coordination: Mapping | None = None


@dataclass
class Outputs:
    """What one input or tick asks the node to publish, in order."""

    feedback: list[Feedback] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


class RobotAgent:
    def __init__(self, config: AgentConfig):
        self.cfg = config
        self.position: tuple[float, float, float] | None = None
        self.position_at = -math.inf
        self.battery: float | None = None  # percent
        self.battery_at = -math.inf
        self.estop = False
        self.health_failure = ""
        self.task: _Task | None = None
        self.charging = False
        self.done_signal_at = -math.inf
        self.sim_reached_at = -math.inf
        self.error_reason = ""
        # until the robot has once been free of faults (its health node and inputs up), a fault is start-up,
        # not an error worth an ERROR line
        self.ready = False
        self.last_task: Feedback | None = None

    # ---- inputs -------------------------------------------------------------------------------
    def note_position(self, now: float, x: float, y: float, z: float) -> None:
        if not all(math.isfinite(v) for v in (x, y, z)):
            raise ValueError(f"odom position not finite: {(x, y, z)}")
        self.position, self.position_at = (x, y, z), now

    def note_battery(self, now: float, fraction: float) -> None:
        """sensor_msgs/BatteryState.percentage, 0..1."""
        if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
            raise ValueError(f"battery percentage {fraction} outside 0..1")
        self.battery, self.battery_at = 100.0 * fraction, now

    def note_estop(self, active: bool) -> None:
        self.estop = bool(active)

    def note_health(self, doc: Mapping) -> None:
        """A parsed vla_health document: a failure is overall_status false at level critical."""
        healthy, level = doc.get("overall_status"), doc.get("level")
        if not isinstance(healthy, bool):
            raise ValueError(f"vla_health overall_status is not a bool: {healthy!r}")
        if healthy is False and level == "critical":
            bad = [k for k, v in (doc.get("components") or {}).items() if v is False]
            self.health_failure = "health critical" + (f" ({', '.join(sorted(bad))})" if bad else "")
        else:
            self.health_failure = ""

    def note_sim_state(self, now: float, doc: Mapping) -> None:
        """A parsed sim/state document: success when this robot's entry names the running task and
        says reached (the task text is what the simulator took from our task_command)."""
        entry = doc["robots"].get(self.cfg.robot_id)
        if entry is None:
            return  # another world, or the robot is not simulated: no ground truth for us
        if not isinstance(entry, Mapping):
            raise ValueError(f"sim/state robots.{self.cfg.robot_id} is not an object")
        task = self.task
        if task is None or entry.get("task") != normalise(task.description):
            return
        task.sim_took = True
        if entry.get("reached") is True and doc["timestamp"] >= task.started_at:
            self.sim_reached_at = now

    def note_policy_task(self, task_text: str) -> None:
        """The instruction the policy reports acting on (vla/inference_stats current_task)."""
        if self.task is not None and task_text and normalise(task_text) == normalise(self.task.description):
            self.task.policy_took = True

    def note_done_signal(self, now: float, done: bool) -> None:
        if done:
            self.done_signal_at = now

    def note_assignment(self, now: float, doc: Mapping) -> Outputs:
        """A parsed /task_assignment. Ours to take, re-sent (ignored), a cancel of the running task
        (task.state 'cancelled'), or refused at once with failed feedback saying why."""
        out = Outputs()
        if doc["robot_id"] != self.cfg.robot_id:
            return out
        task = doc["task"]
        task_id, description = task.get("id"), task.get("description")
        if not isinstance(task_id, str) or not task_id:
            raise AssignmentError("task_assignment task has no string 'id'")
        if task.get("state") == TaskState.CANCELLED.value:
            if self.task is not None and self.task.task_id == task_id:
                self._finish(out, TaskState.CANCELLED, "cancelled by the fleet manager")
            return out
        if not isinstance(description, str):
            raise AssignmentError(f"task {task_id}: no string 'description'")
        if self.task is not None:
            if self.task.task_id != task_id:
                out.feedback.append(Feedback(task_id, TaskState.FAILED,
                                             f"{self.cfg.robot_id} is busy with task {self.task.task_id}"))
            return out
        try:
            command = task_command_json(description, task_id, self.cfg.robot_id)
        except TaskRejectedError as exc:
            out.feedback.append(Feedback(task_id, TaskState.FAILED, f"not a task command: {exc}"))
            return out
        if parse_task_command(command).idle:
            out.feedback.append(Feedback(task_id, TaskState.FAILED, f"{description!r} is an idle word, not a task"))
            return out
        coordination = task.get("coordination")
        if coordination is not None and not isinstance(coordination, Mapping):
            raise AssignmentError(f"task {task_id}: 'coordination' is not an object")
        refusal = self._unavailable(now)
        if refusal:
            # handed back, as a fault hands back a running task: the robot's state, not the task, is at fault,
            # and the manager (whose view of this robot may be up to a status period old) queues it again
            # without spending a retry
            out.feedback.append(Feedback(task_id, TaskState.CANCELLED, f"handed back: {refusal}", coordination))
            return out
        self.task = _Task(task_id, description, now, command, now, coordination=coordination)
        if self.last_task is not None and self.last_task.task_id == task_id:
            # the same task again (a retry): its previous end beside it as current would read as this run's
            self.last_task = None
        self.done_signal_at = self.sim_reached_at = -math.inf
        out.commands.append(command)
        out.feedback.append(Feedback(task_id, TaskState.STARTED, coordination=coordination))
        LOG.info("%s: started task %s (%s)", self.cfg.robot_id, task_id, description)
        return out

    # ---- time ---------------------------------------------------------------------------------
    def tick(self, now: float) -> Outputs:
        """Ends the running task when it succeeded, timed out or must be handed back; moves between
        charging and available."""
        out = Outputs()
        fault = self._fault(now)
        if self.task is not None:
            if fault:
                # handed back, not failed: the manager queues it again without spending a retry
                self._finish(out, TaskState.CANCELLED, f"handed back: {fault}")
            elif self._succeeded(now):
                self._finish(out, TaskState.SUCCEEDED, self._success_reason())
            elif now - self.task.started_at >= self.cfg.task_timeout_s:
                self._finish(out, TaskState.FAILED, f"not done within {self.cfg.task_timeout_s:g} s")
            elif self._resend_due(now):
                # a command published before its readers were connected is lost: say it again until
                # the policy (and the simulator) show they took it
                LOG.info("%s: task %s not taken up yet: task_command sent again", self.cfg.robot_id,
                         self.task.task_id)
                self.task.sent_at = now
                out.commands.append(self.task.command)
        if self.battery is not None and self.task is None:
            if not self.charging and self.battery < self.cfg.battery_low_percent:
                self.charging = True
                LOG.warning("%s: battery %.1f %% below %.1f %%: charging", self.cfg.robot_id, self.battery,
                            self.cfg.battery_low_percent)
                out.commands.append(self.cfg.dock_command or IDLE_COMMAND)
            elif self.charging and self.battery >= self.cfg.battery_resume_percent:
                self.charging = False
                LOG.info("%s: charged to %.1f %%: available", self.cfg.robot_id, self.battery)
                out.commands.append(IDLE_COMMAND)
        # logged when the kind of fault changes, not its wording ("no odom for 5.1 s", "... 6.1 s")
        if _fault_kind(fault) != _fault_kind(self.error_reason):
            if fault and self.ready:
                LOG.error("%s: error: %s", self.cfg.robot_id, fault)
            elif fault:
                LOG.info("%s: not ready yet: %s", self.cfg.robot_id, fault)
            elif self.ready:
                LOG.info("%s: error cleared (%s)", self.cfg.robot_id, self.error_reason)
        if not fault and not self.ready and self.status(now) is not None:
            self.ready = True
            LOG.info("%s: ready", self.cfg.robot_id)
        self.error_reason = fault
        return out

    def status(self, now: float) -> Status | None:
        """The report to publish; None until odometry and battery have been heard once (the robot has
        not joined the fleet yet)."""
        if self.position is None or self.battery is None:
            return None
        fault = self._fault(now)
        if fault:
            state, reason = RobotState.ERROR, fault
        elif self.task is not None:
            state, reason = RobotState.BUSY, ""
        elif self.charging:
            state, reason = RobotState.CHARGING, f"battery {self.battery:.1f} %"
        else:
            state, reason = RobotState.AVAILABLE, ""
        return Status(self.cfg.robot_id, state, self.position, self.battery,
                      self.task.task_id if self.task else "", tuple(self.cfg.capabilities), reason, self.last_task)

    # ---- internals ----------------------------------------------------------------------------
    def _fault(self, now: float) -> str:
        if self.estop:
            return "emergency stop"
        if self.health_failure:
            return self.health_failure
        if self.position is not None and now - self.position_at > self.cfg.input_timeout_s:
            return f"no odom for {now - self.position_at:.1f} s"
        if self.battery is not None and now - self.battery_at > self.cfg.input_timeout_s:
            return f"no battery_state for {now - self.battery_at:.1f} s"
        return ""

    def _unavailable(self, now: float) -> str:
        if self.position is None or self.battery is None:
            return f"{self.cfg.robot_id} has no odom or battery_state yet"
        fault = self._fault(now)
        if fault:
            return f"{self.cfg.robot_id} in error: {fault}"
        if self.charging:
            return f"{self.cfg.robot_id} is charging (battery {self.battery:.1f} %)"
        return ""

    def _resend_due(self, now: float) -> bool:
        task = self.task
        taken = task.policy_took and (task.sim_took or self.cfg.success_condition != "sim")
        return (not taken and self.cfg.command_resend_s > 0
                and now - task.sent_at >= self.cfg.command_resend_s)

    def _succeeded(self, now: float) -> bool:
        task = self.task
        if self.cfg.success_condition == "sim":
            return self.sim_reached_at >= task.started_at
        if self.cfg.success_condition == "topic":
            return self.done_signal_at >= task.started_at
        return now - task.started_at >= self.cfg.success_after_s

    def _success_reason(self) -> str:
        return {"sim": "simulator: target reached", "topic": f"{self.cfg.success_topic} said done",
                "timeout": f"ran {self.cfg.success_after_s:g} s"}[self.cfg.success_condition]

    def _finish(self, out: Outputs, state: TaskState, reason: str) -> None:
        task = self.task
        self.task = None
        out.commands.append(IDLE_COMMAND)
        self.last_task = Feedback(task.task_id, state, reason, task.coordination)
        out.feedback.append(self.last_task)
        log = LOG.info if state in (TaskState.SUCCEEDED, TaskState.CANCELLED) else LOG.warning
        log("%s: task %s %s: %s", self.cfg.robot_id, task.task_id, state.value, reason)


def _fault_kind(fault: str) -> str:
    """A fault without its changing numbers: what it is, for logging once per kind."""
    return fault.split(" for ", 1)[0]
