"""The inference node's typed configuration: one dataclass, one validation function.

config/inference.yaml mirrors this dataclass field by field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

MODES = ("edge", "cloud", "hybrid")
IMAGE_TRANSPORTS = ("raw", "compressed")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A parameter has a value outside its allowed range; the message names both."""


@dataclass(frozen=True)
class InferenceConfig:
    robot_id: str = "robot_1"
    model_path: str = ""
    mode: str = "edge"
    device: str = "auto"
    torch_threads: int = 0
    warmup_runs: int = 3
    control_rate: float = 10.0
    max_image_age: float = 0.3
    inference_timeout: float = 0.08
    chunk_refresh: int = 7
    prefetch_lead: float = 0.03
    temporal_ensembling: bool = False
    ensembling_decay: float = 0.1
    image_transport: str = "raw"
    max_task_length: int = 256
    language_cache_size: int = 128
    lidar_sectors: int = 16
    lidar_max_range: float = 10.0
    stats_window: float = 5.0
    stats_rate: float = 1.0
    frame_id: str = "base_link"


def step_wait_s(cfg: InferenceConfig) -> float:
    """The longest a control step may block on the model: inference_timeout, capped at 0.8 of a period."""
    return min(cfg.inference_timeout, 0.8 / cfg.control_rate)


def prefetch_lead_s(cfg: InferenceConfig) -> float:
    """How long before the next step the next chunk's frame is taken: prefetch_lead, capped at half a period."""
    return min(cfg.prefetch_lead, 0.5 / cfg.control_rate)


def _check(ok: bool, name: str, allowed: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"parameter ~{name}={value!r} is invalid: allowed {allowed}")


def _finite_pos(x: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def build_config(params: dict) -> InferenceConfig:
    """Builds the config from a name → value mapping (the node's ~ params); raises ConfigError."""
    known = {f.name for f in fields(InferenceConfig)}
    values = {k: v for k, v in params.items() if k in known}
    for name in ("control_rate", "max_image_age", "inference_timeout", "prefetch_lead", "ensembling_decay",
                 "lidar_max_range", "stats_window", "stats_rate"):
        if isinstance(values.get(name), int) and not isinstance(values.get(name), bool):
            values[name] = float(values[name])
    cfg = InferenceConfig(**values)
    _check(isinstance(cfg.robot_id, str) and bool(cfg.robot_id), "robot_id", "a non-empty string", cfg.robot_id)
    _check(isinstance(cfg.model_path, str) and bool(cfg.model_path), "model_path", "a policy file path",
           cfg.model_path)
    _check(cfg.mode in MODES, "mode", " | ".join(MODES), cfg.mode)
    _check(cfg.device in DEVICES, "device", " | ".join(DEVICES), cfg.device)
    _check(_int(cfg.torch_threads) and 0 <= cfg.torch_threads <= 64, "torch_threads", "0 (auto) .. 64",
           cfg.torch_threads)
    _check(_int(cfg.warmup_runs) and 0 <= cfg.warmup_runs <= 100, "warmup_runs", "0 .. 100", cfg.warmup_runs)
    _check(_finite_pos(cfg.control_rate) and cfg.control_rate <= 100, "control_rate", "(0, 100] Hz",
           cfg.control_rate)
    _check(_finite_pos(cfg.max_image_age) and cfg.max_image_age <= 10, "max_image_age", "(0, 10] s",
           cfg.max_image_age)
    _check(_finite_pos(cfg.inference_timeout) and cfg.inference_timeout <= 1.0, "inference_timeout", "(0, 1] s",
           cfg.inference_timeout)
    _check(_int(cfg.chunk_refresh) and 0 <= cfg.chunk_refresh <= 100, "chunk_refresh", "0 .. 100 steps",
           cfg.chunk_refresh)
    _check(isinstance(cfg.prefetch_lead, float) and math.isfinite(cfg.prefetch_lead) and 0 <= cfg.prefetch_lead <= 1,
           "prefetch_lead", "0 .. 1 s", cfg.prefetch_lead)
    _check(isinstance(cfg.temporal_ensembling, bool), "temporal_ensembling", "true | false",
           cfg.temporal_ensembling)
    _check(isinstance(cfg.ensembling_decay, float) and math.isfinite(cfg.ensembling_decay)
           and 0 <= cfg.ensembling_decay <= 10, "ensembling_decay", "0 .. 10", cfg.ensembling_decay)
    _check(cfg.image_transport in IMAGE_TRANSPORTS, "image_transport", " | ".join(IMAGE_TRANSPORTS),
           cfg.image_transport)
    _check(_int(cfg.max_task_length) and 1 <= cfg.max_task_length <= 4096, "max_task_length", "1 .. 4096 bytes",
           cfg.max_task_length)
    _check(_int(cfg.language_cache_size) and 1 <= cfg.language_cache_size <= 10000, "language_cache_size",
           "1 .. 10000", cfg.language_cache_size)
    _check(_int(cfg.lidar_sectors) and 1 <= cfg.lidar_sectors <= 360, "lidar_sectors", "1 .. 360",
           cfg.lidar_sectors)
    _check(_finite_pos(cfg.lidar_max_range), "lidar_max_range", "> 0 m", cfg.lidar_max_range)
    _check(_finite_pos(cfg.stats_window) and cfg.stats_window <= 600, "stats_window", "(0, 600] s",
           cfg.stats_window)
    _check(_finite_pos(cfg.stats_rate) and cfg.stats_rate <= 50, "stats_rate", "(0, 50] Hz", cfg.stats_rate)
    _check(isinstance(cfg.frame_id, str), "frame_id", "a string", cfg.frame_id)
    return cfg
