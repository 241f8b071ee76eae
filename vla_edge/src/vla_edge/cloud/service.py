"""The service behind both transports: a served policy, its batcher, auth and metrics. Framework-free;
`app` turns HTTP and WebSocket traffic into calls of `infer`."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable

import psutil
import torch

from vla_edge.cloud.auth import TokenAuth, load_token
from vla_edge.cloud.batching import AdaptiveCap, DeadlineExceededError, DynamicBatcher, OverloadedError
from vla_edge.cloud.codec import ProtocolError
from vla_edge.cloud.config import CloudServerConfig
from vla_edge.cloud.metrics import ServiceMetrics
from vla_edge.cloud.protocol import Observation, RequestError
from vla_edge.cloud.runtime import ServedPolicy
from vla_edge.policy import configure_threads

LOG = logging.getLogger(__name__)
# a batch that was started is given this long beyond the deadline to finish before its waiter gives up
FORWARD_GRACE_S = 30.0


def memory_probe(device: torch.device, limit_mb: float = 0.0) -> Callable[[], float]:
    """Memory in use over the budget: CUDA memory on a GPU, this process's RSS on a CPU (over
    `limit_mb`, or the machine's memory when 0)."""
    if device.type == "cuda":
        def cuda_fraction() -> float:
            free, total = torch.cuda.mem_get_info(device)
            return 1.0 - free / total
        return cuda_fraction
    process = psutil.Process(os.getpid())
    budget = limit_mb * 1e6 if limit_mb > 0 else psutil.virtual_memory().total
    return lambda: process.memory_info().rss / budget


class CloudService:
    def __init__(self, served: ServedPolicy, config: CloudServerConfig, auth: TokenAuth | None = None,
                 memory_fraction: Callable[[], float] | None = None):
        self.served = served
        self.config = config
        self.auth = auth or TokenAuth()
        self.metadata = served.metadata()
        self.started = time.time()
        self.worker = f"{socket.gethostname()}:{os.getpid()}"  # which process answered (a Ray replica)
        probe = memory_fraction or memory_probe(getattr(served.policy, "device", torch.device("cpu")),
                                                config.memory_limit_mb)
        self.cap = AdaptiveCap(config.max_batch_size, probe, high=config.cap_high, low=config.cap_low)
        self.metrics = ServiceMetrics(self._live)
        self.batcher = DynamicBatcher(served.run_batch, config.max_batch_size, config.max_wait_ms / 1000.0,
                                      config.queue_limit, cap=self.cap, on_batch=self.metrics.on_batch)

    @classmethod
    def from_config(cls, config: CloudServerConfig) -> CloudService:
        """Loads the policy and the token as the config says (PolicyLoadError, TokenError)."""
        configure_threads(config.torch_threads)
        served = ServedPolicy.load(config.model, config.device, config.warmup_runs)
        token = load_token(config.token_file) if config.token_file else None
        return cls(served, config, TokenAuth(token))

    def _live(self) -> dict:
        return {"queue_depth": self.batcher.depth, "batch_cap": self.batcher.current_cap,
                "memory_fraction": self.cap.last_fraction, "cap_changes": self.cap.changes,
                "inline": self.batcher.stats.inline,
                "model_name": self.metadata["model_name"], "model_version": self.metadata["model_version"]}

    def health(self) -> dict:
        return {"status": "ok", "model_name": self.metadata["model_name"],
                "model_version": self.metadata["model_version"], "batch_cap": self.batcher.current_cap,
                "queue_depth": self.batcher.depth, "worker": self.worker,
                "uptime_s": round(time.time() - self.started, 1)}

    async def infer(self, obs: Observation, inline: bool = True) -> dict:
        """One request through the batcher: a lone client's run at once on this event loop when `inline`,
        others batched by its worker. Raises RequestError, OverloadedError, DeadlineExceededError, or the
        policy's error for this sample."""
        self.served.check(obs)
        deadline_s = min(self.config.deadline_ms, obs.deadline_ms or math.inf) / 1000.0
        return await self.batcher.infer_async(obs, deadline_s, FORWARD_GRACE_S, inline)

    def count(self, transport: str, outcome: str, seconds: float | None = None) -> None:
        self.metrics.requests.labels(transport, outcome).inc()
        if seconds is not None:
            self.metrics.request_seconds.labels(transport).observe(seconds)

    def close(self) -> None:
        self.batcher.close()


def outcome_of(exc: BaseException) -> tuple[str, int]:
    """The metrics outcome and HTTP status of a failed request."""
    if isinstance(exc, RequestError):
        return "bad_request", exc.status
    if isinstance(exc, ProtocolError):
        return "bad_request", 400
    if isinstance(exc, OverloadedError):
        return "overloaded", 503
    if isinstance(exc, DeadlineExceededError):
        return "deadline", 504
    return "error", 500
