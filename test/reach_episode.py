"""One episode of the reach test judged from the sim/state stream alone (plain Python, no ROS).

A `reached: true` counts only when it follows, in this order: a state of the new layout (the seed
asked for, or other objects than before the reset) with the task cleared; then a state carrying
this episode's task with `reached: false` and a distance to its target; then `reached: true` for
the same task. A stale `reached` of the previous episode, or a state from before the reset, can
therefore never pass an episode.
"""

from __future__ import annotations

import enum
import threading


class Phase(enum.Enum):
    NEW_LAYOUT = "waiting for a state of the new layout, task cleared"
    TASK_TAKEN = "waiting for this task in sim/state with reached false"
    DRIVING = "driving to the target"
    REACHED = "reached"


class EpisodeJudge:
    """Feed it every sim/state (in arrival order); it advances through Phase and never goes back."""

    def __init__(self, robot_id: str, seed: int, description: str, objects_before: list):
        self.robot_id = robot_id
        self.seed = seed
        self.description = description
        self.objects_before = objects_before
        self.phase = Phase.NEW_LAYOUT
        self.first_distance: float | None = None
        self.last: dict = {}
        self._lock = threading.Lock()

    def _new_layout(self, state: dict) -> bool:
        if "seed" in state:
            return state["seed"] == self.seed
        return state.get("objects") != self.objects_before

    def feed(self, state: dict) -> Phase:
        robot = state["robots"][self.robot_id]
        with self._lock:
            self.last = robot
            if self.phase is Phase.NEW_LAYOUT:
                if self._new_layout(state) and robot.get("task") is None:
                    self.phase = Phase.TASK_TAKEN
            elif self.phase is Phase.TASK_TAKEN:
                if (robot.get("task") == self.description and robot.get("reached") is False
                        and isinstance(robot.get("distance_to_target"), (int, float))):
                    self.first_distance = float(robot["distance_to_target"])
                    self.phase = Phase.DRIVING
            elif (self.phase is Phase.DRIVING and robot.get("task") == self.description
                  and robot.get("reached") is True):
                self.phase = Phase.REACHED
            return self.phase

    def at_least(self, phase: Phase) -> bool:
        order = list(Phase)
        return order.index(self.phase) >= order.index(phase)
