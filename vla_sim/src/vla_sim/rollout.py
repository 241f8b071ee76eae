"""Episodes: a seeded single-robot world with a target, stepped at the control rate by any controller.

Shared by data generation (expert and DAgger rollouts) and evaluation, so both measure the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla_sim.expert import expert_action
from vla_sim.world import World

ROBOT_ID = "robot_1"
EPISODE_LIMIT_S = 30.0
CONTROL_DT_S = 0.1  # the 10 Hz control rate the action chunks assume


@dataclass
class EpisodeResult:
    seed: int
    target: str
    instruction: str
    success: bool
    time_s: float
    collisions: int


def make_world(seed: int, target: str, instruction: str) -> World:
    world = World([ROBOT_ID], seed=seed)
    world.set_target(ROBOT_ID, target, task=instruction)
    return world


def expert_chunk(world: World, robot_id: str, length: int, dt: float = CONTROL_DT_S) -> np.ndarray:
    """The expert's next `length` twists [length, 3], looked ahead on a snapshot that is then restored."""
    snap = world.snapshot()
    chunk = np.zeros((length, 3))
    for k in range(length):
        chunk[k] = expert_action(world, robot_id)
        world.set_twist(robot_id, *chunk[k])
        world.step(dt)
    world.restore(snap)
    return chunk


def run_episode(
    world: World,
    controller: Callable[[np.ndarray], np.ndarray],
    limit_s: float = EPISODE_LIMIT_S,
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> tuple[bool, float]:
    """Steps until the robot reaches its target or `limit_s` passes.

    `controller(image) -> twist [3]` sees only the camera; `on_frame(image)` may record the frame
    before the twist is applied. Returns (reached, simulated seconds taken).
    """
    steps = round(limit_s / CONTROL_DT_S)
    for _ in range(steps):
        if world.reached(ROBOT_ID):
            return True, world.time_s
        image = world.camera(ROBOT_ID)
        if on_frame is not None:
            on_frame(image)
        world.set_twist(ROBOT_ID, *controller(image))
        world.step(CONTROL_DT_S)
    return world.reached(ROBOT_ID), world.time_s
