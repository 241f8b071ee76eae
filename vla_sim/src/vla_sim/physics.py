"""Physics: commanded twists through acceleration limits, motion that slides along whatever it hits and
never enters it, collisions counted once per contact, battery drain and charging.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from vla_sim.scene import Robot, WorldConfig, WorldObject, edge_distance, on_dock, wrap_angle

LOG = logging.getLogger(__name__)


def clamp_twist(config: WorldConfig, linear_x: float, linear_y: float, angular_z: float) -> np.ndarray | None:
    """The command a robot takes from a twist, clamped to the axis limits; None for a non-finite one."""
    values = (linear_x, linear_y, angular_z)
    try:
        ok = all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        return None
    c = config
    return np.array([
        np.clip(float(linear_x), -c.max_linear_x_mps, c.max_linear_x_mps),
        np.clip(float(linear_y), -c.max_linear_y_mps, c.max_linear_y_mps),
        np.clip(float(angular_z), -c.max_angular_z_rps, c.max_angular_z_rps),
    ])


def step(config: WorldConfig, objects: list[WorldObject], robots: dict[str, Robot],
         dock_xy: tuple[float, float], dt: float) -> None:
    """Advances every robot by dt seconds, one after another (a later robot sees the earlier ones moved)."""
    c = config
    dv, dw = c.max_linear_accel_mps2 * dt, c.max_angular_accel_rps2 * dt
    for rb in robots.values():
        rb.vx += float(np.clip(rb.cmd[0] - rb.vx, -dv, dv))
        rb.vy += float(np.clip(rb.cmd[1] - rb.vy, -dv, dv))
        rb.wz += float(np.clip(rb.cmd[2] - rb.wz, -dw, dw))
        cy, sy = math.cos(rb.yaw), math.sin(rb.yaw)
        dx = (rb.vx * cy - rb.vy * sy) * dt
        dy = (rb.vx * sy + rb.vy * cy) * dt
        moved, blocked = _move(config, objects, robots, rb, dx, dy)
        if blocked:
            if not rb.in_contact:
                rb.collisions += 1
                LOG.debug("robot %s collided (total %d)", rb.robot_id, rb.collisions)
            rb.in_contact = True
        else:
            rb.in_contact = False
        rb.yaw = float(wrap_angle(rb.yaw + rb.wz * dt))
        rb.odom_distance_m += moved
        drain = c.battery_drain_idle_per_s * dt + c.battery_drain_motion_per_m * moved
        if on_dock(rb.x, rb.y, dock_xy, c.dock_radius_m):
            rb.battery = min(1.0, rb.battery + c.battery_charge_per_s * dt)
        else:
            rb.battery = max(0.0, rb.battery - drain)


def clearance(config: WorldConfig, objects: list[WorldObject], robots: dict[str, Robot], rb: Robot,
              x: float, y: float) -> float:
    """Smallest gap between robot `rb` placed at (x, y) and anything else; negative means overlap."""
    r = config.robot_radius_m
    half = config.room_size_m / 2
    gap = min(half - abs(x), half - abs(y)) - r
    for o in objects:
        gap = min(gap, edge_distance(o, x, y) - r)
    for other in robots.values():
        if other is not rb:
            gap = min(gap, math.hypot(other.x - x, other.y - y) - 2 * r)
    return gap


def _move(config: WorldConfig, objects: list[WorldObject], robots: dict[str, Robot], rb: Robot,
          dx: float, dy: float) -> tuple[float, bool]:
    """Moves a robot by (dx, dy), sliding along whatever it hits; never enters an obstacle.

    A blocked move advances to the point of contact, then slides the remainder along whichever
    world axis is free. Returns the distance moved and whether the move was blocked (a collision).
    """
    if dx == 0.0 and dy == 0.0:
        return 0.0, False

    def free(x: float, y: float) -> bool:
        return clearance(config, objects, robots, rb, x, y) >= 0.0

    x0, y0 = rb.x, rb.y
    if free(x0 + dx, y0 + dy):
        rb.x, rb.y = x0 + dx, y0 + dy
        return math.hypot(dx, dy), False
    lo, hi = 0.0, 1.0  # bisection on the free fraction of the move; 10 halvings resolve 0.1 mm
    for _ in range(10):
        mid = (lo + hi) / 2
        if free(x0 + mid * dx, y0 + mid * dy):
            lo = mid
        else:
            hi = mid
    rb.x, rb.y = x0 + lo * dx, y0 + lo * dy
    rest_x, rest_y = (1 - lo) * dx, (1 - lo) * dy
    for mx, my in ((rest_x, 0.0), (0.0, rest_y)):
        if (mx or my) and free(rb.x + mx, rb.y + my):
            rb.x += mx
            rb.y += my
            break
    # Contact bleeds speed, as friction would; a robot pressed head-on stays pressed but slow.
    rb.vx *= 0.5
    rb.vy *= 0.5
    return math.hypot(rb.x - x0, rb.y - y0), True
