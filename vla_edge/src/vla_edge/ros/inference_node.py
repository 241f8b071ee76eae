"""inference_node: the thin ROS shell around vla_edge.controller (names in vla_msgs.names and INTERFACES.md).

Subscribes the camera (newest frame only), velodyne_points (when the policy asks for lidar) and
task_command; publishes cmd_vel_vla, vla/action, vla/inference_stats, vla_performance, vla_logs,
cloud_vla_result (every cloud answer or error, in cloud and hybrid modes) and /diagnostics; serves
~set_mode (vla_msgs/SetMode) and ~load_model (std_srvs/Trigger: hot swap to
the policy at ~model_path). Every time it keeps is ROS time, so a simulator's /clock drives it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import rospy
from cv_bridge import CvBridge, CvBridgeError
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger, TriggerResponse

from vla_edge.clock import PolledClock
from vla_edge.cloud_client import (
    CircuitBreaker,
    CloudAuthError,
    CloudClient,
    CloudOverloadedError,
    CloudPolicy,
)
from vla_edge.config import InferenceConfig
from vla_edge.controller import (
    CloudReport,
    ErrorType,
    Frame,
    InferenceController,
    InferenceRecord,
    Runtime,
    StepOutcome,
    StepResult,
    UnstampedFrameError,
)
from vla_edge.encoders import EncodingError, check_encoding, encoder_for, lidar_sector_ranges, to_rgb
from vla_edge.modes import ModeSwitch
from vla_edge.policy import PolicyLoadError, configure_threads, load_policy
from vla_edge.report import loop_status, performance_fields, stats_fields
from vla_edge.schedule import StepScheduler
from vla_edge.spec import PolicySpec
from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.config import CONFIG_EXIT_CODE
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.msg import Action, InferenceStats
from vla_msgs.point_cloud import PointCloudError, read_points
from vla_msgs.srv import SetMode, SetModeResponse
from vla_msgs.states import LogType
from vla_msgs.tasks import TaskRejectedError, parse_task_command

LOG = logging.getLogger(__name__)
BUFF_SIZE = 1 << 24  # larger than any camera frame or cloud this node takes, so rospy never queues old ones
ERROR_LOG_PERIOD_S = 1.0  # rosout gets each kind of loop error at most this often; vla_logs gets every one
# A step waits at most ~inference_timeout (<= 1 s) on its chunk; a stop waits for it no longer than this.
STOP_LOCK_TIMEOUT_S = 2.0
CAMERA_TOPICS = (names.CAMERA_IMAGE, names.CAMERA_IMAGE_COMPRESSED)


class InferenceNode:
    def __init__(self, config: InferenceConfig, runtime: Runtime, modes: ModeSwitch, logs: VlaLogs,
                 clock: PolledClock, cloud: CloudPolicy | None = None):
        self.config = config
        self.modes = modes
        self.logs = logs
        self.cloud = cloud
        self.bridge = CvBridge()
        self.bad = BadInputCounter(clock=rospy.get_time)
        self.last_latency_ms = math.nan  # the last action's image arrival to publication; NaN before the first
        self.last_cloud: CloudReport | None = None
        self.cloud_pub = rospy.Publisher(names.CLOUD_RESULT, String, queue_size=10)
        self.controller = InferenceController(config, runtime, clock=clock, on_error=self._on_error,
                                              on_inference=self._on_inference, modes=modes,
                                              on_cloud=self._on_cloud)
        self.scheduler = StepScheduler(config.control_rate)
        self._step_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._error_times: dict[ErrorType, float] = {}
        self._lidar_sub = None

        self.cmd_pub = rospy.Publisher(names.CMD_VEL_VLA, Twist, queue_size=1)
        self.action_pub = rospy.Publisher(names.ACTION, Action, queue_size=10)
        self.stats_pub = rospy.Publisher(names.INFERENCE_STATS, InferenceStats, queue_size=1)
        self.perf_pub = rospy.Publisher(names.PERFORMANCE, String, queue_size=1)

        self.diagnostics = Diagnostics(config.robot_id, 1.0 / config.stats_rate)
        self.diagnostics.task("policy", self._diag_policy)
        self.diagnostics.task("control loop", self._diag_loop)
        if cloud is not None:
            self.diagnostics.task("cloud", self._diag_cloud)
        self.image_age = self.diagnostics.stamp_age("image age", config.max_image_age)

        if config.image_transport == "compressed":
            rospy.Subscriber(names.CAMERA_IMAGE_COMPRESSED, CompressedImage, self._on_compressed,
                             queue_size=1, buff_size=BUFF_SIZE)
        else:
            rospy.Subscriber(names.CAMERA_IMAGE, Image, self._on_image, queue_size=1, buff_size=BUFF_SIZE)
        self._subscribe_lidar(runtime.spec)
        rospy.Subscriber(names.TASK_COMMAND, String, self._on_task, queue_size=10)
        # private services: names.INFERENCE_SET_MODE and names.INFERENCE_LOAD_MODEL as clients see them
        rospy.Service("~set_mode", SetMode, self._on_set_mode)
        rospy.Service("~load_model", Trigger, self._on_load_model)
        rospy.on_shutdown(self._shutdown)
        # steps normally run on frame arrival (see vla_edge.schedule); this timer covers missing frames
        self.control_timer = rospy.Timer(rospy.Duration(0.5 / config.control_rate), self._on_tick)
        self.stats_timer = rospy.Timer(rospy.Duration(1.0 / config.stats_rate), self._on_stats)

    # ---- inputs ----
    @counted_callback(names.CAMERA_IMAGE, (EncodingError, UnstampedFrameError))
    def _on_image(self, msg: Image) -> None:
        start, arrival = time.perf_counter(), rospy.get_time()
        check_encoding(msg.encoding)
        if msg.height == 0 or msg.width == 0 or msg.step < 3 * msg.width or len(msg.data) < msg.step * msg.height:
            raise EncodingError(f"image {msg.width}x{msg.height} step {msg.step} with {len(msg.data)} bytes "
                                f"is inconsistent")
        self.controller.submit_frame(Frame(msg.header.stamp.to_sec(), arrival, partial(self._decode_raw, msg), start))
        if self.scheduler.on_frame(arrival):
            self._run_step(start)

    @counted_callback(names.CAMERA_IMAGE_COMPRESSED, (EncodingError, UnstampedFrameError))
    def _on_compressed(self, msg: CompressedImage) -> None:
        start, arrival = time.perf_counter(), rospy.get_time()
        if not msg.data:
            raise EncodingError("empty compressed image")
        self.controller.submit_frame(Frame(msg.header.stamp.to_sec(), arrival, partial(self._decode_compressed, msg),
                                           start))
        if self.scheduler.on_frame(arrival):
            self._run_step(start)

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
            self._lidar_sub = rospy.Subscriber(names.POINTS, PointCloud2, self._on_cloud, queue_size=1,
                                               buff_size=BUFF_SIZE)

    @counted_callback(names.POINTS, (PointCloudError,))
    def _on_cloud(self, msg: PointCloud2) -> None:
        sectors = self.controller.runtime.spec.lidar_sectors
        if sectors:  # a policy swapped in without lidar leaves the subscriber; its clouds are not needed
            xy = read_points(msg, ("x", "y"))
            self.controller.submit_lidar(lidar_sector_ranges(xy, sectors, self.config.lidar_max_range))

    @counted_callback(names.TASK_COMMAND, (TaskRejectedError,))
    def _on_task(self, msg: String) -> None:
        command = parse_task_command(msg.data)
        if command.robot_id and command.robot_id != self.config.robot_id:
            raise TaskRejectedError(f"task for robot {command.robot_id!r} reached robot {self.config.robot_id!r}")
        if not self.controller.set_task(command):
            return
        if command.idle:
            self._stop_now()
        text = "standby" if command.idle else repr(command.description)
        LOG.info("task: %s%s", text, f" (id {command.task_id})" if command.task_id else "")

    # ---- services ----
    def _on_set_mode(self, req) -> SetModeResponse:
        ok, message, mode = self.modes.request(req.mode)
        (LOG.info if ok else LOG.warning)("set_mode %r: %s", req.mode, message)
        return SetModeResponse(success=ok, message=message, mode=mode)

    def _on_load_model(self, _req) -> TriggerResponse:
        if not self._load_lock.acquire(blocking=False):
            return TriggerResponse(success=False, message="a model load is already in progress")
        try:
            path = rospy.get_param("~model_path", self.config.model_path)
            current = self.controller.runtime
            try:
                if not isinstance(path, str) or not path:
                    raise PolicyLoadError(f"~model_path must be a policy file path, got {path!r}")
                policy = load_policy(path, self.config.device, self.config.warmup_runs)
                encoder = encoder_for(policy.spec, policy.device.type, self.config.language_cache_size,
                                      current.encoder)
            except (PolicyLoadError, ValueError, OSError) as exc:
                rospy.logerr(f"load_model refused, keeping {current.spec.name} {current.spec.version}: {exc}")
                self.logs.entry(LogType.ERROR.value, error_type="load_model_refused", error_message=str(exc),
                                context={"model_path": str(path), "running_version": current.spec.version})
                return TriggerResponse(success=False, message=str(exc))
            self._subscribe_lidar(policy.spec)
            self.controller.stage(Runtime.build(policy, encoder, self.cloud))
            message = f"policy {policy.spec.name} {policy.spec.version} from {path} replaces the running one"
            LOG.info(message)
            return TriggerResponse(success=True, message=message)
        finally:
            self._load_lock.release()

    # ---- control step ----
    def _stop_now(self) -> None:
        """Runs the control step that publishes the one zero command at once. Under the step lock, so that
        a step still in flight publishes its (moving) action before the zero, never after it."""
        if not self._step_lock.acquire(timeout=STOP_LOCK_TIMEOUT_S):
            self.cmd_pub.publish(Twist())  # a step is stuck: halt anyway; that step's STOP repeats it
            return
        try:
            self._step(time.perf_counter())
        except rospy.ROSException as exc:
            rospy.logwarn_throttle(1.0, f"stop not published: {exc}")
        finally:
            self._step_lock.release()

    def _on_tick(self, _event) -> None:
        if self.scheduler.on_timer(rospy.get_time()):
            self._run_step(time.perf_counter())

    def _run_step(self, start: float) -> None:
        """One control step; start is when the triggering frame (or timer) arrived, for the overhead."""
        if not self._step_lock.acquire(blocking=False):
            self.controller.step_skipped()  # the previous step still runs (waiting on its first chunk)
            return
        try:
            self._step(start)
        except rospy.ROSException as exc:  # publishing while the node shuts down
            rospy.logwarn_throttle(1.0, f"control step not published: {exc}")
        finally:
            self._step_lock.release()

    def _step(self, start: float) -> None:
        result = self.controller.step()
        if result.outcome is StepOutcome.STOP:
            self.cmd_pub.publish(Twist())  # one zero command so the robot halts now, then the policy is silent
            return
        if result.outcome is StepOutcome.ACTION:
            self._publish(result, start)
        if result.frame is not None:
            self.image_age.tick(rospy.Time.from_sec(result.frame.stamp_s))

    def _publish(self, result: StepResult, start: float) -> None:
        act = result.action
        a = [float(v) for v in act.action]
        twist = Twist()
        twist.linear.x, twist.linear.y, twist.linear.z = a[0], a[1], a[2]
        twist.angular.x, twist.angular.y, twist.angular.z = a[3], a[4], a[5]
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
        msg.source = act.chunk.source
        msg.inference_ms = act.chunk.inference_ms
        msg.latency_ms = self.last_latency_ms = (published - result.frame.received_perf_s) * 1000.0
        self.action_pub.publish(msg)
        self.controller.finish_step(result, (published - start) * 1000.0 - result.waited_ms)
        self.logs.entry(LogType.ACTION.value, action=a, task=result.task)

    # ---- statistics, logs, diagnostics ----
    def _dropped_frames(self, controller_dropped: int) -> int:
        """Frames refused in the callbacks (bad encoding, size, stamp) plus those that failed to decode."""
        return controller_dropped + sum(self.bad.counts.get(topic, 0) for topic in CAMERA_TOPICS)

    def _on_stats(self, _event) -> None:
        snap = self.controller.snapshot()
        dropped = self._dropped_frames(snap.counters.dropped_frames)
        msg = InferenceStats(**stats_fields(snap, self.modes.mode, dropped, self.last_latency_ms))
        msg.header.stamp = rospy.Time.now()
        self.stats_pub.publish(msg)
        perf = json_forms.PERFORMANCE.build(timestamp=rospy.get_time(),
                                            **performance_fields(snap, self.modes.mode, dropped))
        self.perf_pub.publish(String(data=perf))

    def _on_error(self, error_type: ErrorType, message: str, context: dict) -> None:
        """Loop errors (undecodable frames, refused model outputs): every one to vla_logs, rosout throttled;
        every occurrence is counted by the controller."""
        self.logs.entry(LogType.ERROR.value, error_type=error_type.value, error_message=message, context=context)
        now = rospy.get_time()
        if now - self._error_times.get(error_type, -math.inf) >= ERROR_LOG_PERIOD_S:
            self._error_times[error_type] = now
            rospy.logwarn(f"{error_type.value}: {message}")

    def _on_inference(self, record: InferenceRecord) -> None:
        with contextlib.suppress(rospy.ROSException):  # the node is shutting down; the chunk still counts
            self.logs.entry(LogType.INFERENCE.value, input_size=record.input_size, output_action=record.output_action,
                            inference_time_ms=record.inference_ms, sequence_number=record.sequence_number)

    def _on_cloud(self, report: CloudReport) -> None:
        """Every cloud answer or error to cloud_vla_result (worker thread); errors to rosout throttled."""
        self.last_cloud = report
        fields = {"actions": report.actions.tolist() if report.actions is not None else None,
                  "model_version": report.model_version,
                  "latency_ms": round(report.latency_ms, 3) if math.isfinite(report.latency_ms) else None,
                  "inference_ms": (round(report.server_inference_ms, 3) if math.isfinite(report.server_inference_ms)
                                   else None),
                  "mode": report.mode, "source": report.served_by,
                  "breaker": self.cloud.breaker.state.value if self.cloud else None,
                  "overloaded": self.cloud.breaker.overloaded if self.cloud else None}
        if not report.ok:
            fields.update(error=report.error, error_type=report.error_type)
            if math.isfinite(report.retry_after_s):
                fields["retry_after_s"] = round(report.retry_after_s, 3)
            # an overload is logged once per episode by the breaker; a wrong token gets its own line, throttled
            if report.error_type == CloudAuthError.kind:
                rospy.logerr_throttle(ERROR_LOG_PERIOD_S * 10, f"cloud server refuses this robot's token: "
                                                               f"{report.error}")
            elif report.error_type != CloudOverloadedError.kind:
                rospy.logwarn_throttle(ERROR_LOG_PERIOD_S * 5, f"cloud {report.error_type}: {report.error} "
                                                               f"(served by: {report.served_by})")
        with contextlib.suppress(rospy.ROSException):  # shutting down
            self.cloud_pub.publish(String(data=json_forms.CLOUD_RESULT.build(timestamp=rospy.get_time(), **fields)))

    def _shutdown(self) -> None:
        self.controller.shutdown()
        if self.cloud is not None:
            self.cloud.close()

    def _diag_cloud(self, stat: Status) -> Status:
        c = self.controller.counters
        breaker = self.cloud.breaker.state.value
        uses = self.modes.uses_cloud
        if self.cloud.breaker.overloaded:
            breaker += " (server overloaded)"
        stat.summary(WARN if uses and breaker != "closed" else OK,
                     f"{self.cloud.client.url} breaker {breaker}" + ("" if uses else " (not used in edge mode)"))
        stat.add("url", self.cloud.client.url)
        for key in ("cloud_requests", "cloud_errors", "cloud_fallbacks", "cloud_overloaded", "cloud_client_errors",
                    "cloud_actions", "edge_actions"):
            stat.add(key, getattr(c, key))
        last = self.last_cloud
        if last is not None:
            stat.add("last latency_ms", f"{last.latency_ms:.1f}")
            stat.add("last result", "ok" if last.ok else f"{last.error_type}: {last.error}")
        return stat

    def _diag_policy(self, stat: Status) -> Status:
        spec = self.controller.runtime.spec
        c = self.controller.counters
        stat.summary(WARN if c.error_count else OK, f"{spec.name} {spec.version} ({self.modes.mode})")
        stat.add("model_path", self.controller.runtime.path)
        stat.add("form", spec.form)
        stat.add("chunk_length", spec.chunk_length)
        stat.add("inference_count", c.inference_count)
        stat.add("error_count", c.error_count)
        return stat

    def _diag_loop(self, stat: Status) -> Status:
        snap = self.controller.snapshot()
        ok, text = loop_status(snap, self.config.control_rate)
        stat.summary(OK if ok else WARN, text)
        fields = performance_fields(snap, self.modes.mode, self._dropped_frames(snap.counters.dropped_frames))
        for key in ("current_task", "fps", "inference_ms_p50", "inference_ms_p99", "overhead_ms_p99",
                    "preprocess_ms_p99", "image_age_ms", "dropped_frames", "stale_frames", "starved_steps",
                    "skipped_steps", "action_count"):
            stat.add(key, "unknown" if fields[key] is None else fields[key])
        for source, count in sorted(self.bad.counts.items()):
            stat.add(f"refused on {source}", f"{count} (last: {self.bad.last_reason[source]})")
        return stat


def make_cloud(config: InferenceConfig, clock: PolledClock) -> CloudPolicy:
    """The cloud policy from ~cloud_*: token read from its file, breaker on ROS time."""
    token = ""
    if config.cloud_token_file:
        try:
            token = Path(config.cloud_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"~cloud_token_file {config.cloud_token_file!r}: {exc.strerror}") from exc
        if not token:
            raise ValueError(f"~cloud_token_file {config.cloud_token_file!r} is empty")
    client = CloudClient(config.cloud_url, token=token, ca_file=config.cloud_ca_file,
                         connect_timeout_s=config.cloud_connect_timeout, read_timeout_s=config.cloud_read_timeout,
                         jpeg_quality=config.jpeg_quality, retry_after_default_s=config.cloud_retry_after_default,
                         retry_after_max_s=config.cloud_retry_after_max)
    breaker = CircuitBreaker(config.cloud_failure_threshold, config.cloud_retry_interval, config.cloud_retry_max,
                             rospy.get_time)
    return CloudPolicy(client, breaker, clock)


def main() -> None:
    # Python hands the GIL over every 5 ms by default; the control step shares it with the worker and
    # rospy's receive threads, so a shorter interval bounds how long a tick waits to run.
    sys.setswitchinterval(0.0005)
    rospy.init_node(names.INFERENCE_NODE)
    config = load_config(InferenceConfig)
    logs = VlaLogs(names.INFERENCE_NODE, config.robot_id)
    bridge_logging(("vla_edge", "vla_monitoring"), logs)
    clock = PolledClock(rospy.get_time, wall_time=rospy.rostime.is_wallclock())
    try:
        modes = ModeSwitch.for_cloud(bool(config.cloud_url), initial=config.mode)
    except ValueError as exc:
        rospy.logfatal(f"{rospy.get_name()}: invalid parameter: ~mode: {exc}")
        sys.exit(CONFIG_EXIT_CODE)
    try:
        cloud = make_cloud(config, clock) if config.cloud_url else None
    except ValueError as exc:  # make_cloud names the parameter
        rospy.logfatal(f"{rospy.get_name()}: invalid parameter: {exc}")
        sys.exit(CONFIG_EXIT_CODE)
    try:
        threads = configure_threads(config.torch_threads)
        policy = load_policy(config.model_path, config.device, config.warmup_runs)
        encoder = encoder_for(policy.spec, policy.device.type, config.language_cache_size)
    except (PolicyLoadError, ValueError, OSError) as exc:
        rospy.logfatal(f"inference_node refuses to start: {exc}")
        sys.exit(1)
    InferenceNode(config, Runtime.build(policy, encoder, cloud), modes, logs, clock, cloud)
    LOG.info("inference_node ready: %s %s on %s (%d torch threads), %g Hz, mode %s%s", policy.spec.name,
             policy.spec.version, policy.device, threads, config.control_rate, modes.mode,
             f", cloud {config.cloud_url}" if cloud else "")
    rospy.spin()
