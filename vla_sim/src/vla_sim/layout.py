"""Layouts: where a seed puts the four targets, the obstacles, the dock and every robot.

The same seed gives the same layout on every machine (numpy's PCG64 generator, a fixed draw order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_sim.scene import SAFETY_CLEARANCE_M, Robot, WorldConfig, WorldObject, edge_distance

# Least edge-to-edge gap between objects in a layout: a 0.4 m robot with the safety clearance on
# both sides (0.4 + 2 x 0.5 = 1.4 m) plus 0.1 m slack, so a route between any two objects exists.
OBJECT_GAP_M = 2 * SAFETY_CLEARANCE_M + 0.4 + 0.1
# Objects sit this far from the walls: too narrow for the 0.4 m robot to try, so it drives round the
# open side, where the gaps between objects (OBJECT_GAP_M) leave room for the bubble.
WALL_GAP_M = 0.3
OBSTACLE_RGB = (128, 128, 128)

# The four targets: (name, shape, size, height, rgb).
TARGET_SPECS: tuple[tuple[str, str, float, float, tuple[int, int, int]], ...] = (
    ("red cube", "box", 0.2, 0.4, (220, 30, 30)),
    ("blue ball", "ball", 0.22, 0.44, (30, 60, 220)),
    ("green cylinder", "cylinder", 0.18, 0.7, (30, 180, 50)),
    ("yellow cone", "cone", 0.22, 0.6, (235, 210, 30)),
)


@dataclass
class Layout:
    objects: list[WorldObject]
    robots: dict[str, Robot]
    dock_xy: tuple[float, float]


def draw_layout(seed: int, config: WorldConfig, robot_ids: list[str]) -> Layout:
    """Targets, then obstacles, then robots, each at a random free spot; robots start outside the
    safety bubble of every wall, object and other robot."""
    rng = np.random.default_rng(seed)
    half = config.room_size_m / 2
    objects: list[WorldObject] = []
    robots: dict[str, Robot] = {}
    for name, shape, size, height, rgb in TARGET_SPECS:
        x, y = _free_spot(rng, objects, robots, config, half - size - WALL_GAP_M, clearance=size + OBJECT_GAP_M)
        objects.append(WorldObject(name, shape, x, y, size, height, rgb, True))
    for i in range(config.num_obstacles):
        shape = "box" if rng.random() < 0.5 else "cylinder"
        size = float(rng.uniform(0.2, 0.35))
        x, y = _free_spot(rng, objects, robots, config, half - size - WALL_GAP_M, clearance=size + OBJECT_GAP_M)
        objects.append(WorldObject(f"obstacle_{i}", shape, x, y, size, 0.5, OBSTACLE_RGB, False))
    r = config.robot_radius_m
    for rid in robot_ids:
        x, y = _free_spot(rng, objects, robots, config, half - r - SAFETY_CLEARANCE_M,
                          clearance=r + SAFETY_CLEARANCE_M, robots_too=True)
        robots[rid] = Robot(rid, x, y, float(rng.uniform(-np.pi, np.pi)))
    return Layout(objects, robots, (-half + 0.6, -half + 0.6))


def _free_spot(
    rng: np.random.Generator, objects: list[WorldObject], robots: dict[str, Robot], config: WorldConfig,
    extent: float, clearance: float, robots_too: bool = False,
) -> tuple[float, float]:
    """A random point at least `clearance` from every object's edge (bounded retries)."""
    best, best_gap = (0.0, 0.0), -np.inf
    for _ in range(500):
        x, y = (float(v) for v in rng.uniform(-extent, extent, size=2))
        gap = min((edge_distance(o, x, y) for o in objects), default=np.inf)
        if robots_too:
            for rb in robots.values():
                gap = min(gap, math.hypot(rb.x - x, rb.y - y) - config.robot_radius_m)
        if gap >= clearance:
            return x, y
        if gap > best_gap:
            best, best_gap = (x, y), gap
    return best  # a crowded room: the roomiest spot found, still inside the walls
