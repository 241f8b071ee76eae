"""The simulator's ROS node: the clock source. It steps a `Simulation` on wall time scaled by
`~real_time_factor`, publishes the simulated time on /clock and every robot's sensors stamped with it.

With one robot its topics are in the node's namespace (`camera/rgb/image_raw`, `scan`, ...); with
several, each robot's topics and TF frames are under its id (`robot_1/scan`, `robot_1/base_link`).
Launch files set `/use_sim_time` so that every other node follows /clock.
"""

from __future__ import annotations

import math
import threading
import time

import rospy
import tf2_ros
from geometry_msgs.msg import TransformStamped, Twist
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import BatteryState, Image, LaserScan, PointCloud2, PointField
from std_msgs.msg import String

from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.srv import ResetSim, ResetSimResponse
from vla_msgs.tasks import TaskRejectedError
from vla_sim.config import SimNodeConfig
from vla_sim.instructions import apply_task_command
from vla_sim.simulation import Simulation
from vla_sim.world import World, WorldError


class BadTwistError(ValueError):
    """A cmd_vel the world refuses (NaN or infinite values)."""


class _RobotIo:
    """One robot's publishers, subscribers, frame names and bad-input counter."""

    def __init__(self, node: SimNode, rid: str, prefix: str):
        self.node = node
        self.rid = rid
        ns = f"{prefix}/" if prefix else ""
        self.frame_odom = f"{ns}odom"
        self.frame_base = f"{ns}base_link"
        self.frame_camera = f"{ns}camera_link"
        self.frame_laser = f"{ns}laser"
        self.bad = BadInputCounter(clock=rospy.get_time)
        # keyed by stream name, the same keys as SimNode's message builders and the schedule
        self.publishers = {
            "camera": rospy.Publisher(ns + names.CAMERA_IMAGE, Image, queue_size=1),
            "scan": rospy.Publisher(ns + names.SCAN, LaserScan, queue_size=1),
            "cloud": rospy.Publisher(ns + names.POINTS, PointCloud2, queue_size=1),
            "odom": rospy.Publisher(ns + names.ODOM, Odometry, queue_size=1),
            "battery": rospy.Publisher(ns + names.BATTERY_STATE, BatteryState, queue_size=1),
        }
        rospy.Subscriber(ns + names.CMD_VEL, Twist, self.on_cmd_vel, queue_size=1)
        rospy.Subscriber(ns + names.TASK_COMMAND, String, self.on_task, queue_size=10)

    @counted_callback("cmd_vel", (BadTwistError, WorldError), counter=lambda io: io.bad)
    def on_cmd_vel(self, msg: Twist) -> None:
        with self.node.lock:
            ok = self.node.sim.command(self.rid, msg.linear.x, msg.linear.y, msg.angular.z)
        if not ok:
            raise BadTwistError(f"{self.rid}: cmd_vel with NaN or infinite values ignored")

    @counted_callback("task_command", (TaskRejectedError, WorldError), counter=lambda io: io.bad)
    def on_task(self, msg: String) -> None:
        with self.node.lock:
            command = apply_task_command(self.node.sim.world, self.rid, msg.data)
            target = self.node.sim.world.robot(self.rid).target
        if command.idle:
            rospy.loginfo(f"{self.rid}: task cleared ({msg.data.strip()!r})")
        elif target is None:
            rospy.logwarn(f"{self.rid}: task {command.description!r} names no single known object; "
                          "distance_to_target stays null")
        else:
            rospy.loginfo(f"{self.rid}: task {command.description!r} → target {target}")


class SimNode:
    """Owns the simulation, the wall-paced loop, and the ROS interfaces around it."""

    def __init__(self, cfg: SimNodeConfig):
        self.cfg = cfg
        self.sim = Simulation(World(cfg.robots, seed=cfg.seed, config=cfg.world), cfg)
        self.lock = threading.Lock()
        # With /use_sim_time every node follows our /clock, so stamps are simulated time. Without it
        # they would read simulated stamps as ancient data: stamp with wall time then.
        self.sim_stamps = bool(rospy.get_param("/use_sim_time", False))
        if not self.sim_stamps:
            rospy.logwarn("sim_node: /use_sim_time is not set; other nodes run on wall time and sensor stamps "
                          "are wall time" + ("" if cfg.real_time_factor == 1.0 else
                                             f", although ~real_time_factor is {cfg.real_time_factor}"))
        single = len(cfg.robots) == 1
        self.io = {rid: _RobotIo(self, rid, "" if single else rid) for rid in cfg.robots}
        self.builders = {"camera": self._image, "scan": self._scan, "cloud": self._cloud, "odom": self._odom,
                         "battery": self._battery}
        self.pub_clock = rospy.Publisher(names.CLOCK, Clock, queue_size=10)
        self.pub_state = rospy.Publisher(names.SIM_STATE, String, queue_size=1)
        self.tf = tf2_ros.TransformBroadcaster()
        self.static_tf = tf2_ros.StaticTransformBroadcaster()
        self._publish_static_tf()
        rospy.Service(names.SIM_RESET, ResetSim, self.on_reset)
        self.diagnostics = Diagnostics(f"vla_sim simulator ({', '.join(cfg.robots)})")
        self.diagnostics.task("realtime", self._diag_realtime)
        self.diagnostics.task("robots", self._diag_robots)
        self.freq = {name: self.diagnostics.rate(name, rate * 0.8, rate * 1.2)
                     for name, rate in (("camera", cfg.camera_rate_hz), ("scan", cfg.lidar_rate_hz),
                                        ("odom", cfg.odom_rate_hz))}

    def on_reset(self, req) -> ResetSimResponse:
        try:
            seed = int(req.seed)
            with self.lock:
                self.sim.reset(seed)
        except (WorldError, TypeError, ValueError) as exc:
            return ResetSimResponse(success=False, message=f"reset refused: {exc}")
        rospy.loginfo(f"world reset with seed {seed}")
        return ResetSimResponse(success=True, message=f"new layout from seed {seed}; tasks cleared")

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        """Ticks on the wall clock: the one place the simulator reads it, since it is the clock source."""
        while not rospy.is_shutdown():
            with self.lock:
                due = self.sim.tick(time.monotonic())
                sim_s = self.sim.time_s
                wake_s = self.sim.next_wake_s()
            if sim_s > 0:
                self.pub_clock.publish(Clock(clock=rospy.Time.from_sec(sim_s)))
            stamp = rospy.Time.from_sec(sim_s) if self.sim_stamps else rospy.Time.now()
            for name in due:
                self._publish(name, stamp)
            sleep_s = wake_s - time.monotonic()
            if sleep_s > 0:
                time.sleep(sleep_s)

    def _publish(self, name: str, stamp: rospy.Time) -> None:
        if name == "state":
            with self.lock:
                state = self.sim.world.state()
            self.pub_state.publish(String(data=json_forms.SIM_STATE.build(timestamp=stamp.to_sec(), **state)))
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
        img = self.sim.world.camera(rid)
        msg = Image(height=img.shape[0], width=img.shape[1], encoding="rgb8", is_bigendian=0,
                    step=img.shape[1] * 3, data=img.tobytes())
        msg.header.stamp, msg.header.frame_id = stamp, io.frame_camera
        return msg

    def _scan(self, rid: str, io: _RobotIo, stamp: rospy.Time) -> LaserScan:
        c = self.sim.world.config
        ranges = self.sim.world.lidar(rid)
        inc = 2 * math.pi / c.lidar_beams
        msg = LaserScan(angle_min=0.0, angle_max=inc * (c.lidar_beams - 1), angle_increment=inc,
                        time_increment=0.0, scan_time=1.0 / self.cfg.lidar_rate_hz, range_min=c.lidar_range_min_m,
                        range_max=c.lidar_range_max_m, ranges=ranges.tolist())
        msg.header.stamp, msg.header.frame_id = stamp, io.frame_laser
        return msg

    def _cloud(self, rid: str, io: _RobotIo, stamp: rospy.Time) -> PointCloud2:
        pts = self.sim.world.point_cloud(rid)
        fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
        msg = PointCloud2(height=1, width=len(pts), fields=fields, is_bigendian=False, point_step=12,
                          row_step=12 * len(pts), data=pts.tobytes(), is_dense=True)
        msg.header.stamp, msg.header.frame_id = stamp, io.frame_base
        return msg

    def _odom(self, rid: str, io: _RobotIo, stamp: rospy.Time) -> Odometry:
        rb = self.sim.world.robot(rid)
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
        rb = self.sim.world.robot(rid)
        msg = BatteryState(voltage=10.5 + 2.1 * rb.battery, percentage=rb.battery, present=True,
                           power_supply_status=(BatteryState.POWER_SUPPLY_STATUS_CHARGING if self.sim.world.docked(rid)
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
    def _diag_realtime(self, stat: Status) -> Status:
        with self.lock:
            measured, lost_s, sim_s = self.sim.rate.factor, self.sim.pacer.lost_s, self.sim.time_s
        wanted = self.cfg.real_time_factor
        if measured is None:
            stat.summary(OK, f"starting (asked for {wanted:g}x real time)")
        elif measured < wanted * self.cfg.realtime_warn_factor:
            stat.summary(WARN, f"cannot keep up: running at {measured:.2f}x real time, asked for {wanted:g}x")
        else:
            stat.summary(OK, f"running at {measured:.2f}x real time (asked for {wanted:g}x)")
        stat.add("real_time_factor", f"{wanted:g}")
        stat.add("measured_real_time_factor", "" if measured is None else f"{measured:.3f}")
        stat.add("lost_time_s", f"{lost_s:.3f}")
        stat.add("sim_time_s", f"{sim_s:.1f}")
        stat.add("seed", str(self.sim.world.seed))
        return stat

    def _diag_robots(self, stat: Status) -> Status:
        with self.lock:
            rows = [(rid, self.sim.world.robot(rid), dict(io.bad.counts)) for rid, io in self.io.items()]
        bad = sum(sum(counts.values()) for _, _, counts in rows)
        stat.summary(WARN if bad else OK, f"{len(rows)} robots; {bad} bad cmd_vel/task_command messages dropped")
        for rid, rb, counts in rows:
            stat.add(f"{rid} collisions", str(rb.collisions))
            stat.add(f"{rid} rejected_twists", str(counts.get("cmd_vel", 0)))
            stat.add(f"{rid} bad_task_commands", str(counts.get("task_command", 0)))
            stat.add(f"{rid} battery", f"{rb.battery:.3f}")
        return stat


def main() -> None:
    rospy.init_node(names.SIM_NODE)
    bridge_logging(("vla_sim", "vla_monitoring"), VlaLogs(names.SIM_NODE, "sim"))
    node = SimNode(load_config(SimNodeConfig))
    rospy.loginfo(f"sim_node: robots {node.cfg.robots}, seed {node.cfg.seed}, "
                  f"{node.cfg.real_time_factor:g}x real time")
    node.run()
