"""Ground truth: what the simulator knows and a robot's sensors do not (distance to the target, reached,
the target's bearing, docked), and the `sim/state` document built from it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from vla_sim.scene import REACHED_DISTANCE_M, edge_distance, on_dock, wrap_angle

if TYPE_CHECKING:
    from vla_sim.world import World


def distance_to_target(world: World, robot_id: str) -> float | None:
    """Metres from the robot's edge to its target's edge, None without a target."""
    rb = world.robot(robot_id)
    if rb.target is None:
        return None
    return max(0.0, edge_distance(world.object(rb.target), rb.x, rb.y) - world.config.robot_radius_m)


def reached(world: World, robot_id: str) -> bool:
    """The task definition: the robot's edge within REACHED_DISTANCE_M of its target's edge."""
    d = distance_to_target(world, robot_id)
    return d is not None and d <= REACHED_DISTANCE_M


def target_bearing(world: World, robot_id: str) -> float | None:
    """Angle of the target's centre from the robot's heading (radians, left positive), None without one."""
    rb = world.robot(robot_id)
    if rb.target is None:
        return None
    o = world.object(rb.target)
    return float(wrap_angle(math.atan2(o.y - rb.y, o.x - rb.x) - rb.yaw))


def docked(world: World, robot_id: str) -> bool:
    """True while the robot stands on the dock (and charges)."""
    rb = world.robot(robot_id)
    return on_dock(rb.x, rb.y, world.dock_xy, world.config.dock_radius_m)


def state(world: World) -> dict:
    """Ground truth in the shape of `sim/state` (without the timestamp)."""
    robots = {}
    for rid, rb in world.robots.items():
        d = distance_to_target(world, rid)
        robots[rid] = {
            "x": round(rb.x, 4), "y": round(rb.y, 4), "yaw": round(rb.yaw, 4),
            "collisions": rb.collisions, "task": rb.task, "target": rb.target,
            "distance_to_target": None if d is None else round(d, 4),
            "reached": d is not None and d <= REACHED_DISTANCE_M,
            "battery": round(rb.battery, 4),
        }
    return {"seed": world.seed, "time_s": round(world.time_s, 3), "robots": robots,
            "objects": [o.to_dict() for o in world.objects]}
