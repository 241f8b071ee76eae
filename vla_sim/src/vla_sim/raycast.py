"""Ray casting: the one ray/shape intersection routine, vectorised over every solid and every ray, and the
nearest-hit cast that the lidar, the point cloud and the camera are built on.

Solids are round (objects, other robots: centre and radius) or boxes (axis-aligned square
footprints: centre and half side); the room's walls are handled apart, since every ray hits them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_sim.scene import Robot, WorldObject

# Hits nearer than this along a ray are the ray's own origin grazing a surface, not a return.
_MIN_HIT_M = 1e-6


@dataclass(frozen=True)
class Solids:
    """Everything a ray can hit besides the walls: round solids first, then boxes; `items[i]` is what
    row i of `intersect`'s result is (a WorldObject or a Robot)."""

    circles: np.ndarray  # [P, 3]: x, y, radius
    boxes: np.ndarray    # [Q, 3]: x, y, half side
    items: tuple[WorldObject | Robot, ...]

    @staticmethod
    def of_objects(objects: list[WorldObject]) -> Solids:
        """The static solids of a layout (rebuilt when objects move)."""
        circ = [o for o in objects if o.shape != "box"]
        boxes = [o for o in objects if o.shape == "box"]
        return Solids(np.array([[o.x, o.y, o.size_m] for o in circ], dtype=np.float64).reshape(-1, 3),
                      np.array([[o.x, o.y, o.size_m] for o in boxes], dtype=np.float64).reshape(-1, 3),
                      (*circ, *boxes))

    def with_robots(self, robots: list[Robot], radius_m: float) -> Solids:
        """These solids plus round robots (appended to the round ones)."""
        if not robots:
            return self
        p = len(self.circles)
        circles = np.vstack([self.circles, np.array([[rb.x, rb.y, radius_m] for rb in robots])])
        return Solids(circles, self.boxes, (*self.items[:p], *robots, *self.items[p:]))


def intersect(ox: float, oy: float, angles: np.ndarray, solids: Solids) -> tuple[np.ndarray, np.ndarray]:
    """Rays from (ox, oy) at world `angles` [N] against every solid: distance to the first surface
    [P + Q, N] (inf on a miss) and the ray's lateral offset from a round solid's centre in radii, 0..1
    ([P + Q, N]; 0 for boxes), which shades and shapes round things in the camera."""
    ux, uy = np.cos(angles), np.sin(angles)
    cx = solids.circles[:, 0:1] - ox
    cy = solids.circles[:, 1:2] - oy
    r = solids.circles[:, 2:3]
    b = cx * ux + cy * uy  # projection of the centre on the ray
    perp2 = cx * cx + cy * cy - b * b  # squared distance of the centre from the ray's line
    disc = r * r - perp2
    t_round = np.where(disc >= 0, b - np.sqrt(np.maximum(disc, 0.0)), np.inf)
    t_round = np.where(t_round > _MIN_HIT_M, t_round, np.inf)
    lateral = np.clip(np.sqrt(np.clip(perp2, 0, None)) / r, 0.0, 1.0)
    bx, by, s = solids.boxes[:, 0:1], solids.boxes[:, 1:2], solids.boxes[:, 2:3]
    # Slab test; a ray parallel to a slab divides by zero: +-inf outside it, NaN on its edge, and
    # either way the comparisons below turn the ray into a miss.
    with np.errstate(divide="ignore", invalid="ignore"):
        t1x, t2x = (bx - s - ox) / ux, (bx + s - ox) / ux
        t1y, t2y = (by - s - oy) / uy, (by + s - oy) / uy
    tnear = np.maximum(np.minimum(t1x, t2x), np.minimum(t1y, t2y))
    tfar = np.minimum(np.maximum(t1x, t2x), np.maximum(t1y, t2y))
    t_box = np.where((tnear <= tfar) & (tnear > _MIN_HIT_M), tnear, np.inf)
    return np.vstack([t_round, t_box]), np.vstack([lateral, np.zeros_like(t_box)])


def wall_distance(ox: float, oy: float, angles: np.ndarray, half_m: float) -> np.ndarray:
    """Distance along each ray from a point inside the room (walls at +-half_m) to the wall."""
    ux, uy = np.cos(angles), np.sin(angles)
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(ux > 0, (half_m - ox) / ux, np.where(ux < 0, (-half_m - ox) / ux, np.inf))
        ty = np.where(uy > 0, (half_m - oy) / uy, np.where(uy < 0, (-half_m - oy) / uy, np.inf))
    return np.minimum(tx, ty)


def cast(ox: float, oy: float, angles: np.ndarray, solids: Solids, half_m: float) -> tuple[np.ndarray, np.ndarray]:
    """The nearest hit of each ray: distance [N] and kind [N], 0 for the wall, i + 1 for `solids.items[i]`."""
    best = wall_distance(ox, oy, angles, half_m)
    kind = np.zeros(angles.shape, dtype=np.int32)
    t, _ = intersect(ox, oy, angles, solids)
    if len(t):
        idx = np.argmin(t, axis=0)  # the first of equal distances: round solids before boxes
        tmin = t[idx, np.arange(t.shape[1])]
        closer = tmin < best
        best = np.where(closer, tmin, best)
        kind = np.where(closer, idx + 1, kind).astype(np.int32)
    return best, kind
