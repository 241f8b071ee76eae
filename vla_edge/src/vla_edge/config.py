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
    cloud_url: str = param("", help="cloud policy server (http:// or https://); empty: cloud and hybrid refused")
    cloud_token_file: str = param("", help="file holding the server's bearer token; empty: no token")
    cloud_ca_file: str = param("", help="CA bundle for an https server with a private CA; empty: system CAs")
    cloud_timeout: float = param(0.04, lo=0.001, hi=1.0, help="deadline of one cloud request [s], capped per mode")
    cloud_connect_timeout: float = param(0.2, lo=0.001, hi=10.0, help="TCP/TLS connect timeout [s]")
    cloud_read_timeout: float = param(1.0, lo=0.001, hi=30.0, help="longest a request thread waits for bytes [s]")
    cloud_failure_threshold: int = param(3, lo=1, hi=100, help="failures in a row that open the breaker")
    cloud_retry_interval: float = param(0.5, lo=0.01, hi=60.0, help="first /health probe after the breaker opens [s]")
    cloud_retry_max: float = param(5.0, lo=0.01, hi=600.0, help="probe interval doubles up to this [s]")
    cloud_retry_after_default: float = param(1.0, lo=0.0, hi=600.0, help="hold-off after an overload answer "
                                             "(429, 503, 504) without a usable Retry-After [s]")
    cloud_retry_after_max: float = param(30.0, lo=0.0, hi=600.0, help="longest hold-off a Retry-After can ask [s]")
    jpeg_quality: int = param(90, lo=1, hi=100, help="JPEG quality of frames sent to the cloud")

    def check(self) -> None:
        """Relations between fields that a per-field range cannot say."""
        if self.stats_window < 1.0 / self.stats_rate:
            raise ConfigError(f"~stats_window must be at least one stats period (1/~stats_rate = "
                              f"{1.0 / self.stats_rate:g} s), got {self.stats_window:g}")
        if self.cloud_retry_max < self.cloud_retry_interval:
            raise ConfigError(f"~cloud_retry_max must be at least ~cloud_retry_interval "
                              f"({self.cloud_retry_interval:g} s), got {self.cloud_retry_max:g}")
        if self.cloud_retry_after_default > self.cloud_retry_after_max:
            raise ConfigError(f"~cloud_retry_after_default must be at most ~cloud_retry_after_max "
                              f"({self.cloud_retry_after_max:g} s), got {self.cloud_retry_after_default:g}")
        if self.cloud_url and not self.cloud_url.startswith(("http://", "https://")):
            raise ConfigError(f"~cloud_url must start with http:// or https://, got {self.cloud_url!r}")

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate

    @property
    def step_wait_s(self) -> float:
        """The longest a control step may block on the model: inference_timeout, capped at 0.8 of a period
        so that a step never runs into the next one."""
        return min(self.inference_timeout, 0.8 * self.period_s)

    def cloud_deadline_s(self, hybrid: bool) -> float:
        """How long a chunk request waits for the cloud: cloud_timeout, capped at the step's wait; in hybrid
        mode at half of it, so that the edge model still answers within the same control period."""
        return min(self.cloud_timeout, (0.5 if hybrid else 1.0) * self.step_wait_s)

    @property
    def prefetch_lead_s(self) -> float:
        """How long before the next step the next chunk's frame is taken: prefetch_lead, capped at half a period."""
        return min(self.prefetch_lead, 0.5 * self.period_s)
