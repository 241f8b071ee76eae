"""The cloud server's settings: one dataclass on the suite's config idiom; the command line's flags are
its fields (`--max-batch-size` for `max_batch_size`)."""

from __future__ import annotations

from dataclasses import dataclass

from vla_edge.cloud.protocol import DEFAULT_HTTP_PORT, DEFAULT_WS_PORT
from vla_monitoring.config import ConfigError, param


@dataclass
class CloudServerConfig:
    model: str = param("", help="policy file (its sidecar is the same path with .json)")
    host: str = param("0.0.0.0", nonempty=True, help="address both servers listen on")
    http_port: int = param(DEFAULT_HTTP_PORT, lo=0, hi=65535, help="HTTP port (/health, /infer, /batch_infer, "
                                                                   "/metrics); with Ray, the one entry point")
    ws_port: int = param(DEFAULT_WS_PORT, lo=0, hi=65535, help="openpi WebSocket port (and /healthz)")
    max_batch_size: int = param(16, lo=1, hi=1024, help="most requests in one forward pass")
    max_wait_ms: float = param(2.0, lo=0.0, hi=1000.0, help="longest the oldest request waits for a batch to fill")
    queue_limit: int = param(256, lo=1, hi=100000, help="requests waiting beyond this are refused (503)")
    deadline_ms: float = param(1000.0, lo=1.0, hi=600000.0, help="a request not started by then is not computed")
    token_file: str = param("", help="file holding the token clients must send (empty: no auth)")
    certfile: str = param("", help="TLS certificate (PEM); with keyfile, both servers speak TLS")
    keyfile: str = param("", help="TLS private key (PEM)")
    ray_replicas: int = param(0, lo=0, hi=1024, help="0: one process; N: a Ray Serve deployment of N replicas")
    ray_address: str = param("", help="Ray cluster address (empty: start a local Ray instance)")
    device: str = param("auto", choices=("auto", "cpu", "cuda"), help="torch device")
    torch_threads: int = param(0, lo=0, hi=64, help="intra-op threads; 0 = cores - 1, at most 4")
    warmup_runs: int = param(3, lo=1, hi=100, help="forward passes before ready")
    memory_limit_mb: float = param(0.0, lo=0.0, hi=1e7, help="CPU memory budget the batch cap follows "
                                                             "(0: the machine's memory)")
    cap_high: float = param(0.9, lo=0.01, hi=1.0, help="memory fraction above which the batch cap halves")
    cap_low: float = param(0.6, lo=0.0, hi=1.0, help="memory fraction below which the batch cap doubles")
    log_level: str = param("info", choices=("debug", "info", "warning", "error"), help="log level")

    def check(self) -> None:
        if not self.model:
            raise ConfigError("~model is required: the policy file to serve")
        if bool(self.certfile) != bool(self.keyfile):
            raise ConfigError("~certfile and ~keyfile go together")
        if self.cap_low >= self.cap_high:
            raise ConfigError(f"~cap_low ({self.cap_low}) must be below ~cap_high ({self.cap_high})")
        if self.ray_replicas == 0 and self.http_port and self.http_port == self.ws_port:
            raise ConfigError("~http_port and ~ws_port must differ")
