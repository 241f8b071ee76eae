"""Coordinated tasks, the plain logic: a task for k robots as an action sequence of phases with barriers.

A phase holds one step per robot slot (slot i's robot does step i); every step is an ordinary
task for one robot. Phase n+1 starts only when every slot has finished phase n: the barrier. A
slot whose robot is lost (silent, in error, handed its step back) is vacant: the group pauses (no
barrier releases) until a replacement robot has done that slot's step of the current phase. The
store (vla_fleet.store) keeps the slots and applies these rules inside its transactions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A slot's state: its robot runs the step of its phase, finished it (waits at the barrier), or the
# slot has no robot (lost) and waits for a replacement.
SLOT_RUNNING, SLOT_DONE, SLOT_VACANT = "running", "done", "vacant"
# What a change of a group is, as /vla_coordination's `event` says it.
STARTED, PHASE, RETRY, PAUSED, RESUMED = "started", "phase", "retry", "paused", "resumed"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
VACANT_ROBOT = "(vacant)"  # how a vacant slot shows in the parent task's robot_id
MAX_PHASES = 100


@dataclass(frozen=True)
class Step:
    """One robot's part of one phase: its task_command text and where it goes (for the cost)."""
    description: str
    location: tuple[float, float] | None = None

    def to_json(self) -> dict:
        return {"description": self.description, "location": list(self.location) if self.location else None}


@dataclass
class Slot:
    """One robot position of a running group, as stored."""
    slot: int
    robot_id: str              # '' while vacant
    phase: int                 # the phase this slot is in (0-based)
    state: str                 # SLOT_RUNNING, SLOT_DONE or SLOT_VACANT
    step_id: str = ""          # the step task running this slot's phase ('' when done or vacant)
    vacant_since: float | None = None


@dataclass
class GroupChange:
    """What a transition of a group did: the steps to send (assigned) or to stop (cancelled) on their
    robots, and the /vla_coordination event. Returned by the store, published by the node."""
    task_id: str
    event: str
    phase: int
    robots: list[str]
    action_sequence: list[list[Step]]
    reason: str = ""
    description: str = ""
    priority: int = 0
    assigned: list[Any] = field(default_factory=list)     # StoredTask steps to send
    cancelled: list[Any] = field(default_factory=list)    # StoredTask steps their robots must stop


def parse_action_sequence(params: Mapping, description: str, robots: int,
                          places: Mapping[str, tuple[float, float]]) -> list[list[Step]]:
    """The phases of a coordinated task from its parameters: `action_sequence` is a list of phases,
    each a list of `robots` steps, a step a task_command text or {"description", "place" or
    "location"}; without one, every robot does `description` in one phase. Raises ValueError naming
    what is wrong."""
    raw = params.get("action_sequence")
    if raw is None:
        return [[Step(description) for _ in range(robots)]]
    if not isinstance(raw, list) or not raw:
        raise ValueError("'action_sequence' must be a non-empty list of phases")
    if len(raw) > MAX_PHASES:
        raise ValueError(f"'action_sequence' has {len(raw)} phases, at most {MAX_PHASES}")
    phases = []
    for n, phase in enumerate(raw):
        if not isinstance(phase, list) or len(phase) != robots:
            raise ValueError(f"'action_sequence' phase {n} must be a list of {robots} steps (one per robot)")
        phases.append([_step(step, places, f"phase {n} step {i}") for i, step in enumerate(phase)])
    return phases


def _step(raw: Any, places: Mapping[str, tuple[float, float]], where: str) -> Step:
    if isinstance(raw, str):
        raw = {"description": raw}
    if not isinstance(raw, Mapping):
        raise ValueError(f"'action_sequence' {where}: a text or an object with 'description'")
    text = raw.get("description")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"'action_sequence' {where}: 'description' must be a non-empty string")
    location = None
    if raw.get("location") is not None:
        loc = raw["location"]
        if (not isinstance(loc, list) or len(loc) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in loc)):
            raise ValueError(f"'action_sequence' {where}: 'location' must be [x, y] of finite numbers")
        location = (float(loc[0]), float(loc[1]))
    elif raw.get("place") is not None:
        place = raw["place"]
        if not isinstance(place, str) or place not in places:
            raise ValueError(f"'action_sequence' {where}: unknown place {place!r:.40}")
        location = places[place]
    return Step(text.strip(), location)


def sequence_to_json(phases: Sequence[Sequence[Step]]) -> list[list[dict]]:
    return [[s.to_json() for s in phase] for phase in phases]


def sequence_from_json(raw: list) -> list[list[Step]]:
    """The normalised sequence as the store keeps it in the task's parameters."""
    return [[Step(s["description"], tuple(s["location"]) if s.get("location") else None) for s in phase]
            for phase in raw]


def barrier(slots: Sequence[Slot], phases: int) -> str:
    """What the group does next: 'wait' (a slot runs its step, or is vacant), 'release' (every slot
    finished the same phase, more phases follow) or 'complete' (every slot finished the last phase)."""
    if not slots or any(s.state != SLOT_DONE for s in slots):
        return "wait"
    phase = {s.phase for s in slots}
    if len(phase) != 1:
        # cannot happen through the store's transitions; never release on it
        return "wait"
    return "complete" if phase.pop() + 1 >= phases else "release"


def robots_label(slots: Sequence[Slot]) -> str:
    """The parent task's robot_id while it runs: its robots in slot order (unique among running groups,
    as a robot is in one group at most)."""
    return ",".join(s.robot_id or VACANT_ROBOT for s in sorted(slots, key=lambda s: s.slot))


def coordination_fields(change: GroupChange) -> dict:
    """The fields of a /vla_coordination document (json_forms.COORDINATION plus `event`, `phase`,
    `phases`, `reason`): the task, its robots in slot order, the action sequence with each robot's step."""
    return {
        "task": {"id": change.task_id, "description": change.description, "priority": change.priority},
        "robots": list(change.robots),
        "action_sequence": [
            {"phase": n, "steps": [{"slot": i, "robot_id": change.robots[i] if i < len(change.robots) else "",
                                    **s.to_json()} for i, s in enumerate(phase)]}
            for n, phase in enumerate(change.action_sequence)],
        "event": change.event,
        "phase": change.phase,
        "phases": len(change.action_sequence),
        "reason": change.reason,
    }
