"""Which free robot takes which pending task: one decision for all of them, by cost.

Priority comes first: a task of a lower priority number is never left for one of a higher number
that the same robot could take instead (each priority level adds a penalty larger than any travel
cost). Within a level, the total cost (travel distance plus a battery term) is minimal: the
Hungarian method (scipy's linear_sum_assignment) up to `max_matrix` cells, greedy in queue order
above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Robot:
    """A robot as the manager last heard it."""
    robot_id: str
    x: float
    y: float
    battery: float                   # percent 0..100
    capabilities: frozenset[str]


@dataclass(frozen=True)
class Job:
    """A pending task as the assignment sees it (queue order is the order of the list)."""
    task_id: str
    priority: int
    location: tuple[float, float] | None
    capabilities: frozenset[str]
    robot_id: str = ""               # only this robot may take it; empty = any
    exclude: frozenset[str] = frozenset()  # robots that may not take it (it failed on them; see the manager)


@dataclass(frozen=True)
class CostModel:
    battery_weight_m: float = 5.0    # metres of travel that an empty battery costs over a full one
    max_matrix: int = 250_000        # Hungarian up to this many cells, greedy above


def can_take(robot: Robot, job: Job) -> bool:
    return (job.capabilities <= robot.capabilities and (not job.robot_id or job.robot_id == robot.robot_id)
            and robot.robot_id not in job.exclude)


def cost(robot: Robot, job: Job, model: CostModel) -> float:
    """Travel distance to the task (0 without a location) plus the battery term."""
    travel = 0.0 if job.location is None else math.hypot(job.location[0] - robot.x, job.location[1] - robot.y)
    return travel + model.battery_weight_m * (1.0 - robot.battery / 100.0)


def assign(jobs: Sequence[Job], robots: Sequence[Robot], model: CostModel = CostModel()) -> list[tuple[str, str]]:
    """(task_id, robot_id) pairs: each robot and task at most once, only robots that can take the task."""
    if not jobs or not robots:
        return []
    if len(jobs) * len(robots) > model.max_matrix:
        return _greedy(jobs, robots, model)
    matrix, feasible = _costs(jobs, robots, model)
    if not feasible.any():
        return []
    # one priority level must outweigh any sum of travel costs of a whole round
    levels = {p: i for i, p in enumerate(sorted({j.priority for j in jobs}))}
    level_penalty = 1.0 + float(matrix[feasible].sum())
    infeasible = level_penalty * (len(levels) + 1) * max(len(jobs), len(robots))
    matrix += np.array([levels[j.priority] for j in jobs], dtype=float)[:, None] * level_penalty
    matrix[~feasible] = infeasible
    rows, cols = linear_sum_assignment(matrix)
    return [(jobs[i].task_id, robots[k].robot_id) for i, k in zip(rows, cols, strict=True) if feasible[i, k]]


def _costs(jobs: Sequence[Job], robots: Sequence[Robot], model: CostModel) -> tuple[np.ndarray, np.ndarray]:
    """The cost matrix (jobs x robots, what `cost` gives) and which pairs are allowed, in numpy."""
    rx = np.array([r.x for r in robots])
    ry = np.array([r.y for r in robots])
    battery_term = model.battery_weight_m * (1.0 - np.array([r.battery for r in robots]) / 100.0)
    located = np.array([j.location is not None for j in jobs])
    jx = np.array([j.location[0] if j.location else 0.0 for j in jobs])
    jy = np.array([j.location[1] if j.location else 0.0 for j in jobs])
    travel = np.hypot(jx[:, None] - rx[None, :], jy[:, None] - ry[None, :]) * located[:, None]
    matrix = travel + battery_term[None, :]
    # few distinct requirement sets in a round: one robot mask per set
    masks: dict[frozenset[str], np.ndarray] = {}
    index = {r.robot_id: k for k, r in enumerate(robots)}
    feasible = np.zeros(matrix.shape, dtype=bool)
    for i, job in enumerate(jobs):
        mask = masks.get(job.capabilities)
        if mask is None:
            mask = masks[job.capabilities] = np.array([job.capabilities <= r.capabilities for r in robots])
        if job.robot_id:
            k = index.get(job.robot_id)
            if k is not None and mask[k]:
                feasible[i, k] = True
        else:
            feasible[i] = mask
        for robot_id in job.exclude:
            k = index.get(robot_id)
            if k is not None:
                feasible[i, k] = False
    return matrix, feasible


def _greedy(jobs: Sequence[Job], robots: Sequence[Robot], model: CostModel) -> list[tuple[str, str]]:
    """Queue order: each task takes the cheapest free robot that can take it."""
    free = {r.robot_id: r for r in robots}
    pairs = []
    for job in jobs:
        best = min((r for r in free.values() if can_take(r, job)), key=lambda r: cost(r, job, model), default=None)
        if best is not None:
            pairs.append((job.task_id, best.robot_id))
            del free[best.robot_id]
            if not free:
                break
    return pairs
