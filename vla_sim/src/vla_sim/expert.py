"""The scripted expert: privileged state in, body twist out. It labels every training frame.

Behaviour: while the target is outside the camera's view it turns left on the spot (a rule the
camera-only student can copy: "nothing to go to in view, turn left"); once in view it drives at
it, steering round obstacles with a repulsive + tangential field; it stops when the target is reached.
"""

from __future__ import annotations

import math

import numpy as np

from vla_sim.world import REACHED_DISTANCE_M, SAFETY_CLEARANCE_M, World, wrap_angle

# Stop a little inside the success radius so that the student's small errors still count as reached:
# 0.5 m, right at the deployed safety bubble (see world.REACHED_DISTANCE_M), which never lets the
# robot nearer.
STOP_DISTANCE_M = REACHED_DISTANCE_M - 0.1
# The target counts as in view when its centre is this far from the optical axis (camera half-FOV is 45 deg).
VIEW_HALF_ANGLE_RAD = math.radians(40.0)
SEARCH_TURN_RPS = 1.0
# Obstacles, walls and other robots nearer than this (edge to edge) push the robot away. The push
# grows from nothing at the influence distance to the full driving speed at the safety bubble
# (SAFETY_CLEARANCE_M, 0.5 m), so the expert steers round with more than the bubble's clearance and
# never asks for motion that the safety layer would cut.
_INFLUENCE_M = SAFETY_CLEARANCE_M + 0.25


def expert_action(world: World, robot_id: str) -> np.ndarray:
    """The expert's twist (linear.x, linear.y, angular.z) for one robot; zeros without a target."""
    rb = world.robot(robot_id)
    c = world.config
    d = world.distance_to_target(robot_id)
    if d is None or d <= STOP_DISTANCE_M:
        return np.zeros(3)
    bearing = world.target_bearing(robot_id)
    if abs(bearing) > VIEW_HALF_ANGLE_RAD:
        return np.array([0.0, 0.0, SEARCH_TURN_RPS])
    target = world.object(rb.target)
    to_t = np.array([target.x - rb.x, target.y - rb.y])
    to_t /= max(np.linalg.norm(to_t), 1e-9)
    speed = float(np.clip(0.9 * (d - STOP_DISTANCE_M) + 0.15, 0.15, c.max_linear_x_mps))
    v = speed * to_t
    r = c.robot_radius_m
    half = c.room_size_m / 2
    pushes: list[tuple[np.ndarray, float]] = []
    for o in world.objects:
        if o.name == rb.target:
            continue
        gap = world.edge_distance(o, rb.x, rb.y) - r
        if gap < _INFLUENCE_M:
            away = np.array([rb.x - o.x, rb.y - o.y])
            pushes.append((away / max(np.linalg.norm(away), 1e-9), gap))
    for other in world.robots.values():
        if other is not rb:
            gap = math.hypot(other.x - rb.x, other.y - rb.y) - 2 * r
            if gap < _INFLUENCE_M:
                away = np.array([rb.x - other.x, rb.y - other.y])
                pushes.append((away / max(np.linalg.norm(away), 1e-9), gap))
    for axis, sign in ((0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0)):
        gap = half - sign * (rb.x if axis == 0 else rb.y) - r
        if gap < _INFLUENCE_M:
            away = np.zeros(2)
            away[axis] = -sign
            pushes.append((away, gap))
    for away, gap in pushes:
        strength = speed * min((_INFLUENCE_M - gap) / (_INFLUENCE_M - SAFETY_CLEARANCE_M), 1.5)
        heading_in = float(np.dot(to_t, away))
        if heading_in < 0:  # the goal lies beyond the obstacle: go round it rather than stall
            tangent = np.array([-away[1], away[0]])
            if np.dot(tangent, to_t) < 0:
                tangent = -tangent
            v += strength * (1.5 * tangent - heading_in * away)
        else:
            v += 0.3 * strength * away
    cy, sy = math.cos(rb.yaw), math.sin(rb.yaw)
    vx = cy * v[0] + sy * v[1]
    vy = -sy * v[0] + cy * v[1]
    wz = float(np.clip(2.0 * wrap_angle(bearing), -c.max_angular_z_rps, c.max_angular_z_rps))
    # Scale the whole velocity into the axis limits (rather than clipping each axis) so the direction
    # the field chose, round the obstacle, survives the weaker sideways axis.
    scale = min(1.0, c.max_linear_y_mps / max(abs(vy), 1e-9),
                (c.max_linear_x_mps if vx >= 0 else 0.2) / max(abs(vx), 1e-9))
    return np.array([float(vx * scale), float(vy * scale), wz])
