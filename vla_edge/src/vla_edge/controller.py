"""The control loop without ROS: newest frame in, one action per control step out.

The node calls `step()` at the control rate. Chunks are computed on one worker thread; the next
one is requested while the current one still has `chunk_refresh` steps left, so the robot does not
wait for the model (asynchronous inference as in LeRobot). Only the first step of a task (or a
model too slow for its chunk) waits, and never longer than `inference_timeout`.

Every time and every wait is on the injected clock (ROS time in the node), so a simulator's /clock
drives the loop; compute durations (inference_ms, overhead) are measured on the CPU's own counter.

Where a chunk is computed follows the mode in force when it is requested (vla_edge.modes): the worker
asks the cloud policy first in cloud and hybrid modes; in hybrid a failed or late cloud answer is
replaced by the edge model's on the same request, in cloud mode it stops the robot.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import numpy as np

from vla_edge.chunking import ActionQueue, Chunk, StepAction
from vla_edge.clock import Clock, MonotonicClock
from vla_edge.cloud_client import CloudClientError, CloudError, CloudOverloadedError
from vla_edge.config import InferenceConfig
from vla_edge.encoders import EncodingError, ImagePreprocessor, TextEncoder, vision_features
from vla_edge.modes import CLOUD, EDGE, HYBRID, SOURCE_CLOUD, SOURCE_EDGE, ModeSwitch
from vla_edge.policy import BasePolicy, NonFiniteActionError, PolicyLoadError, finite_and_clamped
from vla_edge.spec import FORM_FEATURES, PolicySpec
from vla_edge.stats import RollingWindow, summary
from vla_msgs.tasks import TaskCommand

LOG = logging.getLogger(__name__)


class StepOutcome(StrEnum):
    IDLE = "idle"            # no task: publish nothing
    STOP = "stop"            # the task was just idled: publish one zero command, then nothing
    NO_IMAGE = "no_image"    # a task but no usable frame yet
    STALE = "stale"          # newest frame's age outside max_image_age: publish nothing
    WAITING = "waiting"      # no chunk covers this step in time: publish nothing (a starved step)
    ACTION = "action"        # publish the step's action


class ErrorType(StrEnum):
    """`error_type` of the errors the loop reports (vla_logs error entries)."""
    BAD_FRAME = "bad_frame"                  # a frame that failed to decode on the worker
    NON_FINITE_OUTPUT = "non_finite_output"  # the model returned NaN or inf: the chunk is dropped
    INFERENCE_FAILED = "inference_failed"    # the forward pass raised
    CLOUD_LOST = "cloud_lost"                # cloud mode: the server failed, the robot is stopped


class UnstampedFrameError(ValueError):
    """A frame without a header stamp while unstamped frames are not allowed: its age is unknown."""


@dataclass(frozen=True)
class Frame:
    """The newest camera frame; `decode` (run on the worker) gives HxWx3 uint8 RGB or raises EncodingError."""

    stamp_s: float                # header stamp on the loop's clock; 0 when the camera gave none
    arrival_s: float              # when it arrived, on the loop's clock
    decode: Callable[[], np.ndarray]
    received_perf_s: float = 0.0  # time.perf_counter() at arrival: the node's latency measurement


@dataclass(frozen=True)
class Runtime:
    """A loaded policy with what it needs: the checked policy, its preprocessing and text encoder."""

    policy: BasePolicy
    spec: PolicySpec
    preprocess: ImagePreprocessor
    encoder: TextEncoder
    path: str = ""
    cloud: BasePolicy | None = None  # the cloud policy under this policy's limits (cloud_client.CloudPolicy)

    @classmethod
    def build(cls, policy: BasePolicy, encoder: TextEncoder, cloud: CloudPolicyLike | None = None) -> Runtime:
        return cls(policy=finite_and_clamped(policy), spec=policy.spec, preprocess=ImagePreprocessor(policy.spec),
                   encoder=encoder, path=str(getattr(policy, "path", "")),
                   cloud=finite_and_clamped(cloud.for_spec(policy.spec)) if cloud is not None else None)


class CloudPolicyLike(BasePolicy, Protocol):
    """The cloud policy (cloud_client.CloudPolicy) as the controller sees it: a BasePolicy per policy spec."""

    def for_spec(self, spec: PolicySpec) -> BasePolicy: ...


@dataclass(frozen=True)
class CloudReport:
    """One cloud request's outcome (a cloud_vla_result message): the answer or the error."""
    ok: bool
    actions: np.ndarray | None   # the chunk as the server gave it (None on error)
    model_version: str | None
    latency_ms: float            # request start -> answer or error, on the CPU's counter
    server_inference_ms: float = math.nan
    error: str = ""
    error_type: str = ""
    mode: str = ""
    served_by: str = ""          # who computed the chunk for this request: cloud, edge (fallback) or none
    retry_after_s: float = math.nan  # overload: how long no request goes to the server (NaN otherwise)


@dataclass(frozen=True)
class Task:
    description: str
    task_id: str
    language: np.ndarray
    encoder: str


@dataclass(frozen=True)
class StepResult:
    outcome: StepOutcome
    action: StepAction | None = None
    frame: Frame | None = None
    image_age_ms: float = math.nan
    waited_ms: float = 0.0       # time blocked on the worker in this step
    task: str = ""
    step: int = -1               # control step index (ACTION only)


@dataclass(frozen=True)
class InferenceRecord:
    """One forward pass that gave a usable chunk: a vla_logs inference entry."""
    sequence_number: int         # forward passes since start, this one included
    input_size: int
    output_action: np.ndarray    # the chunk's first action, within limits
    inference_ms: float


@dataclass
class Counters:
    inference_count: int = 0
    action_count: int = 0
    error_count: int = 0
    dropped_frames: int = 0      # frames that failed to decode on the worker
    stale_frames: int = 0
    starved_steps: int = 0       # steps that found no chunk in time: nothing published
    skipped_steps: int = 0       # due steps not run at all because the previous step still ran
    edge_actions: int = 0        # published actions whose chunk the edge model computed
    cloud_actions: int = 0       # ... and the cloud server
    cloud_requests: int = 0      # chunk requests that asked the cloud (sent or refused by the breaker)
    cloud_errors: int = 0        # of those, the ones without a usable cloud chunk (error, timeout, breaker open)
    cloud_fallbacks: int = 0     # hybrid: cloud errors served by the edge model on the same request
    cloud_overloaded: int = 0    # of cloud_errors: the server shed load (429/503/504) or we held off as it asked
    cloud_client_errors: int = 0  # of cloud_errors: 4xx of this client's own making (wrong token, refused frame)


@dataclass(frozen=True)
class Snapshot:
    """The loop's statistics over the window; NaN means unknown (nothing measured yet), never 0."""
    window_s: float
    fps: float
    inference_ms_mean: float
    inference_ms_p50: float
    inference_ms_p99: float
    overhead_ms_p50: float
    overhead_ms_p99: float
    preprocess_ms_p50: float
    preprocess_ms_p99: float
    image_age_ms_p50: float
    image_age_ms_p99: float
    image_age_ms: float          # of the frame the last step looked at
    counters: Counters
    current_task: str
    model_name: str
    model_version: str
    last_action_time: float      # loop clock; NaN before the first action
    image_queue_size: int        # frames in the one-slot buffer not yet used for inference (0 or 1)
    lidar_queue_size: int        # lidar scans in the one-slot buffer not yet used for inference (0 or 1)
    task_queue_size: int         # tasks accepted but not yet acted on (0 or 1)


class _CancelledError(Exception):
    """A scheduled chunk request dropped because its task or model ended before it ran."""


def _no_error(error_type: ErrorType, message: str, context: dict) -> None:
    pass


def _no_inference(record: InferenceRecord) -> None:
    pass


def _no_cloud(report: CloudReport) -> None:
    pass


class InferenceController:
    """`on_error(type, message, context)`, `on_inference(record)` and `on_cloud(report)` report to the node;
    they must not raise. `on_inference` and `on_cloud` run on the worker thread, off the control step's path.
    `modes` says where chunks are computed (edge only without it)."""

    def __init__(self, config: InferenceConfig, runtime: Runtime, *, clock: Clock | None = None,
                 on_error: Callable[[ErrorType, str, dict], None] = _no_error,
                 on_inference: Callable[[InferenceRecord], None] = _no_inference,
                 modes: ModeSwitch | None = None, on_cloud: Callable[[CloudReport], None] = _no_cloud):
        self.config = config
        self.modes = modes or ModeSwitch()
        self._on_cloud = on_cloud
        self._cloud_down = False  # cloud mode: the server failed and the robot was stopped
        self.counters = Counters()
        self._rt = runtime
        self._staged: Runtime | None = None
        self._clock = clock or MonotonicClock()
        self._on_error = on_error
        self._on_inference = on_inference
        self._lock = threading.Lock()
        self._queue = ActionQueue(config.temporal_ensembling, config.ensembling_decay)
        self._executor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla_infer")
        self._pending: cf.Future | None = None
        self._pending_done = threading.Event()
        self._pending_generation = -1
        self._pending_cancel = threading.Event()
        self._step_started_s = 0.0
        self._frame: Frame | None = None
        self._frame_unused = False
        self._lidar: np.ndarray | None = None
        self._lidar_unused = False
        self._task: Task | None = None
        self._task_unserved = False
        self._stop_pending = False
        self._generation = 0
        self._step = 0
        self._inference_ms = RollingWindow(config.stats_window)
        self._overhead_ms = RollingWindow(config.stats_window)
        self._preprocess_ms = RollingWindow(config.stats_window)
        self._actions = RollingWindow(config.stats_window)
        self._image_age_ms = RollingWindow(config.stats_window)
        self.last_image_age_ms = math.nan
        self.last_action_time_s = math.nan

    # ---- inputs (any thread) ----
    @property
    def runtime(self) -> Runtime:
        return self._rt

    @property
    def task(self) -> Task | None:
        return self._task

    @property
    def worker_busy(self) -> bool:
        """True while a chunk request is queued or running on the worker."""
        future = self._pending
        return future is not None and not future.done()

    def submit_frame(self, frame: Frame) -> None:
        """Puts the newest frame in the one slot. A frame without a stamp has an unknown age: refused
        (UnstampedFrameError) unless `allow_unstamped_images`, which ages it from its arrival."""
        if frame.stamp_s <= 0:
            if not self.config.allow_unstamped_images:
                raise UnstampedFrameError("image has no header stamp, so its age is unknown and it may not drive "
                                          "the robot (set ~allow_unstamped_images to age it from its arrival)")
            frame = replace(frame, stamp_s=frame.arrival_s)
        with self._lock:
            self._frame = frame  # one slot: a newer frame replaces an older one
            self._frame_unused = True

    def submit_lidar(self, sectors: np.ndarray) -> None:
        with self._lock:
            self._lidar = sectors
            self._lidar_unused = True

    def set_task(self, command: TaskCommand) -> bool:
        """Applies a parsed task command; returns True when the active task changed."""
        if command.idle:
            with self._lock:
                was_active = self._task is not None
                self._task = None
                self._task_unserved = False
                self._reset_locked()
                self._stop_pending = was_active
            return was_active
        current = self._task
        if current and current.description == command.description and current.task_id == command.task_id:
            return False
        rt = self._rt
        language = rt.encoder.encode(command.description)  # outside the lock: the sentence model takes ms
        with self._lock:
            self._task = Task(command.description, command.task_id, language, rt.encoder.name)
            self._task_unserved = True
            self._stop_pending = False
            self._reset_locked()
        return True

    def stage(self, runtime: Runtime) -> None:
        """A loaded, warmed policy that replaces the running one at the start of the next step."""
        if self._task is not None:
            runtime.encoder.encode(self._task.description)  # fills its cache so the swap does not wait
        with self._lock:
            self._staged = runtime

    # ---- the control step (one thread) ----
    def step(self) -> StepResult:
        """One control step at the clock's now."""
        now = self._clock.now()
        self._step_started_s = now
        self._swap_if_staged()
        self._collect(0.0)
        with self._lock:
            if self._stop_pending:
                self._stop_pending = False
                return StepResult(StepOutcome.STOP)
            task, frame = self._task, self._frame
        if task is None:
            return StepResult(StepOutcome.IDLE)
        if frame is None:
            return StepResult(StepOutcome.NO_IMAGE, task=task.description)
        age_s = now - frame.stamp_s
        self.last_image_age_ms = age_s * 1000.0
        self._image_age_ms.add(now, age_s * 1000.0)
        # A stamp further in the future than max_image_age means the camera's clock is not ours: unknown age.
        if abs(age_s) > self.config.max_image_age:
            with self._lock:
                self.counters.stale_frames += 1
                self._reset_locked()
            return StepResult(StepOutcome.STALE, frame=frame, image_age_ms=age_s * 1000.0, task=task.description)
        with self._lock:
            n = self._step
            self._step += 1
            act = self._queue.action_at(n)
        waited_ms = 0.0
        if act is None:
            deadline = now + self.config.step_wait_s
            if self._pending is not None and self._pending_generation != self._generation:
                waited_ms += self._collect(deadline - self._clock.now())  # a chunk for an old task or model
            if self._pending is None:
                self._submit(frame, task, n)
            waited_ms += self._collect(deadline - self._clock.now())
            with self._lock:
                if self._stop_pending:  # cloud mode lost its server in this step: halt now
                    self._stop_pending = False
                    return StepResult(StepOutcome.STOP)
                act = self._queue.action_at(n)
        if act is None:
            with self._lock:
                self.counters.starved_steps += 1
            return StepResult(StepOutcome.WAITING, frame=frame, image_age_ms=age_s * 1000.0, waited_ms=waited_ms,
                              task=task.description)
        return StepResult(StepOutcome.ACTION, action=act, frame=frame, image_age_ms=age_s * 1000.0,
                          waited_ms=waited_ms, task=task.description, step=n)

    def step_skipped(self) -> None:
        """The node could not run a due step because the previous one was still running: a missed period."""
        with self._lock:
            self.counters.skipped_steps += 1

    def finish_step(self, result: StepResult, overhead_ms: float) -> None:
        """Called by the node once the action is out: records it, then asks for the next chunk if the
        current one runs low. Asking only now keeps the worker (and its share of the GIL) off the
        path from the tick to the publication."""
        now = self._clock.now()
        with self._lock:
            self.counters.action_count += 1
            if result.action is not None and result.action.chunk.source == SOURCE_CLOUD:
                self.counters.cloud_actions += 1
            else:
                self.counters.edge_actions += 1
            task = self._task
            if task is not None and task.description == result.task:
                self._task_unserved = False
            prefetch = (task is not None and self._pending is None and self._rt.spec.chunk_length > 1
                        and self._queue.remaining(result.step) <= self.config.chunk_refresh)
        self._overhead_ms.add(now, overhead_ms)
        self._actions.add(now, 1.0)
        self.last_action_time_s = now
        if not prefetch:
            return
        lead_s = self.config.prefetch_lead_s
        if lead_s > 0:
            # Take the frame just before the next step and let the chunk start there: actions[0] then runs
            # lead_s after its frame (receding horizon), instead of one whole period later.
            not_before = self._step_started_s + self.config.period_s - lead_s
            self._submit(result.frame, task, result.step + 1, not_before)
        else:
            self._submit(result.frame, task, result.step)

    def shutdown(self) -> None:
        self._pending_cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- statistics ----
    def snapshot(self) -> Snapshot:
        now = self._clock.now()
        inf = summary(self._inference_ms.values(now))
        over = summary(self._overhead_ms.values(now))
        pre = summary(self._preprocess_ms.values(now))
        age = summary(self._image_age_ms.values(now))
        with self._lock:
            counters = replace(self.counters)
            task, rt = self._task, self._rt
            queues = (int(self._frame_unused), int(self._lidar_unused), int(self._task_unserved))
        return Snapshot(
            window_s=self.config.stats_window, fps=self._actions.rate_hz(now),
            inference_ms_mean=inf["mean"], inference_ms_p50=inf["p50"], inference_ms_p99=inf["p99"],
            overhead_ms_p50=over["p50"], overhead_ms_p99=over["p99"],
            preprocess_ms_p50=pre["p50"], preprocess_ms_p99=pre["p99"],
            image_age_ms_p50=age["p50"], image_age_ms_p99=age["p99"], image_age_ms=self.last_image_age_ms,
            counters=counters, current_task=task.description if task else "", model_name=rt.spec.name,
            model_version=rt.spec.version, last_action_time=self.last_action_time_s,
            image_queue_size=queues[0], lidar_queue_size=queues[1], task_queue_size=queues[2],
        )

    # ---- internals ----
    def _reset_locked(self) -> None:
        self._generation += 1
        self._queue.clear()
        self._pending_cancel.set()

    def _swap_if_staged(self) -> None:
        with self._lock:
            staged, self._staged = self._staged, None
        if staged is None:
            return
        task = self._task
        language = staged.encoder.encode(task.description) if task else None
        with self._lock:
            self._rt = staged
            if task is not None and self._task is task:
                self._task = Task(task.description, task.task_id, language, staged.encoder.name)
            self._reset_locked()
        LOG.info("switched to policy %s %s", staged.spec.name, staged.spec.version)

    def _submit(self, frame: Frame, task: Task, start_step: int, not_before_s: float = 0.0) -> None:
        """Asks the worker for a chunk; with not_before_s it waits until then and takes the newest frame."""
        with self._lock:
            generation, rt = self._generation, self._rt
            cancel = threading.Event()
            self._pending_cancel = cancel
        done = threading.Event()
        self._pending_generation = generation
        self._pending_done = done
        future = self._executor.submit(self._run_request, rt, frame, task, start_step, generation, not_before_s,
                                       cancel)
        future.add_done_callback(lambda _f: done.set())
        self._pending = future

    def _run_request(self, rt: Runtime, frame: Frame, task: Task, start_step: int, generation: int,
                     not_before_s: float, cancel: threading.Event) -> Chunk:
        delay_s = min(not_before_s - self._clock.now(), self.config.period_s)
        if delay_s > 0 and self._clock.wait(cancel, delay_s):
            raise _CancelledError
        if cancel.is_set():
            raise _CancelledError
        with self._lock:
            if not_before_s > 0 and self._frame is not None:
                frame = self._frame
            lidar = self._lidar if rt.spec.lidar_sectors else None
            if frame is self._frame:
                self._frame_unused = False
            if lidar is not None:
                self._lidar_unused = False
        try:
            chunk = self._infer(rt, frame, task, lidar, start_step, generation)
        except NonFiniteActionError:
            with self._lock:
                self.counters.inference_count += 1  # the forward pass ran; its output was refused
            raise
        with self._lock:
            self.counters.inference_count += 1
            sequence = self.counters.inference_count
        self._on_inference(InferenceRecord(sequence, chunk.input_size, chunk.actions[0], chunk.inference_ms))
        return chunk

    def _collect(self, timeout_s: float) -> float:
        """Takes a finished chunk off the worker, waiting at most timeout_s on the clock; returns the wait [ms]."""
        future = self._pending
        if future is None:
            return 0.0
        start = time.perf_counter()
        if timeout_s > 0 and not future.done():
            self._clock.wait(self._pending_done, timeout_s)
        waited_ms = (time.perf_counter() - start) * 1000.0
        if not future.done():
            return waited_ms
        self._pending = None
        try:
            chunk: Chunk = future.result()
        except (_CancelledError, cf.CancelledError):
            return waited_ms
        except CloudError:  # cloud mode only (hybrid fell back on the worker); already counted and reported
            self._cloud_lost()
            return waited_ms
        except EncodingError as exc:
            with self._lock:
                self.counters.dropped_frames += 1
            self._on_error(ErrorType.BAD_FRAME, str(exc), {})
            return waited_ms
        except NonFiniteActionError as exc:
            with self._lock:
                self.counters.error_count += 1
            self._on_error(ErrorType.NON_FINITE_OUTPUT, str(exc), {"model_version": self._rt.spec.version})
            return waited_ms
        except (RuntimeError, PolicyLoadError, ValueError) as exc:
            with self._lock:
                self.counters.error_count += 1
            self._on_error(ErrorType.INFERENCE_FAILED, f"inference failed: {exc}",
                           {"model_version": self._rt.spec.version})
            return waited_ms
        now = self._clock.now()
        if math.isfinite(chunk.inference_ms):
            self._inference_ms.add(now, chunk.inference_ms)
        self._preprocess_ms.add(now, chunk.preprocess_ms)
        with self._lock:
            self._cloud_down = False  # the robot is driven again: a later loss of the cloud stops it again
            if chunk.generation == self._generation:
                self._queue.add(chunk)
        return waited_ms

    def _cloud_lost(self) -> None:
        """Cloud mode without an answer: what is queued was planned on the server's old view; drop it and
        publish one zero (the first time), then nothing until the server answers again."""
        with self._lock:
            first = not self._cloud_down
            self._cloud_down = True
            self._reset_locked()
            if first and self._task is not None:
                self._stop_pending = True
        if first:
            LOG.warning("cloud mode: the cloud server gave no chunk; the robot is stopped until it answers")
            self._on_error(ErrorType.CLOUD_LOST, "cloud server gave no chunk: robot stopped",
                           {"mode": CLOUD})

    def _infer(self, rt: Runtime, frame: Frame, task: Task, lidar: np.ndarray | None, start_step: int,
               generation: int) -> Chunk:
        start = time.perf_counter()
        rgb = frame.decode()
        mode = self.modes.mode
        if mode != EDGE and rt.cloud is not None:
            chunk = self._infer_cloud(rt, rgb, frame, task, start_step, generation, mode, start)
            if chunk is not None:
                return chunk
        elif mode != EDGE:
            raise CloudError(f"mode {mode} without a cloud client")  # ModeSwitch refuses this; never guess
        if rt.spec.form == FORM_FEATURES:
            obs = {"vision_features": vision_features(rgb, lidar), "language": task.language}
            vision = obs["vision_features"]
        else:
            obs = {"image": rt.preprocess(rgb), "language": task.language}
            vision = obs["image"]
        preprocess_ms = (time.perf_counter() - start) * 1000.0
        result = rt.policy.infer(obs)
        return Chunk(actions=result["actions"], raw_actions=result["raw_actions"], start_step=start_step,
                     image_stamp_s=frame.stamp_s, model_version=rt.spec.version,
                     inference_ms=result["inference_ms"], generation=generation, preprocess_ms=preprocess_ms,
                     input_size=int(vision.size + task.language.size), source=SOURCE_EDGE)

    def _infer_cloud(self, rt: Runtime, rgb: np.ndarray, frame: Frame, task: Task, start_step: int,
                     generation: int, mode: str, start: float) -> Chunk | None:
        """The cloud's chunk; None in hybrid mode when the edge model must serve this request; in cloud
        mode a failure raises CloudError (the step publishes a stop)."""
        with self._lock:
            self.counters.cloud_requests += 1
        obs = {"rgb": rgb, "instruction": task.description,
               "deadline_s": self.config.cloud_deadline_s(hybrid=mode == HYBRID)}
        sent = time.perf_counter()
        try:
            result = rt.cloud.infer(obs)
        except (CloudError, NonFiniteActionError) as exc:
            fallback = mode == HYBRID
            with self._lock:
                self.counters.cloud_errors += 1
                self.counters.cloud_fallbacks += int(fallback)
                self.counters.cloud_overloaded += int(isinstance(exc, CloudOverloadedError))
                self.counters.cloud_client_errors += int(isinstance(exc, CloudClientError))
            kind = getattr(exc, "kind", "non_finite_output")
            self._on_cloud(CloudReport(False, None, None, (time.perf_counter() - sent) * 1000.0, error=str(exc),
                                       error_type=kind, mode=mode, served_by=SOURCE_EDGE if fallback else "none",
                                       retry_after_s=getattr(exc, "retry_after_s", math.nan)))
            if fallback:
                return None
            raise CloudError(str(exc)) from exc
        server_ms = result["inference_ms"]
        self._on_cloud(CloudReport(True, result["raw_actions"], result["model_version"], result["latency_ms"],
                                   server_inference_ms=server_ms, mode=mode, served_by=SOURCE_CLOUD))
        return Chunk(actions=result["actions"], raw_actions=result["raw_actions"], start_step=start_step,
                     image_stamp_s=frame.stamp_s, model_version=result["model_version"] or rt.spec.version,
                     inference_ms=server_ms if math.isfinite(server_ms) else result["latency_ms"],
                     generation=generation, preprocess_ms=(sent - start) * 1000.0, input_size=int(rgb.size),
                     source=SOURCE_CLOUD)
