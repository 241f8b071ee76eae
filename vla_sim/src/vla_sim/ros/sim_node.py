"""The simulator's ROS node: steps a `World` in real time and publishes every robot's sensors.

With one robot its topics are in the node's namespace (`camera/rgb/image_raw`, `scan`, ...); with
several, each robot's topics and TF frames are under its id (`robot_1/scan`, `robot_1/base_link`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time

import diagnostic_updater
import rospy
import tf2_ros
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import TransformStamped, Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import BatteryState, Image, LaserScan, PointCloud2, PointField
from std_msgs.msg import String

from vla_msgs.srv import ResetSim, ResetSimResponse
from vla_sim.config import ConfigError, SimNodeConfig, build_config
from vla_sim.instructions import is_stop, resolve_target
from vla_sim.world import World, WorldError

_MAX_TASK_CHARS = 1000
_MAX_SUBSTEPS = 10  # a late tick is made up with at most this many physics substeps; the rest is lost


class _RosLogHandler(logging.Handler):
    """Bridges the core's `logging` records to rosout."""

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            rospy.logerr(msg)
        elif record.levelno >= logging.WARNING:
            rospy.logwarn(msg)
        elif record.levelno >= logging.INFO:
            rospy.loginfo(msg)
        else:
            rospy.logdebug(msg)


class _RobotIo:
    """One robot's publishers, subscribers, frame names and counters."""

    def __init__(self, node: SimNode, rid: str, prefix: str):
        self.rid = rid
        ns = f"{prefix}/" if prefix else ""
        self.frame_odom = f"{ns}odom"
        self.frame_base = f"{ns}base_link"
        self.frame_camera = f"{ns}camera_link"
        self.frame_laser = f"{ns}laser"
        # keyed by stream name, the same keys as SimNode's message builders and periods
        self.publishers = {
            "camera": rospy.Publisher(f"{ns}camera/rgb/image_raw", Image, queue_size=1),
            "scan": rospy.Publisher(f"{ns}scan", LaserScan, queue_size=1),
            "cloud": rospy.Publisher(f"{ns}velodyne_points", PointCloud2, queue_size=1),
            "odom": rospy.Publisher(f"{ns}odom", Odometry, queue_size=1),
            "battery": rospy.Publisher(f"{ns}battery_state", BatteryState, queue_size=1),
        }
        self.last_cmd_s = -math.inf
        self.bad_tasks = 0
        rospy.Subscriber(f"{ns}cmd_vel", Twist, node.on_cmd_vel, callback_args=rid, queue_size=1)
        rospy.Subscriber(f"{ns}task_command", String, node.on_task, callback_args=rid, queue_size=10)


class SimNode:
    """Owns the world, the real-time loop, and the ROS interfaces around it."""

    def __init__(self, cfg: SimNodeConfig):
        self.cfg = cfg
        self.world = World(cfg.robots, seed=cfg.seed, config=cfg.world)
        self.lock = threading.Lock()
        single = len(cfg.robots) == 1
        self.io = {rid: _RobotIo(self, rid, "" if single else rid) for rid in cfg.robots}
        self.builders = {"camera": self._image, "scan": self._scan, "cloud": self._cloud, "odom": self._odom,
                         "battery": self._battery}
        self.pub_state = rospy.Publisher("sim/state", String, queue_size=1)
        self.tf = tf2_ros.TransformBroadcaster()
        self.static_tf = tf2_ros.StaticTransformBroadcaster()
        self._publish_static_tf()
        rospy.Service("sim/reset", ResetSim, self.on_reset)
        self.sim_time_s = 0.0
        self.lost_time_s = 0.0
        self.realtime_factor = 1.0
        self._window = (time.monotonic(), 0.0)
        self.updater = diagnostic_updater.Updater()
        self.updater.setHardwareID(f"vla_sim simulator ({', '.join(cfg.robots)})")
        self.updater.add("realtime", self._diag_realtime)
        self.updater.add("robots", self._diag_robots)
        self.freq = {}
        for name, rate in (("camera", cfg.camera_rate_hz), ("scan", cfg.lidar_rate_hz), ("odom", cfg.odom_rate_hz)):
            self.freq[name] = diagnostic_updater.FrequencyStatus(
                diagnostic_updater.FrequencyStatusParam({"min": rate * 0.8, "max": rate * 1.2}, 0.1, 10), name)
            self.updater.add(self.freq[name])

    # ------------------------------------------------------------------ callbacks
    def on_cmd_vel(self, msg: Twist, rid: str) -> None:
        try:
            with self.lock:
                ok = self.world.set_twist(rid, msg.linear.x, msg.linear.y, msg.angular.z)
            if ok:
                self.io[rid].last_cmd_s = time.monotonic()
            else:
                rospy.logwarn_throttle(5.0, f"{rid}: ignored a cmd_vel with NaN or infinite values")
        except WorldError as exc:
            rospy.logerr_throttle(5.0, str(exc))

    def on_task(self, msg: String, rid: str) -> None:
        text = msg.data.strip() if isinstance(msg.data, str) else ""
        if text.startswith("{"):
            try:
                obj = json.loads(text)
                text = obj["description"] if isinstance(obj, dict) else None
                if isinstance(obj, dict) and obj.get("robot_id") not in (None, rid):
                    raise ValueError(f"task for robot {obj['robot_id']!r} arrived on {rid}'s task_command")
                if not isinstance(text, str):
                    raise ValueError("'description' must be a string")
            except (ValueError, KeyError, TypeError) as exc:
                self.io[rid].bad_tasks += 1
                rospy.logwarn_throttle(5.0, f"{rid}: malformed task_command JSON ({exc}); expected "
                                             "plain text or {\"description\": ...}")
                return
            text = text.strip()
        if not text or len(text) > _MAX_TASK_CHARS:
            self.io[rid].bad_tasks += 1
            rospy.logwarn_throttle(5.0, f"{rid}: task_command must be 1..{_MAX_TASK_CHARS} characters")
            return
        with self.lock:
            if is_stop(text):
                self.world.set_target(rid, None, None)
                rospy.loginfo(f"{rid}: task cleared ({text})")
                return
            target = resolve_target(text)
            self.world.set_target(rid, target, text)
        if target is None:
            rospy.logwarn(f"{rid}: task {text!r} names no single known object; distance_to_target stays null")
        else:
            rospy.loginfo(f"{rid}: task {text!r} → target {target}")

    def on_reset(self, req) -> ResetSimResponse:
        try:
            seed = int(req.seed)
            with self.lock:
                self.world.reset(seed)
        except (WorldError, TypeError, ValueError) as exc:
            return ResetSimResponse(success=False, message=f"reset refused: {exc}")
        rospy.loginfo(f"world reset with seed {seed}")
        return ResetSimResponse(success=True, message=f"new layout from seed {seed}; tasks cleared")

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        cfg = self.cfg
        physics_dt = 1.0 / cfg.physics_rate_hz
        periods = {
            "camera": 1.0 / cfg.camera_rate_hz, "scan": 1.0 / cfg.lidar_rate_hz, "cloud": 1.0 / cfg.cloud_rate_hz,
            "odom": 1.0 / cfg.odom_rate_hz, "battery": 1.0 / cfg.battery_rate_hz, "state": 1.0 / cfg.state_rate_hz,
        }
        start = time.monotonic()
        due = dict.fromkeys(periods, start)
        last = start
        next_tick = start
        while not rospy.is_shutdown():
            now = time.monotonic()
            self._advance(now - last, physics_dt, now)
            last = now
            stamp = rospy.Time.now()
            for name, period in periods.items():
                if now >= due[name]:
                    # Fixed schedule, but a stream that fell a whole period behind skips ahead rather than bursts.
                    due[name] = max(due[name] + period, now)
                    self._publish(name, stamp)
            self.updater.update()
            next_tick += physics_dt
            sleep_s = next_tick - time.monotonic()
            if sleep_s > 0:
                time.sleep(sleep_s)
            else:
                next_tick = time.monotonic()

    def _advance(self, elapsed: float, physics_dt: float, now: float) -> None:
        """Steps physics by the wall time that passed, in substeps; time beyond the cap is lost and counted."""
        n = min(max(1, math.ceil(elapsed / physics_dt - 1e-6)), _MAX_SUBSTEPS) if elapsed > 0 else 0
        simulated = min(elapsed, n * physics_dt)
        with self.lock:
            for rid, io in self.io.items():
                if now - io.last_cmd_s > self.cfg.cmd_timeout_s:
                    self.world.set_twist(rid, 0.0, 0.0, 0.0)  # a silent controller must not leave the robot driving
            for _ in range(n):
                self.world.step(simulated / n)
        self.sim_time_s += simulated
        self.lost_time_s += elapsed - simulated
        t0, s0 = self._window
        if now - t0 >= 2.0:
            self.realtime_factor = (self.sim_time_s - s0) / (now - t0)
            self._window = (now, self.sim_time_s)

    def _publish(self, name: str, stamp: rospy.Time) -> None:
        if name == "state":
            with self.lock:
                state = self.world.state()
            state["timestamp"] = time.time()
            self.pub_state.publish(String(data=json.dumps(state)))
            return
        build = self.builders[name]
        for rid, io in self.io.items():
            with self.lock:
                msg = build(rid, io, stamp)
            io.publishers[name].publish(msg)
            if name == "odom":
                self.tf.sendTransform(self._odom_tf(msg))
        if name in self.freq:
            self.freq[name].tick()

    # ------------------------------------------------------------------ messages
    def _image(self, rid: str, io: _RobotIo, stamp: rospy.Time) -> Image:
        img = self.world.camera(rid)
        msg = Image(height=img.shape[0], width=img.shape[1], encoding="rgb8", is_bigendian=0,
                    step=img.shape[1] * 3, data=img.tobytes())
        msg.header.stamp, msg.header.frame_id = stamp, io.frame_camera
        return msg

    def _scan(self, rid: str, io: _RobotIo, stamp: rospy.Time) -> LaserScan:
        c = self.world.config
        ranges = self.world.lidar(rid)
        inc = 2 * math.pi / c.lidar_beams
        msg = LaserScan(angle_min=0.0, angle_max=inc * (c.lidar_beams - 1), angle_increment=inc,
                        time_increment=0.0, scan_time=1.0 / self.cfg.lidar_rate_hz, range_min=c.lidar_range_min_m,
                        range_max=c.lidar_range_max_m, ranges=ranges.tolist())
        msg.header.stamp, msg.header.frame_id = stamp, io.frame_laser
        return msg

    def _cloud(self, rid: str, io: _RobotIo, stamp: rospy.Time) -> PointCloud2:
        pts = self.world.point_cloud(rid)
        fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
        msg = PointCloud2(height=1, width=len(pts), fields=fields, is_bigendian=False, point_step=12,
                          row_step=12 * len(pts), data=pts.tobytes(), is_dense=True)
        msg.header.stamp, msg.header.frame_id = stamp, io.frame_base
        return msg

    def _odom(self, rid: str, io: _RobotIo, stamp: rospy.Time) -> Odometry:
        rb = self.world.robot(rid)
        msg = Odometry()
        msg.header.stamp, msg.header.frame_id = stamp, io.frame_odom
        msg.child_frame_id = io.frame_base
        msg.pose.pose.position.x, msg.pose.pose.position.y = rb.x, rb.y
        msg.pose.pose.orientation.z = math.sin(rb.yaw / 2)
        msg.pose.pose.orientation.w = math.cos(rb.yaw / 2)
        msg.twist.twist.linear.x, msg.twist.twist.linear.y = rb.vx, rb.vy
        msg.twist.twist.angular.z = rb.wz
        return msg

    @staticmethod
    def _odom_tf(odom: Odometry) -> TransformStamped:
        t = TransformStamped()
        t.header = odom.header
        t.child_frame_id = odom.child_frame_id
        p = odom.pose.pose.position
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = p.x, p.y, p.z
        t.transform.rotation = odom.pose.pose.orientation
        return t

    def _battery(self, rid: str, io: _RobotIo, stamp: rospy.Time) -> BatteryState:
        rb = self.world.robot(rid)
        c = self.world.config
        docked = math.hypot(rb.x - self.world.dock_xy[0], rb.y - self.world.dock_xy[1]) < c.dock_radius_m
        msg = BatteryState(voltage=10.5 + 2.1 * rb.battery, percentage=rb.battery, present=True,
                           power_supply_status=(BatteryState.POWER_SUPPLY_STATUS_CHARGING if docked
                                                else BatteryState.POWER_SUPPLY_STATUS_DISCHARGING),
                           power_supply_technology=BatteryState.POWER_SUPPLY_TECHNOLOGY_LION)
        msg.current = float("nan")
        msg.charge = msg.capacity = msg.design_capacity = float("nan")
        msg.header.stamp, msg.header.frame_id = stamp, io.frame_base
        return msg

    def _publish_static_tf(self) -> None:
        c = self.cfg.world
        transforms = []
        for io in self.io.values():
            for child, z in ((io.frame_camera, c.camera_height_m), (io.frame_laser, c.lidar_height_m)):
                t = TransformStamped()
                t.header.stamp = rospy.Time.now()
                t.header.frame_id, t.child_frame_id = io.frame_base, child
                t.transform.translation.z = z
                t.transform.rotation.w = 1.0
                transforms.append(t)
        self.static_tf.sendTransform(transforms)

    # ------------------------------------------------------------------ diagnostics
    def _diag_realtime(self, stat: diagnostic_updater.DiagnosticStatusWrapper):
        if self.realtime_factor < self.cfg.realtime_warn_factor:
            stat.summary(DiagnosticStatus.WARN,
                         f"cannot keep real time: running at {self.realtime_factor:.2f}x real time")
        else:
            stat.summary(DiagnosticStatus.OK, f"real time ({self.realtime_factor:.2f}x)")
        stat.add("realtime_factor", f"{self.realtime_factor:.3f}")
        stat.add("lost_time_s", f"{self.lost_time_s:.3f}")
        stat.add("sim_time_s", f"{self.sim_time_s:.1f}")
        stat.add("seed", str(self.world.seed))
        return stat

    def _diag_robots(self, stat: diagnostic_updater.DiagnosticStatusWrapper):
        with self.lock:
            rows = [(rid, self.world.robot(rid), io.bad_tasks) for rid, io in self.io.items()]
        rejected = sum(rb.rejected_twists for _, rb, _ in rows)
        bad = sum(b for _, _, b in rows)
        level = DiagnosticStatus.WARN if rejected or bad else DiagnosticStatus.OK
        stat.summary(level, f"{len(rows)} robots; {rejected} non-finite twists ignored; {bad} bad task commands")
        for rid, rb, b in rows:
            stat.add(f"{rid} collisions", str(rb.collisions))
            stat.add(f"{rid} rejected_twists", str(rb.rejected_twists))
            stat.add(f"{rid} bad_task_commands", str(b))
            stat.add(f"{rid} battery", f"{rb.battery:.3f}")
        return stat


def load_config() -> SimNodeConfig:
    """Reads `~` params into the config; on an invalid value logs one fatal line naming it and exits."""
    try:
        params = rospy.get_param("~", {})
        return build_config(params if isinstance(params, dict) else {})
    except ConfigError as exc:
        rospy.logfatal(f"sim_node refuses to start: {exc}")
        raise SystemExit(2) from None


def main() -> None:
    rospy.init_node("sim_node")
    handler = _RosLogHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    core_log = logging.getLogger("vla_sim")
    core_log.addHandler(handler)
    core_log.setLevel(logging.INFO)
    node = SimNode(load_config())
    rospy.loginfo(f"sim_node: robots {node.cfg.robots}, seed {node.cfg.seed}")
    node.run()
