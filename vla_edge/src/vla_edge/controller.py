"""The control loop without ROS: newest frame in, one action per control step out.

The timer calls `step()` at the control rate. Chunks are computed on one worker thread; the next
one is requested while the current one still has `chunk_refresh` steps left, so the robot does not
wait for the model (asynchronous inference as in LeRobot). Only the first step of a task (or a
model too slow for its chunk) waits, and never longer than `inference_timeout`.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla_edge.chunking import ActionQueue, Chunk, StepAction
from vla_edge.config import InferenceConfig, prefetch_lead_s, step_wait_s
from vla_edge.encoders import EncodingError, ImagePreprocessor, TextEncoder, vision_features
from vla_edge.policy import BasePolicy, NonFiniteActionError, PolicyLoadError, guarded
from vla_edge.spec import FORM_FEATURES, PolicySpec
from vla_edge.stats import RollingWindow, summary
from vla_edge.tasks import TaskCommand

LOG = logging.getLogger(__name__)

IDLE = "idle"          # no task: publish nothing
STOP = "stop"          # the task was just idled: publish one zero command, then nothing
NO_IMAGE = "no_image"  # a task but no frame yet
STALE = "stale"        # newest frame older than max_image_age: publish nothing
WAITING = "waiting"    # no chunk covers this step yet
ACTION = "action"


@dataclass(frozen=True)
class Frame:
    """The newest camera frame; `decode` (run on the worker) gives HxWx3 uint8 RGB or raises EncodingError."""

    stamp_s: float
    arrival_s: float       # monotonic clock
    decode: Callable[[], np.ndarray]


@dataclass(frozen=True)
class Runtime:
    """A loaded policy with what it needs: the guarded policy, its preprocessing and text encoder."""

    policy: BasePolicy
    spec: PolicySpec
    preprocess: ImagePreprocessor
    encoder: TextEncoder
    path: str = ""

    @classmethod
    def build(cls, policy: BasePolicy, encoder: TextEncoder) -> Runtime:
        return cls(policy=guarded(policy), spec=policy.spec, preprocess=ImagePreprocessor(policy.spec),
                   encoder=encoder, path=str(getattr(policy, "path", "")))


@dataclass(frozen=True)
class Task:
    description: str
    task_id: str
    language: np.ndarray
    encoder: str


@dataclass(frozen=True)
class StepResult:
    outcome: str
    action: StepAction | None = None
    frame: Frame | None = None
    image_age_ms: float = math.nan
    waited_ms: float = 0.0       # time blocked on the worker in this step
    task: str = ""
    step: int = -1               # control step index (ACTION only)


@dataclass
class Counters:
    inference_count: int = 0
    action_count: int = 0
    error_count: int = 0
    dropped_frames: int = 0
    stale_frames: int = 0
    starved_steps: int = 0


class _CancelledError(Exception):
    """A scheduled chunk request dropped because its task or model ended before it ran."""


def _noop(kind: str, message: str) -> None:
    pass


class InferenceController:
    def __init__(self, config: InferenceConfig, runtime: Runtime,
                 on_event: Callable[[str, str], None] = _noop, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.counters = Counters()
        self._rt = runtime
        self._staged: Runtime | None = None
        self._on_event = on_event
        self._clock = clock
        self._lock = threading.Lock()
        self._queue = ActionQueue(config.temporal_ensembling, config.ensembling_decay)
        self._executor = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla_infer")
        self._pending: cf.Future | None = None
        self._pending_generation = -1
        self._pending_cancel = threading.Event()
        self._step_started_s = 0.0
        self._frame: Frame | None = None
        self._lidar: np.ndarray | None = None
        self._task: Task | None = None
        self._stop_pending = False
        self._generation = 0
        self._step = 0
        self._inference_ms = RollingWindow(config.stats_window)
        self._overhead_ms = RollingWindow(config.stats_window)
        self._preprocess_ms = RollingWindow(config.stats_window)
        self._actions = RollingWindow(config.stats_window)
        self._image_age_ms = RollingWindow(config.stats_window)
        self.last_image_age_ms = math.nan
        self.last_action_time_s = 0.0

    # ---- inputs (any thread) ----
    @property
    def runtime(self) -> Runtime:
        return self._rt

    @property
    def task(self) -> Task | None:
        return self._task

    @property
    def has_frame(self) -> bool:
        return self._frame is not None

    @property
    def has_lidar(self) -> bool:
        return self._lidar is not None

    def submit_frame(self, frame: Frame) -> None:
        self._frame = frame  # one slot: a newer frame replaces an older one

    def submit_lidar(self, sectors: np.ndarray) -> None:
        self._lidar = sectors

    def frame_dropped(self, reason: str) -> None:
        with self._lock:
            self.counters.dropped_frames += 1
        self._on_event("dropped", reason)

    def set_task(self, command: TaskCommand) -> bool:
        """Applies a parsed task command; returns True when the active task changed."""
        if command.idle:
            with self._lock:
                was_active = self._task is not None
                self._task = None
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
            self._stop_pending = False
            self._reset_locked()
        return True

    def stage(self, runtime: Runtime) -> None:
        """A loaded, warmed policy that replaces the running one at the start of the next step."""
        if self._task is not None:
            runtime.encoder.encode(self._task.description)  # fills its cache so the swap does not wait
        with self._lock:
            self._staged = runtime

    # ---- the control step (timer thread) ----
    def step(self, now_s: float) -> StepResult:
        """One control step; now_s is the clock image stamps use (ROS time)."""
        self._step_started_s = self._clock()
        self._swap_if_staged()
        self._collect(0.0)
        with self._lock:
            if self._stop_pending:
                self._stop_pending = False
                return StepResult(STOP)
            task, frame = self._task, self._frame
        if task is None:
            return StepResult(IDLE)
        if frame is None:
            return StepResult(NO_IMAGE, task=task.description)
        age_s = now_s - frame.stamp_s
        self.last_image_age_ms = age_s * 1000.0
        self._image_age_ms.add(self._clock(), age_s * 1000.0)
        if age_s > self.config.max_image_age:
            with self._lock:
                self.counters.stale_frames += 1
                self._reset_locked()
            return StepResult(STALE, frame=frame, image_age_ms=age_s * 1000.0, task=task.description)
        with self._lock:
            n = self._step
            self._step += 1
            act = self._queue.action_at(n)
        waited_ms = 0.0
        if act is None:
            budget_s = step_wait_s(self.config)
            if self._pending is not None and self._pending_generation != self._generation:
                waited_ms += self._collect(budget_s)  # a chunk for an old task or model: drain, then ask anew
            if self._pending is None:
                self._submit(frame, task, n)
            waited_ms += self._collect(max(0.0, budget_s - waited_ms / 1000.0))
            with self._lock:
                act = self._queue.action_at(n)
        if act is None:
            with self._lock:
                self.counters.starved_steps += 1
            return StepResult(WAITING, frame=frame, image_age_ms=age_s * 1000.0, waited_ms=waited_ms,
                              task=task.description)
        return StepResult(ACTION, action=act, frame=frame, image_age_ms=age_s * 1000.0, waited_ms=waited_ms,
                          task=task.description, step=n)

    def finish_step(self, result: StepResult, overhead_ms: float) -> None:
        """Called by the node once the action is out: records it, then asks for the next chunk if the
        current one runs low. Asking only now keeps the worker (and its share of the GIL) off the
        path from the tick to the publication."""
        now = self._clock()
        with self._lock:
            self.counters.action_count += 1
            task = self._task
            prefetch = (task is not None and self._pending is None and self._rt.spec.chunk_length > 1
                        and self._queue.remaining(result.step) <= self.config.chunk_refresh)
        self._overhead_ms.add(now, overhead_ms)
        self._actions.add(now, 1.0)
        self.last_action_time_s = time.time()
        if not prefetch:
            return
        lead_s = prefetch_lead_s(self.config)
        if lead_s > 0:
            # Take the frame just before the next step and let the chunk start there: actions[0] then runs
            # lead_s after its frame (receding horizon), instead of one whole period later.
            not_before = self._step_started_s + 1.0 / self.config.control_rate - lead_s
            self._submit(result.frame, task, result.step + 1, not_before)
        else:
            self._submit(result.frame, task, result.step)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- statistics ----
    def snapshot(self) -> dict:
        now = self._clock()
        inf = summary(self._inference_ms.values(now))
        over = summary(self._overhead_ms.values(now))
        pre = summary(self._preprocess_ms.values(now))
        age = summary(self._image_age_ms.values(now))
        c = self.counters
        return {
            "fps": self._actions.rate_hz(now), "inference_ms_mean": inf["mean"], "inference_ms_p50": inf["p50"],
            "inference_ms_p99": inf["p99"], "overhead_ms_p50": over["p50"], "overhead_ms_p99": over["p99"],
            "preprocess_ms_p50": pre["p50"], "preprocess_ms_p99": pre["p99"],
            "image_age_ms_p50": age["p50"], "image_age_ms_p99": age["p99"],
            "image_age_ms": 0.0 if math.isnan(self.last_image_age_ms) else self.last_image_age_ms,
            "inference_count": c.inference_count, "action_count": c.action_count, "error_count": c.error_count,
            "dropped_frames": c.dropped_frames, "stale_frames": c.stale_frames, "starved_steps": c.starved_steps,
            "current_task": self._task.description if self._task else "", "model_version": self._rt.spec.version,
            "model_name": self._rt.spec.name, "last_action_time": self.last_action_time_s,
            "window_s": self.config.stats_window,
        }

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
        self._on_event("model", f"switched to policy {staged.spec.name} {staged.spec.version}")

    def _submit(self, frame: Frame, task: Task, start_step: int, not_before_s: float = 0.0) -> None:
        """Asks the worker for a chunk; with not_before_s it waits until then and takes the newest frame."""
        with self._lock:
            generation, rt = self._generation, self._rt
            cancel = threading.Event()
            self._pending_cancel = cancel
        self._pending_generation = generation
        self._pending = self._executor.submit(self._run_request, rt, frame, task, start_step, generation,
                                              not_before_s, cancel)

    def _run_request(self, rt: Runtime, frame: Frame, task: Task, start_step: int, generation: int,
                     not_before_s: float, cancel: threading.Event) -> Chunk:
        delay_s = min(not_before_s - self._clock(), 1.0 / self.config.control_rate)
        if delay_s > 0 and cancel.wait(delay_s):
            raise _CancelledError
        if not_before_s > 0:
            frame = self._frame or frame
        return self._infer(rt, frame, task, self._lidar, start_step, generation)

    def _collect(self, timeout_s: float) -> float:
        """Takes a finished chunk off the worker, waiting at most timeout_s; returns the wait [ms]."""
        future = self._pending
        if future is None:
            return 0.0
        start = time.perf_counter()
        if timeout_s > 0:
            cf.wait([future], timeout=timeout_s)
        waited_ms = (time.perf_counter() - start) * 1000.0
        if not future.done():
            return waited_ms
        self._pending = None
        try:
            chunk: Chunk = future.result()
        except _CancelledError:
            return waited_ms
        except EncodingError as exc:
            self.frame_dropped(str(exc))
            return waited_ms
        except NonFiniteActionError as exc:
            with self._lock:
                self.counters.inference_count += 1
                self.counters.error_count += 1
            self._on_event("error", str(exc))
            return waited_ms
        except (RuntimeError, PolicyLoadError, ValueError) as exc:
            with self._lock:
                self.counters.error_count += 1
            self._on_event("error", f"inference failed: {exc}")
            return waited_ms
        now = self._clock()
        self._inference_ms.add(now, chunk.inference_ms)
        self._preprocess_ms.add(now, chunk.preprocess_ms)
        with self._lock:
            self.counters.inference_count += 1
            if chunk.generation == self._generation:
                self._queue.add(chunk)
        return waited_ms

    @staticmethod
    def _infer(rt: Runtime, frame: Frame, task: Task, lidar: np.ndarray | None, start_step: int,
               generation: int) -> Chunk:
        start = time.perf_counter()
        rgb = frame.decode()
        if rt.spec.form == FORM_FEATURES:
            sectors = lidar if rt.spec.lidar_sectors else None
            obs = {"vision_features": vision_features(rgb, sectors), "language": task.language}
        else:
            obs = {"image": rt.preprocess(rgb), "language": task.language}
        preprocess_ms = (time.perf_counter() - start) * 1000.0
        result = rt.policy.infer(obs)
        return Chunk(actions=result["actions"], raw_actions=result["raw_actions"], start_step=start_step,
                     image_stamp_s=frame.stamp_s, model_version=rt.spec.version,
                     inference_ms=result["inference_ms"], generation=generation, preprocess_ms=preprocess_ms)
