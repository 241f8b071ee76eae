"""The simulated world: a walled room, coloured objects, holonomic robots and their sensors.

Pure numpy, no ROS. One `World` holds the layout (drawn from a seed), every robot's state, and
the vectorised ray caster that serves the camera, the 2D lidar and the point cloud.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

import numpy as np

LOG = logging.getLogger(__name__)

# A robot whose edge is this close to its target's edge has reached it. The one definition used by
# the expert, the evaluation, `sim/state` and the tests.
#
# It agrees with the safety envelope the robot is deployed behind: vla_safety's default
# (config/safety.yaml) keeps the footprint edge at least collision_threshold = 0.5 m from every
# obstacle point, targets included, so no robot can ever get nearer an object than 0.5 m. "At the
# object" therefore means inside 0.6 m: the bubble plus 0.1 m of slack. The expert stops at the
# bubble itself (REACHED_DISTANCE_M - 0.1) and keeps that clearance from everything else too.
REACHED_DISTANCE_M = 0.6
# The clearance the deployed safety layer enforces (footprint edge to any obstacle point, metres).
SAFETY_CLEARANCE_M = REACHED_DISTANCE_M - 0.1
# Least edge-to-edge gap between objects in a layout: a 0.4 m robot with the safety clearance on
# both sides (0.4 + 2 x 0.5 = 1.4 m) plus 0.1 m slack, so a route between any two objects exists.
_OBJECT_GAP_M = 2 * SAFETY_CLEARANCE_M + 0.4 + 0.1

TARGET_NAMES: tuple[str, ...] = ("red cube", "blue ball", "green cylinder", "yellow cone")

# Action layout of the policy contract: linear.x, linear.y, linear.z, angular.x, angular.y, angular.z.
ACTION_NAMES: tuple[str, ...] = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")

_WALL_RGB = np.array([200, 190, 170], dtype=np.float32)
_FLOOR_RGB = np.array([110, 100, 90], dtype=np.float32)
_SKY_RGB = np.array([225, 235, 245], dtype=np.float32)
_ROBOT_RGB = np.array([60, 60, 70], dtype=np.float32)
_OBSTACLE_RGB = np.array([128, 128, 128], dtype=np.float32)
_WALL_HEIGHT_M = 1.0
_ROBOT_HEIGHT_M = 0.35


class WorldError(ValueError):
    """A request the world cannot honour (unknown robot, unknown target, bad twist)."""


@dataclass
class WorldConfig:
    """Every tunable of the world; the ROS node fills it from `~` params."""

    room_size_m: float = 8.0
    robot_radius_m: float = 0.2
    max_linear_x_mps: float = 0.8
    max_linear_y_mps: float = 0.4
    max_angular_z_rps: float = 1.0
    max_linear_accel_mps2: float = 2.0
    max_angular_accel_rps2: float = 4.0
    num_obstacles: int = 3
    camera_width: int = 96
    camera_height: int = 96
    camera_fov_deg: float = 90.0
    camera_height_m: float = 0.3
    lidar_beams: int = 360
    lidar_range_min_m: float = 0.05
    lidar_range_max_m: float = 8.0
    cloud_rings_deg: tuple[float, ...] = (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0)
    cloud_beams: int = 180
    lidar_height_m: float = 0.25
    battery_drain_idle_per_s: float = 1.0e-4
    battery_drain_motion_per_m: float = 2.0e-3
    battery_charge_per_s: float = 0.02
    dock_radius_m: float = 0.5

    def validate(self) -> None:
        """Raises WorldError naming the first field outside its allowed range."""
        positive = [
            "room_size_m", "robot_radius_m", "max_linear_x_mps", "max_linear_y_mps", "max_angular_z_rps",
            "max_linear_accel_mps2", "max_angular_accel_rps2", "camera_height_m", "lidar_range_max_m",
            "lidar_height_m", "battery_charge_per_s", "dock_radius_m",
        ]
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise WorldError(f"{name} must be a finite number > 0, got {value!r}")
        if not 4.0 <= self.room_size_m <= 50.0:
            raise WorldError(f"room_size_m must be in [4, 50], got {self.room_size_m}")
        if not 0.05 <= self.robot_radius_m <= 0.5:
            raise WorldError(f"robot_radius_m must be in [0.05, 0.5], got {self.robot_radius_m}")
        if not 0 <= self.num_obstacles <= 10:
            raise WorldError(f"num_obstacles must be in [0, 10], got {self.num_obstacles}")
        for name in ("camera_width", "camera_height"):
            if not 16 <= getattr(self, name) <= 640:
                raise WorldError(f"{name} must be in [16, 640], got {getattr(self, name)}")
        if not 30.0 <= self.camera_fov_deg <= 150.0:
            raise WorldError(f"camera_fov_deg must be in [30, 150], got {self.camera_fov_deg}")
        for name in ("lidar_beams", "cloud_beams"):
            if not 8 <= getattr(self, name) <= 4096:
                raise WorldError(f"{name} must be in [8, 4096], got {getattr(self, name)}")
        if not 0 <= self.lidar_range_min_m < self.lidar_range_max_m:
            raise WorldError("lidar_range_min_m must be >= 0 and below lidar_range_max_m")
        if not 1 <= len(self.cloud_rings_deg) <= 64 or any(abs(a) >= 60 for a in self.cloud_rings_deg):
            raise WorldError("cloud_rings_deg must list 1..64 elevations within (-60, 60) degrees")
        for name in ("battery_drain_idle_per_s", "battery_drain_motion_per_m"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise WorldError(f"{name} must be a finite number >= 0")


@dataclass
class WorldObject:
    """A static object on the floor: a box (square footprint) or a round one."""

    name: str
    shape: str  # "box", "ball", "cylinder", "cone"
    x: float
    y: float
    size_m: float  # half side for boxes, radius for round objects
    height_m: float
    rgb: tuple[int, int, int]
    is_target: bool

    def to_dict(self) -> dict:
        return {
            "name": self.name, "shape": self.shape, "x": round(self.x, 4), "y": round(self.y, 4),
            "size": round(self.size_m, 4), "height": round(self.height_m, 4), "target": self.is_target,
        }


@dataclass
class Robot:
    """One robot's state. Velocities are in the body frame (x forward, y left)."""

    robot_id: str
    x: float
    y: float
    yaw: float
    vx: float = 0.0
    vy: float = 0.0
    wz: float = 0.0
    cmd: np.ndarray = field(default_factory=lambda: np.zeros(3))
    collisions: int = 0
    in_contact: bool = False
    battery: float = 1.0
    odom_distance_m: float = 0.0
    task: str | None = None
    target: str | None = None
    rejected_twists: int = 0


# Specifications of the four targets: (name, shape, size, height, rgb).
_TARGET_SPECS: tuple[tuple[str, str, float, float, tuple[int, int, int]], ...] = (
    ("red cube", "box", 0.2, 0.4, (220, 30, 30)),
    ("blue ball", "ball", 0.22, 0.44, (30, 60, 220)),
    ("green cylinder", "cylinder", 0.18, 0.7, (30, 180, 50)),
    ("yellow cone", "cone", 0.22, 0.6, (235, 210, 30)),
)


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Wraps an angle to [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


class World:
    """A seeded room with targets, obstacles and robots; steps physics and renders sensors."""

    def __init__(self, robot_ids: list[str] | tuple[str, ...], seed: int = 0, config: WorldConfig | None = None):
        self.config = config or WorldConfig()
        self.config.validate()
        if not robot_ids:
            raise WorldError("at least one robot id is required")
        if len(set(robot_ids)) != len(robot_ids):
            raise WorldError(f"robot ids must be unique, got {list(robot_ids)}")
        if len(robot_ids) > 16:
            raise WorldError("at most 16 robots fit in one room")
        self.robot_ids = list(robot_ids)
        self.objects: list[WorldObject] = []
        self.robots: dict[str, Robot] = {}
        self.time_s = 0.0
        self.seed = 0
        self.reset(seed)

    # ------------------------------------------------------------------ layout
    def reset(self, seed: int) -> None:
        """Draws a new layout and robot poses from `seed`; the same seed gives the same world."""
        if not isinstance(seed, (int, np.integer)) or seed < 0 or seed >= 2**63:
            raise WorldError(f"seed must be an integer in [0, 2^63), got {seed!r}")
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        half = self.config.room_size_m / 2
        self.dock_xy = (-half + 0.6, -half + 0.6)
        self.objects = []
        # Objects sit 0.3 m from the walls: too narrow for the 0.4 m robot to try, so it drives round
        # the open side, where the gaps between objects (_OBJECT_GAP_M) leave room for the bubble.
        wall_gap = 0.3
        for name, shape, size, height, rgb in _TARGET_SPECS:
            x, y = self._free_spot(rng, half - size - wall_gap, clearance=size + _OBJECT_GAP_M)
            self.objects.append(WorldObject(name, shape, x, y, size, height, rgb, True))
        for i in range(self.config.num_obstacles):
            shape = "box" if rng.random() < 0.5 else "cylinder"
            size = float(rng.uniform(0.2, 0.35))
            x, y = self._free_spot(rng, half - size - wall_gap, clearance=size + _OBJECT_GAP_M)
            grey = tuple(int(v) for v in _OBSTACLE_RGB)
            self.objects.append(WorldObject(f"obstacle_{i}", shape, x, y, size, 0.5, grey, False))
        self.robots = {}
        r = self.config.robot_radius_m
        for rid in self.robot_ids:
            # Robots start outside the safety bubble of every wall, object and other robot.
            x, y = self._free_spot(rng, half - r - SAFETY_CLEARANCE_M, clearance=r + SAFETY_CLEARANCE_M,
                                   robots_too=True)
            self.robots[rid] = Robot(rid, x, y, float(rng.uniform(-np.pi, np.pi)))
        self.time_s = 0.0
        self._rebuild_primitives()
        LOG.debug("world reset with seed %d", self.seed)

    def _free_spot(
        self, rng: np.random.Generator, extent: float, clearance: float, robots_too: bool = False
    ) -> tuple[float, float]:
        """A random point at least `clearance` from every object's edge (bounded retries)."""
        best, best_gap = (0.0, 0.0), -np.inf
        for _ in range(500):
            x, y = (float(v) for v in rng.uniform(-extent, extent, size=2))
            gap = min((self.edge_distance(o, x, y) for o in self.objects), default=np.inf)
            if robots_too:
                for rb in self.robots.values():
                    gap = min(gap, math.hypot(rb.x - x, rb.y - y) - self.config.robot_radius_m)
            if gap >= clearance:
                return x, y
            if gap > best_gap:
                best, best_gap = (x, y), gap
        return best  # a crowded room: the roomiest spot found, still inside the walls

    @staticmethod
    def edge_distance(obj: WorldObject, x: float, y: float) -> float:
        """Distance from a point to an object's surface (negative inside)."""
        if obj.shape == "box":
            dx, dy = abs(x - obj.x) - obj.size_m, abs(y - obj.y) - obj.size_m
            outside = math.hypot(max(dx, 0.0), max(dy, 0.0))
            return outside + min(max(dx, dy), 0.0)
        return math.hypot(x - obj.x, y - obj.y) - obj.size_m

    def _rebuild_primitives(self) -> None:
        """Packs objects into arrays for the vectorised ray caster."""
        circ = [o for o in self.objects if o.shape != "box"]
        boxes = [o for o in self.objects if o.shape == "box"]
        self._circ_objs, self._box_objs = circ, boxes
        self._circ = np.array([[o.x, o.y, o.size_m] for o in circ], dtype=np.float64).reshape(-1, 3)
        self._box = np.array([[o.x, o.y, o.size_m] for o in boxes], dtype=np.float64).reshape(-1, 3)

    # ------------------------------------------------------------------ control
    def robot(self, robot_id: str) -> Robot:
        try:
            return self.robots[robot_id]
        except KeyError:
            raise WorldError(f"unknown robot id {robot_id!r}; known: {', '.join(self.robot_ids)}") from None

    def set_twist(self, robot_id: str, linear_x: float, linear_y: float, angular_z: float) -> bool:
        """Sets a robot's commanded body twist. Non-finite values are rejected, counted, return False."""
        rb = self.robot(robot_id)
        values = (linear_x, linear_y, angular_z)
        try:
            ok = all(math.isfinite(float(v)) for v in values)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            rb.rejected_twists += 1
            return False
        c = self.config
        rb.cmd = np.array([
            np.clip(float(linear_x), -c.max_linear_x_mps, c.max_linear_x_mps),
            np.clip(float(linear_y), -c.max_linear_y_mps, c.max_linear_y_mps),
            np.clip(float(angular_z), -c.max_angular_z_rps, c.max_angular_z_rps),
        ])
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

    def object(self, name: str) -> WorldObject:
        for o in self.objects:
            if o.name == name:
                return o
        raise WorldError(f"unknown object {name!r}")

    def step(self, dt: float) -> None:
        """Advances physics by dt seconds: acceleration limits, collision-free motion, battery."""
        if not (math.isfinite(dt) and 0 < dt <= 1.0):
            raise WorldError(f"dt must be in (0, 1] s, got {dt!r}")
        c = self.config
        dv, dw = c.max_linear_accel_mps2 * dt, c.max_angular_accel_rps2 * dt
        for rb in self.robots.values():
            rb.vx += float(np.clip(rb.cmd[0] - rb.vx, -dv, dv))
            rb.vy += float(np.clip(rb.cmd[1] - rb.vy, -dv, dv))
            rb.wz += float(np.clip(rb.cmd[2] - rb.wz, -dw, dw))
            cy, sy = math.cos(rb.yaw), math.sin(rb.yaw)
            dx = (rb.vx * cy - rb.vy * sy) * dt
            dy = (rb.vx * sy + rb.vy * cy) * dt
            moved, blocked = self._move(rb, dx, dy)
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
            if math.hypot(rb.x - self.dock_xy[0], rb.y - self.dock_xy[1]) < c.dock_radius_m:
                rb.battery = min(1.0, rb.battery + c.battery_charge_per_s * dt)
            else:
                rb.battery = max(0.0, rb.battery - drain)
        self.time_s += dt

    def _clearance(self, rb: Robot, x: float, y: float) -> float:
        """Smallest gap between a robot placed at (x, y) and anything else; negative means overlap."""
        r = self.config.robot_radius_m
        half = self.config.room_size_m / 2
        gap = min(half - abs(x), half - abs(y)) - r
        for o in self.objects:
            gap = min(gap, self.edge_distance(o, x, y) - r)
        for other in self.robots.values():
            if other is not rb:
                gap = min(gap, math.hypot(other.x - x, other.y - y) - 2 * r)
        return gap

    def _move(self, rb: Robot, dx: float, dy: float) -> tuple[float, bool]:
        """Moves a robot by (dx, dy), sliding along whatever it hits; never enters an obstacle.

        A blocked move advances to the point of contact, then slides the remainder along whichever
        world axis is free. Returns the distance moved and whether the move was blocked (a collision).
        """
        if dx == 0.0 and dy == 0.0:
            return 0.0, False
        x0, y0 = rb.x, rb.y
        if self._clearance(rb, x0 + dx, y0 + dy) >= 0.0:
            rb.x, rb.y = x0 + dx, y0 + dy
            return math.hypot(dx, dy), False
        lo, hi = 0.0, 1.0  # bisection on the free fraction of the move; 10 halvings resolve 0.1 mm
        for _ in range(10):
            mid = (lo + hi) / 2
            if self._clearance(rb, x0 + mid * dx, y0 + mid * dy) >= 0.0:
                lo = mid
            else:
                hi = mid
        rb.x, rb.y = x0 + lo * dx, y0 + lo * dy
        rest_x, rest_y = (1 - lo) * dx, (1 - lo) * dy
        for mx, my in ((rest_x, 0.0), (0.0, rest_y)):
            if (mx or my) and self._clearance(rb, rb.x + mx, rb.y + my) >= 0.0:
                rb.x += mx
                rb.y += my
                break
        # Contact bleeds speed, as friction would; a robot pressed head-on stays pressed but slow.
        rb.vx *= 0.5
        rb.vy *= 0.5
        return math.hypot(rb.x - x0, rb.y - y0), True

    def snapshot(self) -> tuple[float, dict[str, Robot]]:
        """A copy of the mutable state (robots and clock) for `restore`; the layout is not copied."""
        return self.time_s, {rid: dataclasses.replace(rb, cmd=rb.cmd.copy()) for rid, rb in self.robots.items()}

    def restore(self, snap: tuple[float, dict[str, Robot]]) -> None:
        """Returns to a `snapshot`: used to look ahead with the expert without disturbing an episode."""
        self.time_s = snap[0]
        self.robots = {rid: dataclasses.replace(rb, cmd=rb.cmd.copy()) for rid, rb in snap[1].items()}

    # ------------------------------------------------------------------ ground truth
    def distance_to_target(self, robot_id: str) -> float | None:
        """Metres from the robot's edge to its target's edge, None without a target."""
        rb = self.robot(robot_id)
        if rb.target is None:
            return None
        return max(0.0, self.edge_distance(self.object(rb.target), rb.x, rb.y) - self.config.robot_radius_m)

    def reached(self, robot_id: str) -> bool:
        d = self.distance_to_target(robot_id)
        return d is not None and d <= REACHED_DISTANCE_M

    def state(self) -> dict:
        """Ground truth in the shape of `sim/state` (without the timestamp)."""
        robots = {}
        for rid, rb in self.robots.items():
            d = self.distance_to_target(rid)
            robots[rid] = {
                "x": round(rb.x, 4), "y": round(rb.y, 4), "yaw": round(rb.yaw, 4),
                "collisions": rb.collisions, "task": rb.task, "target": rb.target,
                "distance_to_target": None if d is None else round(d, 4),
                "reached": d is not None and d <= REACHED_DISTANCE_M,
                "battery": round(rb.battery, 4),
            }
        return {"seed": self.seed, "time_s": round(self.time_s, 3), "robots": robots,
                "objects": [o.to_dict() for o in self.objects]}

    # ------------------------------------------------------------------ ray casting
    def cast(
        self, ox: float, oy: float, angles: np.ndarray, exclude: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Casts 2D rays from (ox, oy) at world `angles`, all primitives at once (lidar and cloud).

        Returns (distance [N], kind [N]) where kind indexes `self.casting_table(exclude)` (0 = wall).
        """
        ux, uy = np.cos(angles), np.sin(angles)
        best = self._wall_distance(ox, oy, angles)
        kind = np.zeros(angles.shape, dtype=np.int32)
        circles, _ = self._circles(exclude)
        if len(circles):
            cx = circles[:, 0:1] - ox
            cy = circles[:, 1:2] - oy
            r = circles[:, 2:3]
            b = cx * ux + cy * uy  # projection of the centre on the ray
            perp2 = cx * cx + cy * cy - b * b
            disc = r * r - perp2
            t = np.where(disc >= 0, b - np.sqrt(np.maximum(disc, 0.0)), np.inf)
            t = np.where(t > 1e-6, t, np.inf)
            idx = np.argmin(t, axis=0)
            tmin = t[idx, np.arange(t.shape[1])]
            closer = tmin < best
            best = np.where(closer, tmin, best)
            kind = np.where(closer, idx + 1, kind)
        if len(self._box):
            bx = self._box[:, 0:1] - ox
            by = self._box[:, 1:2] - oy
            s = self._box[:, 2:3]
            with np.errstate(divide="ignore", invalid="ignore"):
                inv_x, inv_y = 1.0 / ux, 1.0 / uy
                t1x, t2x = (bx - s) * inv_x, (bx + s) * inv_x
                t1y, t2y = (by - s) * inv_y, (by + s) * inv_y
            tnear = np.maximum(np.minimum(t1x, t2x), np.minimum(t1y, t2y))
            tfar = np.minimum(np.maximum(t1x, t2x), np.maximum(t1y, t2y))
            t = np.where((tnear <= tfar) & (tnear > 1e-6), tnear, np.inf)
            t = np.nan_to_num(t, nan=np.inf)
            idx = np.argmin(t, axis=0)
            tmin = t[idx, np.arange(t.shape[1])]
            closer = tmin < best
            best = np.where(closer, tmin, best)
            kind = np.where(closer, idx + 1 + len(circles), kind)
        return best, kind

    def _circles(self, exclude: str | None) -> tuple[np.ndarray, list]:
        """Round primitives (round objects, then robots other than `exclude`) and their descriptors."""
        r = self.config.robot_radius_m
        others = [rb for rid, rb in self.robots.items() if rid != exclude]
        arr = np.vstack([self._circ, np.array([[rb.x, rb.y, r] for rb in others])]) if others else self._circ
        return arr, self._circ_objs + others

    def casting_table(self, exclude: str | None = None) -> list:
        """What each `kind` from `cast` refers to: None (wall), a WorldObject or a Robot."""
        _, circ = self._circles(exclude)
        return [None, *circ, *self._box_objs]

    # ------------------------------------------------------------------ sensors
    def lidar(self, robot_id: str) -> np.ndarray:
        """Ranges [beams] counter-clockwise from straight ahead over 360 deg; inf beyond max range."""
        rb = self.robot(robot_id)
        c = self.config
        angles = rb.yaw + np.arange(c.lidar_beams) * (2 * np.pi / c.lidar_beams)
        dist, _ = self.cast(rb.x, rb.y, angles, exclude=robot_id)
        dist = dist.astype(np.float32)
        dist[(dist > c.lidar_range_max_m) | (dist < c.lidar_range_min_m)] = np.inf
        return dist

    def point_cloud(self, robot_id: str) -> np.ndarray:
        """Points [N, 3] float32 in the robot's base frame from several rings of the same caster."""
        rb = self.robot(robot_id)
        c = self.config
        rel = np.arange(c.cloud_beams) * (2 * np.pi / c.cloud_beams)
        dist, kind = self.cast(rb.x, rb.y, rb.yaw + rel, exclude=robot_id)
        table = self.casting_table(robot_id)
        heights = np.array([_height_of(t) for t in table])[kind]
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

    def camera(self, robot_id: str) -> np.ndarray:
        """First-person RGB image uint8 [H, W, 3] by column ray casting with a z-buffer."""
        rb = self.robot(robot_id)
        c = self.config
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
        # The wall is drawn from the caster; objects are drawn one by one, nearest wins (z-buffer),
        # so a short object in front of the wall shows the wall above it.
        wall_t = self._wall_distance(rb.x, rb.y, angles)
        self._paint(img, zbuf, rows, focal, wall_t * cos_rel, 0.0, _WALL_HEIGHT_M,
                    np.broadcast_to(_WALL_RGB, (w, 3)), np.ones(w, bool))
        circles, round_items = self._circles(robot_id)
        for i, item in enumerate([*round_items, *self._box_objs]):
            dist, lat = self._cast_one(rb.x, rb.y, angles, i, circles)
            hit = np.isfinite(dist)
            if not hit.any():
                continue
            depth = dist * cos_rel
            shade = np.clip(1.15 - 0.06 * depth, 0.55, 1.1)
            if isinstance(item, Robot):
                rgb, lo, hi = _ROBOT_RGB, 0.0, np.full(w, _ROBOT_HEIGHT_M)
            else:
                rgb = np.array(item.rgb, dtype=np.float32)
                lo, hi = _vertical_span(item, lat)
                if item.shape != "box":
                    shade = shade * (1.0 - 0.35 * lat**2)  # round things darken towards their silhouette
            colours = rgb[None, :] * shade[:, None]
            self._paint(img, zbuf, rows, focal, depth, lo, hi, colours, hit)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _paint(self, img, zbuf, rows, focal, depth, lo, hi, colours, hit) -> None:
        """Paints each column's vertical span [lo, hi] metres at `depth` where it is nearest."""
        ch = self.config.camera_height_m
        with np.errstate(divide="ignore", invalid="ignore"):
            top = focal * (ch - hi) / depth
            bottom = focal * (ch - lo) / depth
        mask = hit[None, :] & (rows >= top[None, :]) & (rows <= bottom[None, :]) & (depth[None, :] < zbuf)
        zbuf[mask] = np.broadcast_to(depth[None, :], zbuf.shape)[mask]
        img[mask] = np.broadcast_to(colours[None, :, :], img.shape)[mask]

    def _wall_distance(self, ox: float, oy: float, angles: np.ndarray) -> np.ndarray:
        """Distance along each ray from a point inside the room to the wall."""
        half = self.config.room_size_m / 2
        ux, uy = np.cos(angles), np.sin(angles)
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(ux > 0, (half - ox) / ux, np.where(ux < 0, (-half - ox) / ux, np.inf))
            ty = np.where(uy > 0, (half - oy) / uy, np.where(uy < 0, (-half - oy) / uy, np.inf))
        return np.minimum(tx, ty)

    def _cast_one(
        self, ox: float, oy: float, angles: np.ndarray, index: int, circles: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distance (inf on a miss) and normalised lateral offset of rays against one primitive.

        `index` counts the round primitives in `circles` first, then the boxes.
        """
        ux, uy = np.cos(angles), np.sin(angles)
        if index < len(circles):
            cx, cy, r = circles[index]
            b = (cx - ox) * ux + (cy - oy) * uy
            perp2 = (cx - ox) ** 2 + (cy - oy) ** 2 - b * b
            disc = r * r - perp2
            t = np.where(disc >= 0, b - np.sqrt(np.maximum(disc, 0.0)), np.inf)
            t = np.where(t > 1e-6, t, np.inf)
            return t, np.clip(np.sqrt(np.clip(perp2, 0, None)) / r, 0.0, 1.0)
        bx, by, s = self._box[index - len(circles)]
        with np.errstate(divide="ignore", invalid="ignore"):
            t1x, t2x = (bx - s - ox) / ux, (bx + s - ox) / ux
            t1y, t2y = (by - s - oy) / uy, (by + s - oy) / uy
        tnear = np.maximum(np.minimum(t1x, t2x), np.minimum(t1y, t2y))
        tfar = np.minimum(np.maximum(t1x, t2x), np.maximum(t1y, t2y))
        t = np.nan_to_num(np.where((tnear <= tfar) & (tnear > 1e-6), tnear, np.inf), nan=np.inf)
        return t, np.zeros_like(t)

    # ------------------------------------------------------------------ privileged queries
    def target_bearing(self, robot_id: str) -> float | None:
        """Angle of the target's centre from the robot's heading (radians, left positive)."""
        rb = self.robot(robot_id)
        if rb.target is None:
            return None
        o = self.object(rb.target)
        return float(wrap_angle(math.atan2(o.y - rb.y, o.x - rb.x) - rb.yaw))


def _height_of(item: WorldObject | Robot | None) -> float:
    if item is None:
        return _WALL_HEIGHT_M
    if isinstance(item, Robot):
        return _ROBOT_HEIGHT_M
    return item.height_m


def _vertical_span(obj: WorldObject, lateral: np.ndarray) -> tuple[np.ndarray | float, np.ndarray]:
    """Bottom and top (metres) of an object's column at a normalised lateral offset: its silhouette."""
    if obj.shape == "ball":
        half = obj.height_m / 2
        extent = half * np.sqrt(np.clip(1 - lateral**2, 0, 1))
        return half - extent, half + extent
    if obj.shape == "cone":
        return 0.0, obj.height_m * np.clip(1.0 - lateral, 0.05, 1.0)
    return 0.0, np.full(lateral.shape, obj.height_m)
