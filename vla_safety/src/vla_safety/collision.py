"""Collision avoidance: obstacle points in the base frame and the speed scale that keeps clear of them.

The robot is a disc of radius `robot_radius`. Its path under a constant body twist is an arc; a
twist scaled by s follows the same arc, only s times as far within the horizon. So one prediction
of the full twist gives the largest safe s: the fraction of the horizon before the first sample
where the disc would come closer than `collision_threshold` to a point. Points already inside the
threshold only forbid motion that brings the robot closer to them, so it can always back away,
and turning in place never moves the disc.

Scaling alone freezes a robot whose request keeps leaning into an obstacle it passes. `safest`
therefore also tries the request with the approach component removed at the first contact
("slide along", twice for a corner), each re-checked by the same prediction, and returns the
safe candidate closest to the request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np


class BadSensorDataError(ValueError):
    """A sensor message whose content is inconsistent; the message says what is wrong."""


def scan_points(ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float,
                range_max: float) -> np.ndarray:
    """Converts LaserScan ranges to points [N, 2] in the scanner frame; out-of-range beams are dropped."""
    r = np.asarray(ranges, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise BadSensorDataError("scan has no ranges")
    for name, value in (("angle_min", angle_min), ("angle_increment", angle_increment),
                        ("range_min", range_min), ("range_max", range_max)):
        if not math.isfinite(value):
            raise BadSensorDataError(f"scan {name} is not finite ({value})")
    if angle_increment == 0.0 or abs(angle_increment) * (r.size - 1) > 2 * math.pi + 1e-3:
        raise BadSensorDataError(
            f"scan angle_increment {angle_increment} does not fit {r.size} ranges within one turn")
    if not 0.0 <= range_min < range_max:
        raise BadSensorDataError(f"scan range_min {range_min} / range_max {range_max} are inconsistent")
    valid = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    idx = np.flatnonzero(valid)
    angles = angle_min + idx * angle_increment
    rv = r[idx]
    return np.stack([rv * np.cos(angles), rv * np.sin(angles)], axis=1)


def to_base_frame(points: np.ndarray, pose: list[float] | tuple[float, ...]) -> np.ndarray:
    """Transforms points [N, 2] or [N, 3] from a sensor frame at `pose` (x, y, z, yaw) to the base frame."""
    x, y, z, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    out = np.empty_like(points, dtype=np.float64)
    out[:, 0] = c * points[:, 0] - s * points[:, 1] + x
    out[:, 1] = s * points[:, 0] + c * points[:, 1] + y
    if points.shape[1] > 2:
        out[:, 2] = points[:, 2] + z
    return out


def reduce_points(points: np.ndarray, pose: list[float] | tuple[float, ...], max_range: float, voxel: float,
                  max_points: int, z_range: tuple[float, float] | None = None) -> np.ndarray:
    """The sensor points [N, 2|3] that matter, in the base frame [M, 2]: within `max_range` of the base,
    inside `z_range` (3D input), thinned to one per `voxel` grid cell and capped at `max_points` nearest.

    Cropping happens in the sensor frame before the transform, so a 30,000-point cloud costs a few
    vectorised passes and only the survivors are transformed.
    """
    if points.shape[0] == 0:
        return np.zeros((0, 2))
    x, y, z, _yaw = pose
    sensor_range = max_range + math.hypot(x, y)
    px, py = points[:, 0], points[:, 1]
    mask = px * px + py * py <= sensor_range * sensor_range  # NaN compares false: dropped here
    if z_range is not None and points.shape[1] > 2:
        pz = points[:, 2] + z
        mask &= (pz >= z_range[0]) & (pz <= z_range[1])
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return np.zeros((0, 2))
    xy = to_base_frame(points[idx, :2], (x, y, 0.0, _yaw))
    d2 = np.einsum("ij,ij->i", xy, xy)
    near = d2 <= max_range * max_range
    xy, d2 = xy[near], d2[near]
    if xy.shape[0] == 0:
        return np.zeros((0, 2))
    # One point per occupied grid cell; a dense grid over the crop square avoids sorting.
    side = math.ceil(2 * max_range / voxel) + 1
    cells = np.clip(((xy + max_range) / voxel).astype(np.int64), 0, side - 1)
    flat = cells[:, 0] * side + cells[:, 1]
    owner = np.full(side * side, -1, dtype=np.int64)
    owner[flat] = np.arange(flat.size)
    first = owner[owner >= 0]
    xy, d2 = xy[first], d2[first]
    if xy.shape[0] > max_points:
        xy = xy[np.argpartition(d2, max_points)[:max_points]]
    return np.ascontiguousarray(xy)


def predict_path(twist_xyw: tuple[float, float, float], horizon_s: float, steps: int) -> np.ndarray:
    """Centre positions [steps + 1, 2] of the robot under a constant body twist, from t = 0 to the horizon."""
    vx, vy, wz = twist_xyw
    t = np.linspace(0.0, horizon_s, steps + 1)
    if abs(wz) < 1e-6:
        return np.stack([vx * t, vy * t], axis=1)
    s, c = np.sin(wz * t), np.cos(wz * t)
    return np.stack([(vx * s + vy * (c - 1.0)) / wz, (vx * (1.0 - c) + vy * s) / wz], axis=1)


@dataclass(frozen=True)
class CollisionResult:
    """Outcome of one check: the speed scale and the point that limited it."""

    scale: float  # 0..1 applied to the whole twist
    limiting_point: tuple[float, float] | None  # base-frame point that set the scale (None when 1.0)
    nearest_point: tuple[float, float] | None  # nearest obstacle point overall
    nearest_clearance: float  # footprint edge to nearest point [m]; inf if none


class Choice(Enum):
    """Which candidate `safest` chose, in its order of preference among equals."""

    REQUEST = "request"  # the request at full scale
    SCALED = "scaled"  # the request slowed down
    SLIDE = "slide"  # the request with its approach component removed
    TURN = "turn"  # turning in place only
    STOP = "stop"


@dataclass(frozen=True)
class SafeCommand:
    """The command `safest` chose: execute `twist` (vx, vy, wz) times `scale`."""

    kind: Choice
    twist: tuple[float, float, float]  # unscaled candidate; a slide keeps the requested wz
    scale: float
    limiting_point: tuple[float, float] | None  # contact point of the request (None for "request")
    slide_limit: tuple[float, float] | None  # for a scaled-down slide: the point that limited it
    request: CollisionResult  # the check of the full request (nearest point, clearance)


class CollisionChecker:
    """Finds the largest fraction of a twist that keeps the footprint clear of obstacle points."""

    def __init__(self, robot_radius: float, threshold: float, horizon_s: float, steps: int):
        self.robot_radius = robot_radius
        self.threshold = threshold
        self.horizon_s = horizon_s
        self.steps = steps
        self._keep_out = robot_radius + threshold

    def nearest(self, points: np.ndarray) -> tuple[tuple[float, float] | None, float]:
        if points.shape[0] == 0:
            return None, math.inf
        d2 = np.einsum("ij,ij->i", points, points)
        i = int(np.argmin(d2))
        return (float(points[i, 0]), float(points[i, 1])), math.sqrt(float(d2[i])) - self.robot_radius

    def check(self, twist_xyw: tuple[float, float, float], points: np.ndarray) -> CollisionResult:
        """Largest scale in [0, 1] of the planar twist (vx, vy, wz) that stays clear over the horizon."""
        nearest, clearance = self.nearest(points)
        vx, vy, _ = twist_xyw
        speed = math.hypot(vx, vy)
        if points.shape[0] == 0 or speed < 1e-9:
            return CollisionResult(1.0, None, nearest, clearance)  # a disc turning in place moves nothing
        reach = speed * self.horizon_s + self._keep_out
        d2_0 = np.einsum("ij,ij->i", points, points)
        pts = points[d2_0 <= reach * reach]
        if pts.shape[0] == 0:
            return CollisionResult(1.0, None, nearest, clearance)
        d2_0 = d2_0[d2_0 <= reach * reach]
        path = predict_path(twist_xyw, self.horizon_s, self.steps)[1:]  # [K, 2]
        # Squared distance of every point to every future centre: [K, N]
        d2 = (path[:, 0:1] - pts[:, 0]) ** 2 + (path[:, 1:2] - pts[:, 1]) ** 2
        limit2 = self._keep_out * self._keep_out
        violating = (d2 < limit2) & (d2 < d2_0 - 1e-9)
        hits = violating.any(axis=1)
        if not hits.any():
            return CollisionResult(1.0, None, nearest, clearance)
        k = int(np.argmax(hits))  # first violating future sample (path index k + 1)
        scale = k / self.steps
        # the deepest violation at first contact: its direction is the contact normal a slide removes
        j = int(np.argmin(np.where(violating[k], d2[k], np.inf)))
        return CollisionResult(scale, (float(pts[j, 0]), float(pts[j, 1])), nearest, clearance)

    def safest(self, twist_xyw: tuple[float, float, float], points: np.ndarray,
               angular_weight_m: float | None = None) -> SafeCommand:
        """The safe command closest to the planar request (vx, vy, wz): the request at full or reduced
        scale, the request sliding along the obstacle it would hit (once, or twice for a corner) at its
        own safe scale, turning in place, or stop. Every candidate except turn/stop is checked by the
        same prediction, so none brings the footprint closer than the threshold to any point (or closer
        than it already is to a point inside the threshold).

        Closeness is the distance between executed and requested twists, the angular error weighted by
        `angular_weight_m` (default: the robot radius, i.e. speed at the footprint edge).
        """
        w_ang = self.robot_radius if angular_weight_m is None else angular_weight_m
        req = np.asarray(twist_xyw, dtype=np.float64)
        first = self.check(twist_xyw, points)
        if first.scale >= 1.0:
            return SafeCommand(Choice.REQUEST, tuple(req), 1.0, None, None, first)
        candidates = []
        if first.scale > 0.0:
            candidates.append(SafeCommand(Choice.SCALED, tuple(req), first.scale, first.limiting_point, None, first))
        twist, result = req, first
        normals: list[np.ndarray] = []
        for _ in range(2):  # slide along the first contact, then along a second one (a corner)
            normal = self._contact_normal(twist, result)
            normals.append(normal)
            v = twist[:2].copy()
            for n in normals:  # remove every approach component met so far
                v -= max(0.0, float(v @ n)) * n
            if any(float(v @ n) > 1e-9 for n in normals) or math.hypot(v[0], v[1]) < 1e-6:
                break
            twist = np.array([v[0], v[1], req[2]])
            result = self.check(tuple(twist), points)
            if result.scale > 0.0:
                candidates.append(SafeCommand(Choice.SLIDE, tuple(twist), result.scale, first.limiting_point,
                                              result.limiting_point, first))
            if result.scale >= 1.0:
                break
        if req[2] != 0.0:
            candidates.append(SafeCommand(Choice.TURN, (0.0, 0.0, float(req[2])), 1.0, first.limiting_point, None,
                                          first))
        candidates.append(SafeCommand(Choice.STOP, (0.0, 0.0, 0.0), 0.0, first.limiting_point, None, first))
        executed = np.array([np.asarray(c.twist) * c.scale for c in candidates])
        err = executed - req
        cost = err[:, 0] ** 2 + err[:, 1] ** 2 + (w_ang * err[:, 2]) ** 2
        return candidates[int(np.argmin(cost))]  # first of equals: scaled before slide before turn

    def _contact_normal(self, twist: np.ndarray, result: CollisionResult) -> np.ndarray:
        """Unit vector, in the body frame at first contact, from the robot towards the limiting point."""
        vx, vy, wz = twist
        t = result.scale * self.horizon_s  # the last safe sample
        if abs(wz) < 1e-6:
            pos, heading = np.array([vx * t, vy * t]), 0.0
        else:
            s, c = math.sin(wz * t), math.cos(wz * t)
            pos, heading = np.array([(vx * s + vy * (c - 1.0)) / wz, (vx * (1.0 - c) + vy * s) / wz]), wz * t
        d = np.asarray(result.limiting_point) - pos
        d /= max(float(np.hypot(d[0], d[1])), 1e-9)
        ch, sh = math.cos(heading), math.sin(heading)
        return np.array([ch * d[0] + sh * d[1], -sh * d[0] + ch * d[1]])
