"""The inference node's typed configuration: one dataclass on vla_monitoring's config idiom.

Each field is a `~` parameter with its default and allowed range; `build_config(InferenceConfig,
params)` checks them all and raises vla_monitoring's ConfigError naming the parameter.
config/inference.yaml mirrors this dataclass field by field.
"""

from __future__ import annotations

from dataclasses import dataclass

from vla_monitoring.config import ConfigError, param
from vla_msgs.states import InferenceMode

MODES: tuple[str, ...] = tuple(m.value for m in InferenceMode)
IMAGE_TRANSPORTS = ("raw", "compressed")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class InferenceConfig:
    robot_id: str = param("robot_1", nonempty=True, help="id of this robot: diagnostics hardware_id, log entries")
    model_path: str = param("", nonempty=True, help="policy file; its sidecar is the same path with .json")
    mode: str = param("edge", choices=MODES, help="where the policy runs")
    device: str = param("auto", choices=DEVICES, help="torch device; auto = CUDA when present")
    torch_threads: int = param(0, lo=0, hi=64, help="torch intra-op threads; 0 = auto")
    warmup_runs: int = param(3, lo=0, hi=100, help="forward passes before the node reports ready")
    control_rate: float = param(10.0, lo=0.1, hi=100.0, help="control steps per second [Hz]")
    max_image_age: float = param(0.3, lo=0.01, hi=10.0, help="newest image older than this is never acted on [s]")
    allow_unstamped_images: bool = param(False, help="act on images without a header stamp, aged from arrival")
    inference_timeout: float = param(0.08, lo=0.001, hi=1.0, help="longest a step waits for the model [s]")
    chunk_refresh: int = param(7, lo=0, hi=100, help="ask for the next chunk with this many steps left")
    prefetch_lead: float = param(0.03, lo=0.0, hi=1.0, help="next chunk's frame taken this long before its step [s]")
    temporal_ensembling: bool = param(False, help="average overlapping chunks (ACT)")
    ensembling_decay: float = param(0.1, lo=0.0, hi=10.0, help="ensembling weight exp(-decay * i)")
    image_transport: str = param("raw", choices=IMAGE_TRANSPORTS, help="raw or compressed camera topic")
    language_cache_size: int = param(128, lo=1, hi=10000, help="instruction embeddings kept in the LRU cache")
    lidar_max_range: float = param(10.0, lo=0.1, hi=1000.0, help="range the lidar features saturate at [m]")
    stats_window: float = param(5.0, lo=0.1, hi=600.0, help="window of the rolling statistics [s]")
    stats_rate: float = param(1.0, lo=0.01, hi=50.0, help="rate of stats, vla_performance and diagnostics [Hz]")
    frame_id: str = param("base_link", help="frame_id of vla/action headers")

    def check(self) -> None:
        """Relations between fields that a per-field range cannot say."""
        if self.stats_window < 1.0 / self.stats_rate:
            raise ConfigError(f"~stats_window must be at least one stats period (1/~stats_rate = "
                              f"{1.0 / self.stats_rate:g} s), got {self.stats_window:g}")

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate

    @property
    def step_wait_s(self) -> float:
        """The longest a control step may block on the model: inference_timeout, capped at 0.8 of a period
        so that a step never runs into the next one."""
        return min(self.inference_timeout, 0.8 * self.period_s)

    @property
    def prefetch_lead_s(self) -> float:
        """How long before the next step the next chunk's frame is taken: prefetch_lead, capped at half a period."""
        return min(self.prefetch_lead, 0.5 * self.period_s)
