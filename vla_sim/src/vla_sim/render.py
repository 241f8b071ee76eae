"""Sensors rendered from the ray caster: the first-person camera, the 2D lidar and the point cloud.

The camera casts one ray per image column and paints each solid's vertical span with a z-buffer;
the lidar and the cloud take the nearest hit per beam. The shipped policy was trained on these
frames: test_sim_renders.py holds them bit-for-bit to the recorded ones.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from vla_sim.raycast import cast, intersect, wall_distance
from vla_sim.scene import ROBOT_HEIGHT_M, WALL_HEIGHT_M, Robot, WorldConfig, WorldObject

if TYPE_CHECKING:
    from vla_sim.world import World

_WALL_RGB = np.array([200, 190, 170], dtype=np.float32)
_FLOOR_RGB = np.array([110, 100, 90], dtype=np.float32)
_SKY_RGB = np.array([225, 235, 245], dtype=np.float32)
_ROBOT_RGB = np.array([60, 60, 70], dtype=np.float32)


def camera(world: World, robot_id: str) -> np.ndarray:
    """First-person RGB image uint8 [H, W, 3]; column 0 is on the robot's left."""
    rb = world.robot(robot_id)
    c = world.config
    w, h = c.camera_width, c.camera_height
    focal = (w / 2) / math.tan(math.radians(c.camera_fov_deg) / 2)
    px = (np.arange(w) + 0.5 - w / 2) / focal  # tan of each column's angle, left of centre first
    rel = -np.arctan(px)  # image column 0 is on the robot's left (positive yaw)
    cos_rel = np.cos(rel)
    rows = (np.arange(h) + 0.5 - h / 2)[:, None]  # pixels below the horizon are positive
    img = np.empty((h, w, 3), dtype=np.float32)
    # Floor darkens and sky lightens with angle from the horizon: a horizon line cue.
    below = np.clip(rows / (h / 2), 0, 1)
    img[:] = np.where(rows[..., None] > 0, _FLOOR_RGB * (0.75 + 0.35 * below[..., None]), _SKY_RGB)
    zbuf = np.full((h, w), np.inf)
    angles = rb.yaw + rel
    # The wall is drawn first; solids are drawn one by one, nearest wins (z-buffer), so a short
    # object in front of the wall shows the wall above it.
    wall_t = wall_distance(rb.x, rb.y, angles, c.room_size_m / 2)
    _paint(c, img, zbuf, rows, focal, wall_t * cos_rel, 0.0, WALL_HEIGHT_M,
           np.broadcast_to(_WALL_RGB, (w, 3)), np.ones(w, bool))
    solids = world.solids(exclude=robot_id)
    dists, laterals = intersect(rb.x, rb.y, angles, solids)
    for item, dist, lat in zip(solids.items, dists, laterals, strict=True):
        hit = np.isfinite(dist)
        if not hit.any():
            continue
        depth = dist * cos_rel
        shade = np.clip(1.15 - 0.06 * depth, 0.55, 1.1)
        if isinstance(item, Robot):
            rgb, lo, hi = _ROBOT_RGB, 0.0, np.full(w, ROBOT_HEIGHT_M)
        else:
            rgb = np.array(item.rgb, dtype=np.float32)
            lo, hi = _vertical_span(item, lat)
            if item.shape != "box":
                shade = shade * (1.0 - 0.35 * lat**2)  # round things darken towards their silhouette
        colours = rgb[None, :] * shade[:, None]
        _paint(c, img, zbuf, rows, focal, depth, lo, hi, colours, hit)
    return np.clip(img, 0, 255).astype(np.uint8)


def lidar(world: World, robot_id: str) -> np.ndarray:
    """Ranges [beams] counter-clockwise from straight ahead over 360 deg; inf outside the range limits."""
    rb = world.robot(robot_id)
    c = world.config
    angles = rb.yaw + np.arange(c.lidar_beams) * (2 * np.pi / c.lidar_beams)
    dist, _ = cast(rb.x, rb.y, angles, world.solids(exclude=robot_id), c.room_size_m / 2)
    dist = dist.astype(np.float32)
    dist[(dist > c.lidar_range_max_m) | (dist < c.lidar_range_min_m)] = np.inf
    return dist


def point_cloud(world: World, robot_id: str) -> np.ndarray:
    """Points [N, 3] float32 in the robot's base frame: each ring's beams follow the 2D cast and end on
    what it hit, on the floor (downward rings), or nowhere (upward rings passing over it)."""
    rb = world.robot(robot_id)
    c = world.config
    rel = np.arange(c.cloud_beams) * (2 * np.pi / c.cloud_beams)
    solids = world.solids(exclude=robot_id)
    dist, kind = cast(rb.x, rb.y, rb.yaw + rel, solids, c.room_size_m / 2)
    heights = np.array([WALL_HEIGHT_M, *(_height_of(item) for item in solids.items)])[kind]
    pts = []
    for ring in c.cloud_rings_deg:
        tan_el = math.tan(math.radians(ring))
        d = dist.copy()
        z = c.lidar_height_m + d * tan_el
        over = z > heights  # the beam passes over what the 2D ray hit
        if tan_el < 0:
            floor_d = c.lidar_height_m / -tan_el
            hit_floor = (floor_d < d) | over
            d = np.where(hit_floor, floor_d, d)
            z = np.where(hit_floor, 0.0, z)
            valid = d <= c.lidar_range_max_m
        else:
            valid = ~over & (d <= c.lidar_range_max_m)
        slant = d * math.sqrt(1 + tan_el * tan_el)
        valid &= slant >= c.lidar_range_min_m
        pts.append(np.stack([d * np.cos(rel), d * np.sin(rel), z], axis=1)[valid])
    return np.concatenate(pts).astype(np.float32)


def _paint(config: WorldConfig, img: np.ndarray, zbuf: np.ndarray, rows: np.ndarray, focal: float,
           depth: np.ndarray, lo, hi, colours: np.ndarray, hit: np.ndarray) -> None:
    """Paints each column's vertical span [lo, hi] metres at `depth` where it is nearest."""
    ch = config.camera_height_m
    with np.errstate(divide="ignore", invalid="ignore"):
        top = focal * (ch - hi) / depth
        bottom = focal * (ch - lo) / depth
    mask = hit[None, :] & (rows >= top[None, :]) & (rows <= bottom[None, :]) & (depth[None, :] < zbuf)
    zbuf[mask] = np.broadcast_to(depth[None, :], zbuf.shape)[mask]
    img[mask] = np.broadcast_to(colours[None, :, :], img.shape)[mask]


def _height_of(item: WorldObject | Robot) -> float:
    return ROBOT_HEIGHT_M if isinstance(item, Robot) else item.height_m


def _vertical_span(obj: WorldObject, lateral: np.ndarray) -> tuple[np.ndarray | float, np.ndarray]:
    """Bottom and top (metres) of an object's column at a normalised lateral offset: its silhouette."""
    if obj.shape == "ball":
        half = obj.height_m / 2
        extent = half * np.sqrt(np.clip(1 - lateral**2, 0, 1))
        return half - extent, half + extent
    if obj.shape == "cone":
        return 0.0, obj.height_m * np.clip(1.0 - lateral, 0.05, 1.0)
    return 0.0, np.full(lateral.shape, obj.height_m)
