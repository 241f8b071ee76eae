"""safety_node: the only publisher of cmd_vel. Wraps `SafetySupervisor` in topics, services and diagnostics."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import diagnostic_updater
import numpy as np
import rospy
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import LaserScan, PointCloud2
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger, TriggerResponse

from vla_msgs.msg import SafetyStatus
from vla_safety.collision import BadSensorDataError, reduce_points
from vla_safety.config import SafetyConfig
from vla_safety.limits import ZERO_TWIST
from vla_safety.ros.common import BadInputCounter, bridge_logging, guarded, load_config
from vla_safety.ros.convert import array_to_twist, cloud_xyz, laserscan_points, twist_to_array
from vla_safety.supervisor import LIMITED, OK, STOPPED, Decision, SafetySupervisor
from vla_safety.wire import safety_status_json

_BAD_INPUT = (BadSensorDataError, ValueError, TypeError, IndexError, AttributeError)
_DIAG_LEVEL = {OK: DiagnosticStatus.OK, LIMITED: DiagnosticStatus.OK, STOPPED: DiagnosticStatus.WARN}


class SafetyNode:
    def __init__(self, config: SafetyConfig, clock: Callable[[], float] = time.monotonic):
        self.cfg = config
        self.clock = clock
        self.sup = SafetySupervisor(config)
        self.bad = BadInputCounter()
        self.lock = threading.Lock()
        self.last = None
        self._published_estop: bool | None = None
        # Farthest point that can matter: the fastest allowed motion over the horizon plus the keep-out.
        self.reach = (math.hypot(config.max_linear_x, config.max_linear_y) * config.prediction_horizon
                      + config.robot_radius + config.collision_threshold + 0.1)
        self.z_range = (config.obstacle_min_height, config.obstacle_max_height)
        self._cmd_msg = Twist()

        self.cmd_pub = rospy.Publisher("cmd_vel", Twist, queue_size=5)
        self.estop_pub = rospy.Publisher("emergency_stop", Bool, queue_size=1, latch=True)
        self.json_pub = rospy.Publisher("vla_safety_status", String, queue_size=5)
        self.status_pub = rospy.Publisher("vla/safety_status", SafetyStatus, queue_size=5)

        self.diag = diagnostic_updater.Updater()
        self.diag.setHardwareID(config.robot_id)
        self.diag.add("supervisor", self._diag_supervisor)
        self.diag.add("inputs", self._diag_inputs)
        bounds = {"min": config.output_rate, "max": config.output_rate}
        self._freq = diagnostic_updater.FrequencyStatus(
            diagnostic_updater.FrequencyStatusParam(bounds, 0.2, 10), "cmd_vel output rate")
        self.diag.add(self._freq)

        self._publish_estop(False)
        rospy.Service("~reset", Trigger, self._on_reset)
        rospy.Service("~trigger_emergency_stop", Trigger, self._on_trigger_service)
        rospy.Subscriber("cmd_vel_vla", Twist, self._on_cmd, queue_size=1)
        rospy.Subscriber("scan", LaserScan, self._on_scan, queue_size=1, buff_size=1 << 20)
        rospy.Subscriber("velodyne_points", PointCloud2, self._on_cloud, queue_size=1, buff_size=1 << 24)
        rospy.Subscriber("odom", Odometry, self._on_odom, queue_size=1)
        rospy.Subscriber("emergency_stop/trigger", Bool, self._on_trigger, queue_size=10)
        rospy.Timer(rospy.Duration(1.0 / config.output_rate), self._on_tick)
        rospy.Timer(rospy.Duration(config.estop_republish_period), self._on_slow_tick)

    # ------------------------------------------------------------------ inputs
    def _stamp_too_old(self, header, topic: str) -> bool:
        """A message stamped (non-zero) longer ago than sensor_timeout is stale data, not a live sensor."""
        if header.stamp.is_zero():
            return False
        age = (rospy.Time.now() - header.stamp).to_sec()
        if age > self.cfg.sensor_timeout:
            self.bad.reject(topic, f"stamp is {age:.2f} s old (sensor_timeout {self.cfg.sensor_timeout:.2f} s)")
            return True
        return False

    @guarded("cmd_vel_vla", _BAD_INPUT)
    def _on_cmd(self, msg: Twist) -> None:
        twist = twist_to_array(msg)
        with self.lock:
            accepted = self.sup.set_command(twist, self.clock())
        if not accepted:
            self.bad.reject("cmd_vel_vla", self.sup.rejection or "refused")

    @guarded("scan", _BAD_INPUT)
    def _on_scan(self, msg: LaserScan) -> None:
        if self._stamp_too_old(msg.header, "scan"):
            return
        pts = reduce_points(laserscan_points(msg), self.cfg.scan_pose, self.reach, self.cfg.voxel_size,
                            self.cfg.max_obstacle_points)
        with self.lock:
            self.sup.set_obstacles("scan", pts, self.clock())

    @guarded("velodyne_points", _BAD_INPUT)
    def _on_cloud(self, msg: PointCloud2) -> None:
        if self._stamp_too_old(msg.header, "velodyne_points"):
            return
        pts = reduce_points(cloud_xyz(msg), self.cfg.cloud_pose, self.reach, self.cfg.voxel_size,
                            self.cfg.max_obstacle_points, self.z_range)
        with self.lock:
            self.sup.set_obstacles("velodyne_points", pts, self.clock())

    @guarded("odom", _BAD_INPUT)
    def _on_odom(self, msg: Odometry) -> None:
        if self._stamp_too_old(msg.header, "odom"):
            return
        t = msg.twist.twist
        if not all(math.isfinite(v) for v in (t.linear.x, t.linear.y, t.angular.z)):
            raise BadSensorDataError("odom twist is not finite")
        with self.lock:
            self.sup.note_sensor("odom", self.clock())

    @guarded("emergency_stop/trigger", _BAD_INPUT)
    def _on_trigger(self, msg: Bool) -> None:
        if msg.data:  # false is ignored by contract: only the reset service clears the stop
            self._latch("emergency_stop/trigger", signal=True)

    # ------------------------------------------------------------------ e-stop
    def _latch(self, cause: str, signal: bool) -> None:
        with self.lock:
            newly = self.sup.trigger_estop(self.clock(), cause, signal)
            if newly:  # react now, not on the next tick
                self.cmd_pub.publish(array_to_twist(ZERO_TWIST))
        if newly:
            self._publish_estop(True)

    def _on_trigger_service(self, _req) -> TriggerResponse:
        self._latch("trigger_emergency_stop service", signal=False)
        return TriggerResponse(success=True, message="emergency stop latched")

    def _on_reset(self, _req) -> TriggerResponse:
        with self.lock:
            ok, message = self.sup.reset(self.clock())
            latched = self.sup.latch.latched
        self._publish_estop(latched)
        return TriggerResponse(success=ok, message=message)

    def _publish_estop(self, state: bool, force: bool = False) -> None:
        if force or state != self._published_estop:
            self._published_estop = state
            self.estop_pub.publish(Bool(data=state))

    # ------------------------------------------------------------------ outputs
    def _on_tick(self, _event) -> None:
        try:
            with self.lock:
                d = self.sup.step(self.clock())
                self.cmd_pub.publish(array_to_twist(d.commanded, self._cmd_msg))
            self.last = d
            self._freq.tick()
            self._publish_status(d)
            self._publish_estop(d.emergency_stop)
        except Exception as exc:  # a failed tick must not stop the timer
            rospy.logerr_throttle(5.0, f"safety_node: output tick failed: {exc!r}")
            self.cmd_pub.publish(array_to_twist(ZERO_TWIST))

    def _on_slow_tick(self, _event) -> None:
        with self.lock:
            latched = self.sup.latch.latched
        self._publish_estop(latched, force=True)
        self.diag.update()

    def _publish_status(self, d: Decision) -> None:
        now = rospy.Time.now()
        self.json_pub.publish(String(data=safety_status_json(d, now.to_sec(), self.cfg.robot_id)))
        m = SafetyStatus()
        m.header.stamp = now
        m.header.frame_id = self.cfg.base_frame
        m.level, m.status, m.reason = d.level, d.status, d.reason
        m.emergency_stop = d.emergency_stop
        m.speed_scale = d.speed_scale
        m.nearest_obstacle_m = d.nearest_obstacle_m
        if d.nearest_obstacle is not None:
            m.nearest_obstacle.x, m.nearest_obstacle.y = d.nearest_obstacle
        array_to_twist(np.nan_to_num(d.requested), m.requested)
        array_to_twist(d.commanded, m.commanded)
        m.rejected_commands = d.rejected_commands
        self.status_pub.publish(m)

    # ------------------------------------------------------------------ diagnostics
    def _diag_supervisor(self, stat):
        d = self.last
        if d is None:
            stat.summary(DiagnosticStatus.WARN, "no output tick yet")
            return stat
        stat.summary(_DIAG_LEVEL.get(d.level, DiagnosticStatus.ERROR), f"{d.status}: {d.reason}" if d.reason
                     else d.status)
        stat.add("emergency_stop", str(d.emergency_stop))
        stat.add("speed_scale", f"{d.speed_scale:.2f}")
        stat.add("nearest_obstacle_m", f"{d.nearest_obstacle_m:.2f}")
        stat.add("rejected_commands", str(d.rejected_commands))
        stat.add("estop_triggers", str(self.sup.latch.triggers))
        for name, age in d.sensor_ages_s.items():
            stat.add(f"{name}_age_s", "never" if age is None else f"{age:.2f}")
        return stat

    def _diag_inputs(self, stat):
        total = self.bad.total
        stat.summary(DiagnosticStatus.OK if total == 0 else DiagnosticStatus.WARN,
                     f"{total} bad messages dropped")
        for topic, count in sorted(self.bad.counts.items()):
            stat.add(f"dropped {topic}", str(count))
        return stat


def main() -> None:
    rospy.init_node("safety_node")
    bridge_logging("vla_safety")
    config = load_config(SafetyConfig)
    SafetyNode(config)
    rospy.loginfo("safety_node up: output %.0f Hz, collision_threshold %.2f m, required sensors %s",
                  config.output_rate, config.collision_threshold, ", ".join(config.required_sensors))
    rospy.spin()
