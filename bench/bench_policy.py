#!/usr/bin/env python3
"""Reference policy forward time on this CPU, median and p95 over many calls: batch 1 through vla_edge's
runtime (what the robot and the evaluation run), batch 8 on the TorchScript module (what a batching
cloud server runs).

Usage: python bench/bench_policy.py [--model PT] [--calls N]   (results go to docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vla_edge.policy import example_obs, load_policy
from vla_sim import resources


def timings_ms(fn: Callable[[], object], calls: int) -> list[float]:
    for _ in range(10):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped reference policy")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    model = args.model or resources.model_path()
    policy = load_policy(model, "cpu")  # sidecar, sha256 and signature checked, warmed up
    spec = policy.spec
    size_mb = model.stat().st_size / 1e6
    print(f"# {model.name} ({spec.name} {spec.version}, {size_mb:.1f} MB), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'batch':>5} | {'median ms':>9} | {'p95 ms':>7} | {'ms per sample':>13} | path")
    print("-" * 72)
    obs = example_obs(spec)
    rows = [(1, timings_ms(lambda: policy.infer(obs), args.calls), "vla_edge TorchScriptPolicy.infer")]
    image = torch.rand(8, 3, *spec.image_size)
    lang = torch.nn.functional.normalize(torch.randn(8, spec.language_dim), dim=-1)
    with torch.inference_mode():
        rows.append((8, timings_ms(lambda: policy.module(image, lang), args.calls), "TorchScript module"))
    for batch, times, path in rows:
        med, p95 = float(np.median(times)), float(np.percentile(times, 95))
        print(f"{batch:>5} | {med:>9.2f} | {p95:>7.2f} | {med / batch:>13.2f} | {path}")


if __name__ == "__main__":
    main()
