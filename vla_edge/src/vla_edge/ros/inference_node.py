"""inference_node: the thin ROS shell around vla_edge.controller (names in shared INTERFACES.md).

Subscribes the camera (newest frame only), velodyne_points (when the policy asks for lidar) and
task_command; publishes cmd_vel_vla, vla/action, vla/inference_stats, vla_performance, vla_logs and
/diagnostics; serves ~set_mode (vla_msgs/SetMode) and ~load_model (std_srvs/Trigger: hot swap to
the policy at ~model_path).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import fields
from functools import partial

import diagnostic_updater
import numpy as np
import rospy
from cv_bridge import CvBridge, CvBridgeError
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger, TriggerResponse

from vla_edge.config import ConfigError, InferenceConfig, build_config
from vla_edge.controller import ACTION, STOP, Frame, InferenceController, Runtime, StepResult
from vla_edge.encoders import (
    SUPPORTED_ENCODINGS,
    CachedTextEncoder,
    EncodingError,
    TextEncoder,
    lidar_sector_ranges,
    make_text_encoder,
    to_rgb,
)
from vla_edge.modes import ModeSwitch
from vla_edge.policy import PolicyLoadError, configure_threads, load_policy
from vla_edge.schedule import StepScheduler
from vla_edge.spec import PolicySpec
from vla_edge.tasks import TaskRejectedError, parse_task_command
from vla_edge.wire import log_json, performance_json
from vla_msgs.msg import Action, InferenceStats
from vla_msgs.srv import SetMode, SetModeResponse

BUFF_SIZE = 1 << 24  # larger than any camera frame or cloud this node takes, so rospy never queues old ones
EVENT_LOG_PERIOD_S = 1.0


class _RosoutHandler(logging.Handler):
    """Bridges the core's `logging` records to rosout."""

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            rospy.logerr(msg)
        elif record.levelno >= logging.WARNING:
            rospy.logwarn(msg)
        else:
            rospy.loginfo(msg)


def read_config() -> InferenceConfig:
    params = {}
    for f in fields(InferenceConfig):
        if rospy.has_param("~" + f.name):
            params[f.name] = rospy.get_param("~" + f.name)
    if "robot_id" not in params and rospy.has_param("robot_id"):
        params["robot_id"] = rospy.get_param("robot_id")
    return build_config(params)


def cloud_xy(msg: PointCloud2) -> np.ndarray:
    """The x, y columns of a PointCloud2 with float32 x and y fields, as an [N, 2] array."""
    offsets = {f.name: f.offset for f in msg.fields if f.datatype == 7}  # 7: FLOAT32
    if "x" not in offsets or "y" not in offsets or msg.point_step <= 0:
        raise EncodingError("point cloud has no float32 x and y fields")
    n = len(msg.data) // msg.point_step
    raw = np.frombuffer(msg.data, dtype=np.uint8, count=n * msg.point_step).reshape(n, msg.point_step)
    endian = ">" if msg.is_bigendian else "<"
    x = raw[:, offsets["x"]:offsets["x"] + 4].copy().view(endian + "f4")[:, 0]
    y = raw[:, offsets["y"]:offsets["y"] + 4].copy().view(endian + "f4")[:, 0]
    return np.stack([x, y], axis=1)


def make_encoder(spec: PolicySpec, device: str, capacity: int, current: TextEncoder | None = None) -> TextEncoder:
    """Reuses the running encoder when the new policy names the same one (the sentence model takes seconds)."""
    if current is not None and current.name == spec.language_encoder and current.dim == spec.language_dim:
        return current
    encoder = CachedTextEncoder(make_text_encoder(spec, device), capacity)
    encoder.encode("warm up")
    return encoder


class InferenceNode:
    def __init__(self, config: InferenceConfig, runtime: Runtime, modes: ModeSwitch):
        self.config = config
        self.modes = modes
        self.bridge = CvBridge()
        self.controller = InferenceController(config, runtime, on_event=self._on_event)
        self.scheduler = StepScheduler(config.control_rate)
        self._step_lock = threading.Lock()
        self._event_times: dict[str, float] = {}
        self._load_lock = threading.Lock()
        self._lidar_sub = None

        self.cmd_pub = rospy.Publisher("cmd_vel_vla", Twist, queue_size=1)
        self.action_pub = rospy.Publisher("vla/action", Action, queue_size=10)
        self.stats_pub = rospy.Publisher("vla/inference_stats", InferenceStats, queue_size=1)
        self.perf_pub = rospy.Publisher("vla_performance", String, queue_size=1)
        self.log_pub = rospy.Publisher("vla_logs", String, queue_size=20)

        self.image_age = diagnostic_updater.TimeStampStatus(
            diagnostic_updater.TimeStampStatusParam(min_acceptable=-1.0, max_acceptable=config.max_image_age))
        self.updater = diagnostic_updater.Updater()
        self.updater.setHardwareID(config.robot_id)
        self.updater.add("policy", self._diag_policy)
        self.updater.add("control loop", self._diag_loop)
        self.updater.add(self.image_age)

        if config.image_transport == "compressed":
            rospy.Subscriber("camera/rgb/image_raw/compressed", CompressedImage, self._on_compressed,
                             queue_size=1, buff_size=BUFF_SIZE)
        else:
            rospy.Subscriber("camera/rgb/image_raw", Image, self._on_image, queue_size=1, buff_size=BUFF_SIZE)
        self._subscribe_lidar(runtime.spec)
        rospy.Subscriber("task_command", String, self._on_task, queue_size=10)
        rospy.Service("~set_mode", SetMode, self._on_set_mode)
        rospy.Service("~load_model", Trigger, self._on_load_model)
        rospy.on_shutdown(self.controller.shutdown)
        # steps normally run on frame arrival (see vla_edge.schedule); this timer covers missing frames
        self.control_timer = rospy.Timer(rospy.Duration(0.5 / config.control_rate), self._on_tick)
        self.stats_timer = rospy.Timer(rospy.Duration(1.0 / config.stats_rate), self._on_stats)

    # ---- inputs ----
    def _on_image(self, msg: Image) -> None:
        start, arrival = time.perf_counter(), time.monotonic()
        if msg.encoding not in SUPPORTED_ENCODINGS:
            self.controller.frame_dropped(f"image encoding {msg.encoding!r} not supported "
                                          f"(use {' or '.join(SUPPORTED_ENCODINGS)})")
            return
        if msg.height == 0 or msg.width == 0 or msg.step < 3 * msg.width or len(msg.data) < msg.step * msg.height:
            self.controller.frame_dropped(f"image {msg.width}x{msg.height} step {msg.step} with "
                                          f"{len(msg.data)} bytes is inconsistent")
            return
        self.controller.submit_frame(Frame(self._stamp(msg), arrival, partial(self._decode_raw, msg)))
        if self.scheduler.on_frame(arrival):
            self._run_step(start)

    def _on_compressed(self, msg: CompressedImage) -> None:
        start, arrival = time.perf_counter(), time.monotonic()
        if not msg.data:
            self.controller.frame_dropped("empty compressed image")
            return
        self.controller.submit_frame(Frame(self._stamp(msg), arrival, partial(self._decode_compressed, msg)))
        if self.scheduler.on_frame(arrival):
            self._run_step(start)

    @staticmethod
    def _stamp(msg) -> float:
        stamp = msg.header.stamp.to_sec()
        return stamp if stamp > 0 else rospy.get_time()

    def _decode_raw(self, msg: Image) -> np.ndarray:
        try:
            array = self.bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        except (CvBridgeError, TypeError, ValueError) as exc:
            raise EncodingError(f"cv_bridge could not convert the frame: {exc}") from exc
        return to_rgb(np.asarray(array), msg.encoding)

    def _decode_compressed(self, msg: CompressedImage) -> np.ndarray:
        try:
            array = self.bridge.compressed_imgmsg_to_cv2(msg, desired_encoding="passthrough")
        except (CvBridgeError, TypeError, ValueError) as exc:
            raise EncodingError(f"cv_bridge could not decode the {msg.format!r} frame: {exc}") from exc
        if array is None or array.ndim != 3:
            raise EncodingError(f"compressed frame ({msg.format!r}) is not a 3-channel image")
        return to_rgb(np.asarray(array), "bgr8")  # cv2.imdecode gives BGR

    def _subscribe_lidar(self, spec: PolicySpec) -> None:
        if spec.lidar_sectors and self._lidar_sub is None:
            self._lidar_sub = rospy.Subscriber("velodyne_points", PointCloud2, self._on_cloud, queue_size=1,
                                               buff_size=BUFF_SIZE)

    def _on_cloud(self, msg: PointCloud2) -> None:
        sectors = self.controller.runtime.spec.lidar_sectors or self.config.lidar_sectors
        try:
            xy = cloud_xy(msg)
        except (EncodingError, ValueError) as exc:
            self._on_event("dropped", f"velodyne_points: {exc}")
            return
        self.controller.submit_lidar(lidar_sector_ranges(xy, sectors, self.config.lidar_max_range))

    def _on_task(self, msg: String) -> None:
        try:
            command = parse_task_command(msg.data, self.config.max_task_length)
        except TaskRejectedError as exc:
            rospy.logwarn(f"task_command refused: {exc}")
            self._log("error", f"task_command refused: {exc}")
            return
        try:
            changed = self.controller.set_task(command)
        except (RuntimeError, ValueError) as exc:
            rospy.logerr(f"task_command could not be encoded: {exc}")
            self._log("error", f"task could not be encoded: {exc}")
            return
        if changed:
            if command.idle:
                self.cmd_pub.publish(Twist())  # halt now; the next control step repeats it, then silence
            text = "standby" if command.idle else repr(command.description)
            rospy.loginfo(f"task: {text}" + (f" (id {command.task_id})" if command.task_id else ""))
            self._log("inference", f"task {text}", task_id=command.task_id)

    # ---- services ----
    def _on_set_mode(self, req) -> SetModeResponse:
        ok, message, mode = self.modes.request(req.mode)
        (rospy.loginfo if ok else rospy.logwarn)(f"set_mode {req.mode!r}: {message}")
        return SetModeResponse(success=ok, message=message, mode=mode)

    def _on_load_model(self, _req) -> TriggerResponse:
        if not self._load_lock.acquire(blocking=False):
            return TriggerResponse(success=False, message="a model load is already in progress")
        try:
            path = rospy.get_param("~model_path", self.config.model_path)
            current = self.controller.runtime
            try:
                policy = load_policy(path, self.config.device, self.config.warmup_runs)
                encoder = make_encoder(policy.spec, policy.device.type, self.config.language_cache_size,
                                       current.encoder)
            except (PolicyLoadError, ValueError, OSError) as exc:
                rospy.logerr(f"load_model refused, keeping {current.spec.name} {current.spec.version}: {exc}")
                self._log("error", f"load_model refused: {exc}")
                return TriggerResponse(success=False, message=str(exc))
            self._subscribe_lidar(policy.spec)
            self.controller.stage(Runtime.build(policy, encoder))
            message = f"policy {policy.spec.name} {policy.spec.version} from {path} replaces the running one"
            rospy.loginfo(message)
            self._log("inference", message)
            return TriggerResponse(success=True, message=message)
        finally:
            self._load_lock.release()

    # ---- control step ----
    def _on_tick(self, _event) -> None:
        if self.scheduler.on_timer(time.monotonic()):
            self._run_step(time.perf_counter())

    def _run_step(self, start: float) -> None:
        """One control step; start is when the triggering frame (or timer) arrived, for the overhead."""
        if not self._step_lock.acquire(blocking=False):
            return  # a step is still running (its first chunk): this trigger is not needed
        try:
            self._step(start)
        except rospy.ROSException as exc:  # publishing while the node shuts down
            rospy.logwarn_throttle(1.0, f"control step not published: {exc}")
        finally:
            self._step_lock.release()

    def _step(self, start: float) -> None:
        result = self.controller.step(rospy.get_time())
        if result.outcome == STOP:
            self.cmd_pub.publish(Twist())  # one zero command so the robot halts now, then the policy is silent
            return
        if result.outcome == ACTION:
            self._publish(result, start)
        if result.frame is not None:
            self.image_age.tick(rospy.Time.from_sec(result.frame.stamp_s))

    def _publish(self, result: StepResult, start: float) -> None:
        act = result.action
        a = act.action
        twist = Twist()
        twist.linear.x, twist.linear.y, twist.linear.z = float(a[0]), float(a[1]), float(a[2])
        twist.angular.x, twist.angular.y, twist.angular.z = float(a[3]), float(a[4]), float(a[5])
        self.cmd_pub.publish(twist)
        published = time.perf_counter()
        msg = Action()
        msg.header.stamp = rospy.Time.from_sec(act.chunk.image_stamp_s)
        msg.header.frame_id = self.config.frame_id
        msg.twist = twist
        msg.values = [float(v) for v in act.raw_action]
        msg.chunk_index = act.index
        msg.chunk_length = act.chunk.actions.shape[0]
        msg.task = result.task
        msg.model_version = act.chunk.model_version
        msg.source = self.modes.mode
        msg.inference_ms = act.chunk.inference_ms
        msg.latency_ms = (time.monotonic() - result.frame.arrival_s) * 1000.0
        self.action_pub.publish(msg)
        self.controller.finish_step(result, (published - start) * 1000.0 - result.waited_ms)

    # ---- statistics, logs, diagnostics ----
    def _on_stats(self, _event) -> None:
        snap = self.controller.snapshot()
        msg = InferenceStats()
        msg.header.stamp = rospy.Time.now()
        msg.mode = self.modes.mode
        for name in ("model_version", "current_task", "window_s", "fps", "inference_ms_mean", "inference_ms_p50",
                     "inference_ms_p99", "overhead_ms_p50", "overhead_ms_p99", "image_age_ms", "inference_count",
                     "action_count", "error_count", "dropped_frames", "stale_frames"):
            setattr(msg, name, snap[name])
        self.stats_pub.publish(msg)
        # one-slot inputs: a queue "size" is 1 while a message waits in the slot
        self.perf_pub.publish(String(data=performance_json(snap, int(self.controller.has_frame),
                                                           int(self.controller.has_lidar), 0, self.modes.mode)))
        self.updater.update()

    def _on_event(self, kind: str, message: str) -> None:
        """Core events (dropped frames, rejected outputs, model switches): logged and sent at most once a second
        per kind; every occurrence is counted by the controller."""
        now = time.monotonic()
        if now - self._event_times.get(kind, -1e9) < EVENT_LOG_PERIOD_S:
            return
        self._event_times[kind] = now
        if kind == "model":
            rospy.loginfo(message)
            self._log("inference", message)
        else:
            rospy.logwarn(f"{kind}: {message}")
            self._log("error", message, kind=kind)

    def _log(self, entry_type: str, message: str, **extra: object) -> None:
        self.log_pub.publish(String(data=log_json(entry_type, self.config.robot_id, message, **extra)))

    def _diag_policy(self, stat: diagnostic_updater.DiagnosticStatusWrapper):
        spec = self.controller.runtime.spec
        c = self.controller.counters
        level = DiagnosticStatus.WARN if c.error_count else DiagnosticStatus.OK
        stat.summary(level, f"{spec.name} {spec.version} ({self.modes.mode})")
        stat.add("model_path", self.controller.runtime.path)
        stat.add("form", spec.form)
        stat.add("chunk_length", spec.chunk_length)
        stat.add("inference_count", c.inference_count)
        stat.add("error_count", c.error_count)
        return stat

    def _diag_loop(self, stat: diagnostic_updater.DiagnosticStatusWrapper):
        snap = self.controller.snapshot()
        active = bool(snap["current_task"])
        if not active:
            stat.summary(DiagnosticStatus.OK, "idle (no task)")
        elif snap["fps"] < 0.8 * self.config.control_rate:
            stat.summary(DiagnosticStatus.WARN, f"{snap['fps']:.1f} Hz, below {self.config.control_rate:.1f} Hz")
        else:
            stat.summary(DiagnosticStatus.OK, f"{snap['fps']:.1f} Hz")
        for key in ("current_task", "fps", "inference_ms_p50", "inference_ms_p99", "overhead_ms_p99",
                    "preprocess_ms_p99", "dropped_frames", "stale_frames", "starved_steps", "action_count"):
            stat.add(key, snap[key])
        return stat


def main() -> None:
    # Python hands the GIL over every 5 ms by default; the control step shares it with the worker and
    # rospy's receive threads, so a shorter interval bounds how long a tick waits to run.
    sys.setswitchinterval(0.0005)
    rospy.init_node("inference_node")
    handler = _RosoutHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    core_log = logging.getLogger("vla_edge")
    core_log.addHandler(handler)
    core_log.setLevel(logging.INFO)
    try:
        config = read_config()
        modes = ModeSwitch(initial=config.mode)
    except (ConfigError, ValueError) as exc:
        rospy.logfatal(f"inference_node refuses to start: {exc}")
        sys.exit(1)
    try:
        threads = configure_threads(config.torch_threads)
        policy = load_policy(config.model_path, config.device, config.warmup_runs)
        encoder = make_encoder(policy.spec, policy.device.type, config.language_cache_size)
    except (PolicyLoadError, ValueError, OSError) as exc:
        rospy.logfatal(f"inference_node refuses to start: {exc}")
        sys.exit(1)
    node = InferenceNode(config, Runtime.build(policy, encoder), modes)
    rospy.loginfo(f"inference_node ready: {policy.spec.name} {policy.spec.version} on {policy.device} "
                  f"({threads} torch threads), {config.control_rate:g} Hz, mode {modes.mode}")
    del node
    rospy.spin()
