"""The simulated world: a walled room, coloured objects, holonomic robots and their sensors (no ROS).

`World` holds the state (layout, robots, clock) and is the one entry point; each job lives in its
own module: `layout` (where a seed puts things), `physics` (motion, contacts, battery), `raycast`
(the one intersection routine), `render` (camera, lidar, point cloud) and `ground_truth` (distance
to target, reached, `sim/state`). `scene` holds the data types and the task's distances.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from vla_monitoring.config import build_config
from vla_sim import ground_truth, physics, render
from vla_sim.layout import draw_layout
from vla_sim.raycast import Solids, cast
from vla_sim.scene import (
    REACHED_DISTANCE_M,
    SAFETY_CLEARANCE_M,
    TARGET_NAMES,
    Robot,
    WorldConfig,
    WorldError,
    WorldObject,
    edge_distance,
    wrap_angle,
)

__all__ = [
    "REACHED_DISTANCE_M", "SAFETY_CLEARANCE_M", "TARGET_NAMES", "Robot", "World", "WorldConfig", "WorldError",
    "WorldObject", "wrap_angle",
]

LOG = logging.getLogger(__name__)
MAX_ROBOTS = 16


class World:
    """A seeded room with targets, obstacles and robots; steps physics and renders sensors.

    Raises WorldError for requests it cannot honour and vla_monitoring's ConfigError, naming the
    field, for a WorldConfig value outside its range.
    """

    def __init__(self, robot_ids: list[str] | tuple[str, ...], seed: int = 0, config: WorldConfig | None = None):
        self.config: WorldConfig = build_config(WorldConfig, vars(config) if config is not None else {})
        if not robot_ids:
            raise WorldError("at least one robot id is required")
        if len(set(robot_ids)) != len(robot_ids):
            raise WorldError(f"robot ids must be unique, got {list(robot_ids)}")
        if len(robot_ids) > MAX_ROBOTS:
            raise WorldError(f"at most {MAX_ROBOTS} robots fit in one room")
        self.robot_ids = list(robot_ids)
        self.objects: list[WorldObject] = []
        self.robots: dict[str, Robot] = {}
        self.dock_xy = (0.0, 0.0)
        self.time_s = 0.0
        self.seed = 0
        self._static = Solids.of_objects([])
        self.reset(seed)

    # ------------------------------------------------------------------ layout
    def reset(self, seed: int) -> None:
        """Draws a new layout and robot poses from `seed`; the same seed gives the same world. Tasks clear."""
        if not isinstance(seed, (int, np.integer)) or seed < 0 or seed >= 2**63:
            raise WorldError(f"seed must be an integer in [0, 2^63), got {seed!r}")
        self.seed = int(seed)
        layout = draw_layout(self.seed, self.config, self.robot_ids)
        self.objects, self.robots, self.dock_xy = layout.objects, layout.robots, layout.dock_xy
        self.time_s = 0.0
        self.rebuild_solids()
        LOG.debug("world reset with seed %d", self.seed)

    def rebuild_solids(self) -> None:
        """Re-packs the objects for the ray caster: call it after moving objects by hand."""
        self._static = Solids.of_objects(self.objects)

    def solids(self, exclude: str | None = None) -> Solids:
        """Everything a ray can hit besides the walls: the objects and every robot but `exclude`."""
        others = [rb for rid, rb in self.robots.items() if rid != exclude]
        return self._static.with_robots(others, self.config.robot_radius_m)

    @staticmethod
    def edge_distance(obj: WorldObject, x: float, y: float) -> float:
        """Distance from a point to an object's surface (negative inside)."""
        return edge_distance(obj, x, y)

    # ------------------------------------------------------------------ control
    def robot(self, robot_id: str) -> Robot:
        try:
            return self.robots[robot_id]
        except KeyError:
            raise WorldError(f"unknown robot id {robot_id!r}; known: {', '.join(self.robot_ids)}") from None

    def object(self, name: str) -> WorldObject:
        for o in self.objects:
            if o.name == name:
                return o
        raise WorldError(f"unknown object {name!r}")

    def set_twist(self, robot_id: str, linear_x: float, linear_y: float, angular_z: float) -> bool:
        """Sets a robot's commanded body twist (clamped). Non-finite values are rejected, counted, return False."""
        rb = self.robot(robot_id)
        cmd = physics.clamp_twist(self.config, linear_x, linear_y, angular_z)
        if cmd is None:
            rb.rejected_twists += 1
            return False
        rb.cmd = cmd
        return True

    def set_target(self, robot_id: str, target: str | None, task: str | None = None) -> None:
        """Gives a robot a task text and its target object (one of TARGET_NAMES); None clears either.

        A task whose target could not be resolved keeps its text with target None, so `sim/state`
        shows what the operator asked for.
        """
        rb = self.robot(robot_id)
        if target is not None and target not in TARGET_NAMES:
            raise WorldError(f"unknown target {target!r}; known: {', '.join(TARGET_NAMES)}")
        rb.target, rb.task = target, task

    def step(self, dt: float) -> None:
        """Advances physics by dt seconds: acceleration limits, collision-free motion, battery."""
        if not (isinstance(dt, (int, float)) and 0 < dt <= 1.0):
            raise WorldError(f"dt must be in (0, 1] s, got {dt!r}")
        physics.step(self.config, self.objects, self.robots, self.dock_xy, dt)
        self.time_s += dt

    def _clearance(self, rb: Robot, x: float, y: float) -> float:
        """Smallest gap between robot `rb` placed at (x, y) and anything else; negative means overlap."""
        return physics.clearance(self.config, self.objects, self.robots, rb, x, y)

    def snapshot(self) -> tuple[float, dict[str, Robot]]:
        """A copy of the mutable state (robots and clock) for `restore`; the layout is not copied."""
        return self.time_s, {rid: dataclasses.replace(rb, cmd=rb.cmd.copy()) for rid, rb in self.robots.items()}

    def restore(self, snap: tuple[float, dict[str, Robot]]) -> None:
        """Returns to a `snapshot`: used to look ahead with the expert without disturbing an episode."""
        self.time_s = snap[0]
        self.robots = {rid: dataclasses.replace(rb, cmd=rb.cmd.copy()) for rid, rb in snap[1].items()}

    # ------------------------------------------------------------------ ground truth
    def distance_to_target(self, robot_id: str) -> float | None:
        return ground_truth.distance_to_target(self, robot_id)

    def reached(self, robot_id: str) -> bool:
        return ground_truth.reached(self, robot_id)

    def target_bearing(self, robot_id: str) -> float | None:
        return ground_truth.target_bearing(self, robot_id)

    def docked(self, robot_id: str) -> bool:
        return ground_truth.docked(self, robot_id)

    def state(self) -> dict:
        return ground_truth.state(self)

    # ------------------------------------------------------------------ sensors
    def cast(
        self, ox: float, oy: float, angles: np.ndarray, exclude: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit of 2D rays from (ox, oy): distance [N] and kind [N] indexing `casting_table(exclude)`."""
        return cast(ox, oy, angles, self.solids(exclude), self.config.room_size_m / 2)

    def casting_table(self, exclude: str | None = None) -> list:
        """What each `kind` from `cast` refers to: None (wall), a WorldObject or a Robot."""
        return [None, *self.solids(exclude).items]

    def camera(self, robot_id: str) -> np.ndarray:
        return render.camera(self, robot_id)

    def lidar(self, robot_id: str) -> np.ndarray:
        return render.lidar(self, robot_id)

    def point_cloud(self, robot_id: str) -> np.ndarray:
        return render.point_cloud(self, robot_id)
