"""safety_node: the only publisher of cmd_vel. Wraps `SafetySupervisor` in topics, services and diagnostics.

Each cmd_vel_vla is checked against the newest sensors and forwarded the moment it arrives; an
output loop on ROS time keeps cmd_vel coming at no less than ~output_rate for watchdogs, ramps
and stops. Every output, whichever path asks for it, goes through `_output` under one lock.
"""

from __future__ import annotations

import math
import threading

import rospy
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import LaserScan, PointCloud2
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger, TriggerResponse

from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names, point_cloud
from vla_msgs.msg import SafetyStatus
from vla_safety.collision import BadSensorDataError
from vla_safety.config import SafetyConfig
from vla_safety.limits import ZERO_TWIST
from vla_safety.ros.convert import array_to_twist, laserscan_points, twist_to_array
from vla_safety.supervisor import EMERGENCY_STOP, LIMITED, OK, STOPPED, Decision, SafetySupervisor
from vla_safety.watchdog import StaleDataError, data_time

BAD_INPUT = (BadSensorDataError, point_cloud.PointCloudError, StaleDataError)
_DIAG_LEVEL = {OK: DiagnosticStatus.OK, LIMITED: DiagnosticStatus.OK, STOPPED: DiagnosticStatus.WARN,
               EMERGENCY_STOP: DiagnosticStatus.ERROR}


class SafetyNode:
    def __init__(self, config: SafetyConfig):
        self.cfg = config
        self.sup = SafetySupervisor(config)
        self.bad = BadInputCounter(clock=rospy.get_time)
        self.lock = threading.Lock()  # one output at a time, in the order of their times
        self.report_lock = threading.Lock()  # status and e-stop state, after the output and outside its lock
        self.last: Decision | None = None
        self._outputs = 0  # outputs so far: a report older than the last one reported is left out
        self._reported = 0
        self._published_estop: bool | None = None

        self.cmd_pub = rospy.Publisher(names.CMD_VEL, Twist, queue_size=5)
        self.estop_pub = rospy.Publisher(names.EMERGENCY_STOP, Bool, queue_size=1, latch=True)
        self.json_pub = rospy.Publisher(names.SAFETY_STATUS_JSON, String, queue_size=5)
        self.status_pub = rospy.Publisher(names.SAFETY_STATUS, SafetyStatus, queue_size=5)

        self.diag = Diagnostics(config.robot_id)
        self.diag.task("supervisor", self._diag_supervisor)
        self.diag.bad_input(self.bad)
        # Commands add outputs of their own, so only the least rate is a promise.
        self._rate = self.diag.rate("cmd_vel output rate", min_hz=config.output_rate)

        with self.report_lock:
            self._publish_estop(False)
        rospy.Service(names.SAFETY_RESET, Trigger, self._on_reset)
        rospy.Service(names.SAFETY_TRIGGER_ESTOP, Trigger, self._on_trigger_service)
        rospy.Subscriber(names.CMD_VEL_VLA, Twist, self._on_cmd, queue_size=1)
        rospy.Subscriber(names.SCAN, LaserScan, self._on_scan, queue_size=1, buff_size=1 << 20)
        rospy.Subscriber(names.POINTS, PointCloud2, self._on_cloud, queue_size=1, buff_size=1 << 24)
        rospy.Subscriber(names.ODOM, Odometry, self._on_odom, queue_size=1)
        rospy.Subscriber(names.EMERGENCY_STOP_TRIGGER, Bool, self._on_trigger, queue_size=10)
        rospy.Timer(rospy.Duration(config.estop_republish_period), self._on_slow_tick)
        self._loop = threading.Thread(target=self._output_loop, name="safety_output", daemon=True)
        self._loop.start()

    # ------------------------------------------------------------------ inputs
    @counted_callback(names.CMD_VEL_VLA, BAD_INPUT)
    def _on_cmd(self, msg: Twist) -> None:
        twist = twist_to_array(msg)
        with self.lock:
            now = rospy.get_time()
            accepted = self.sup.set_command(twist, now)
            out = self._output(now)  # forwarded now, against the newest sensors, not at the next tick
        self._report(out)
        if not accepted:
            self.bad.reject(names.CMD_VEL_VLA, self.sup.rejection or "refused")

    @counted_callback(names.SCAN, BAD_INPUT)
    def _on_scan(self, msg: LaserScan) -> None:
        data_s = data_time(msg.header.stamp.to_sec(), rospy.get_time(), self.cfg.sensor_timeout)
        points = self.sup.obstacle_points(names.SCAN, laserscan_points(msg))
        with self.lock:
            self.sup.set_obstacles(names.SCAN, points, data_s)

    @counted_callback(names.POINTS, BAD_INPUT)
    def _on_cloud(self, msg: PointCloud2) -> None:
        data_s = data_time(msg.header.stamp.to_sec(), rospy.get_time(), self.cfg.sensor_timeout)
        points = self.sup.obstacle_points(names.POINTS, point_cloud.read_xyz(msg))  # the heavy part, outside the lock
        with self.lock:
            self.sup.set_obstacles(names.POINTS, points, data_s)

    @counted_callback(names.ODOM, BAD_INPUT)
    def _on_odom(self, msg: Odometry) -> None:
        data_s = data_time(msg.header.stamp.to_sec(), rospy.get_time(), self.cfg.sensor_timeout)
        t = msg.twist.twist
        if not all(math.isfinite(v) for v in (t.linear.x, t.linear.y, t.angular.z)):
            raise BadSensorDataError("odom twist is not finite")
        with self.lock:
            self.sup.note_sensor(names.ODOM, data_s)

    @counted_callback(names.EMERGENCY_STOP_TRIGGER, BAD_INPUT)
    def _on_trigger(self, msg: Bool) -> None:
        if msg.data:  # false is ignored by contract: only the reset service clears the stop
            self._latch(names.EMERGENCY_STOP_TRIGGER, signal=True)

    # ------------------------------------------------------------------ e-stop
    def _latch(self, cause: str, signal: bool) -> None:
        with self.lock:
            now = rospy.get_time()
            out = self._output(now) if self.sup.trigger_estop(now, cause, signal) else None  # the zero goes out now
        self._report(out)

    def _on_trigger_service(self, _req) -> TriggerResponse:
        self._latch(f"{names.SAFETY_TRIGGER_ESTOP} service", signal=False)
        return TriggerResponse(success=True, message="emergency stop latched")

    def _on_reset(self, _req) -> TriggerResponse:
        with self.lock:
            ok, message = self.sup.reset(rospy.get_time())
            latched = self.sup.latch.latched
        with self.report_lock:
            self._publish_estop(latched)
        return TriggerResponse(success=ok, message=message)

    def _publish_estop(self, state: bool, force: bool = False) -> None:
        """Called with the report lock held."""
        if force or state != self._published_estop:
            self._published_estop = state
            self.estop_pub.publish(Bool(data=state))

    # ------------------------------------------------------------------ outputs
    def _output(self, now: float) -> tuple[int, Decision, float] | None:
        """The one output path (lock held, `now` read under it so outputs never go back in time); returns
        what `_report` publishes once the lock is released."""
        try:
            d = self.sup.step(now)
        except Exception as exc:  # a bug must not leave the last twist standing: stop, say so, keep running
            rospy.logerr_throttle(5.0, f"safety_node: decision failed, publishing zero: {exc!r}")
            self.cmd_pub.publish(array_to_twist(ZERO_TWIST))
            return None
        self.cmd_pub.publish(array_to_twist(d.commanded))
        self.last = d
        self._outputs += 1
        return self._outputs, d, now

    def _report(self, out: tuple[int, Decision, float] | None) -> None:
        """Status, e-stop state and output rate of one output, outside the output lock so that a trigger
        never waits for them; a report overtaken by a newer output's is left out."""
        if out is None:
            return
        seq, d, now = out
        self._rate.tick()
        with self.report_lock:
            if seq < self._reported:
                return
            self._reported = seq
            self._publish_status(d, now)
            self._publish_estop(d.emergency_stop)

    def _output_loop(self) -> None:
        """Outputs whenever no output went out for a period: rospy.sleep runs on ROS time, so the
        simulator's clock paces it."""
        while not rospy.is_shutdown():
            out = None
            with self.lock:
                now = rospy.get_time()
                wait_s = self.sup.until_output_s(now)
                if wait_s <= 0.0:
                    out = self._output(now)
                    wait_s = self.sup.until_output_s(rospy.get_time())  # one period after `now`: no drift
            self._report(out)
            try:
                rospy.sleep(wait_s)
            except rospy.ROSTimeMovedBackwardsException:
                continue  # the supervisor restarts on the new timeline at the next output
            except rospy.ROSInterruptException:
                return

    def _on_slow_tick(self, _event) -> None:
        with self.lock:
            latched = self.sup.latch.latched
        with self.report_lock:
            self._publish_estop(latched, force=True)

    def _publish_status(self, d: Decision, now: float) -> None:
        self.json_pub.publish(String(data=json_forms.SAFETY_STATUS.build(
            timestamp=now, robot_id=self.cfg.robot_id, **d.fields())))
        m = SafetyStatus()
        m.header.stamp = rospy.Time.from_sec(now)
        m.header.frame_id = self.cfg.base_frame
        m.level, m.status, m.reason = int(d.level), d.status, d.reason
        m.emergency_stop = d.emergency_stop
        m.speed_scale = d.speed_scale
        m.nearest_obstacle_m = d.nearest_obstacle_m
        if d.nearest_obstacle is not None:
            m.nearest_obstacle.x, m.nearest_obstacle.y = d.nearest_obstacle
        array_to_twist(d.requested, m.requested)  # a refused NaN stays NaN: what was asked for
        array_to_twist(d.commanded, m.commanded)
        m.rejected_commands = d.rejected_commands
        self.status_pub.publish(m)

    # ------------------------------------------------------------------ diagnostics
    def _diag_supervisor(self, stat: Status) -> Status:
        d = self.last
        if d is None:
            stat.summary(DiagnosticStatus.WARN, "no output yet")
            return stat
        stat.summary(_DIAG_LEVEL[d.level], f"{d.status}: {d.reason}" if d.reason else d.status)
        stat.add("emergency_stop", str(d.emergency_stop))
        stat.add("speed_scale", f"{d.speed_scale:.2f}")
        stat.add("nearest_obstacle_m", f"{d.nearest_obstacle_m:.2f}")
        stat.add("rejected_commands", str(d.rejected_commands))
        stat.add("estop_triggers", str(self.sup.latch.triggers))
        for name, age in d.sensor_ages_s.items():
            stat.add(f"{name}_age_s", "never" if age is None else f"{age:.2f}")
        return stat



def main() -> None:
    rospy.init_node(names.SAFETY_NODE)
    config = load_config(SafetyConfig)
    bridge_logging(("vla_safety", "vla_monitoring"), VlaLogs(names.SAFETY_NODE, config.robot_id))
    SafetyNode(config)
    rospy.loginfo("safety_node up: commands forwarded on arrival, at least %.0f Hz output, collision_threshold "
                  "%.2f m, required sensors %s", config.output_rate, config.collision_threshold,
                  ", ".join(config.required_sensors))
    rospy.spin()
