"""What the toolkit measures in-process: forward-time percentiles and the agreement of two policies."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from vla_edge.optimize.inputs import Observations
from vla_edge.policy import OnnxPolicy, TorchScriptPolicy


def timings_ms(fn: Callable[[], object], calls: int, warmup: int = 10) -> np.ndarray:
    """Wall time of `calls` calls after `warmup` untimed ones, in milliseconds."""
    for _ in range(warmup):
        fn()
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        times[i] = (time.perf_counter() - t0) * 1e3
    return times


def percentiles(times_ms: np.ndarray) -> dict:
    return {"p50_ms": round(float(np.percentile(times_ms, 50)), 4),
            "p99_ms": round(float(np.percentile(times_ms, 99)), 4)}


def forward_p50_ms(policy: TorchScriptPolicy | OnnxPolicy, obs: Observations, calls: int = 50) -> float:
    """Median batch-1 forward time: a rough figure for the sidecar (the benchmark command is the real measure)."""
    vision, language = obs.vision[:1], obs.language[:1]
    return round(float(np.median(timings_ms(lambda: policy.forward_batch(vision, language), calls))), 4)


def agreement(reference: TorchScriptPolicy | OnnxPolicy, candidate: TorchScriptPolicy | OnnxPolicy,
              obs: Observations, batch: int = 8) -> dict:
    """Largest and mean absolute difference of the two policies' action chunks over `obs`, in action units."""
    diffs = []
    for vision, language in obs.batches(batch):
        diffs.append(np.abs(reference.forward_batch(vision, language) - candidate.forward_batch(vision, language)))
    every = np.concatenate([d.reshape(-1) for d in diffs])
    return {"max_abs_diff": float(every.max()), "p99_abs_diff": float(np.percentile(every, 99)),
            "mean_abs_diff": float(every.mean()), "observations": len(obs)}
