#!/usr/bin/env python3
"""Reference policy forward time on this CPU (TorchScript, batch 1 and 8), median and p95 over many calls.

Usage: python bench/bench_policy.py [--model PT] [--calls N]   (results go to docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from vla_sim.policy import IMAGE_SHAPE, LANGUAGE_DIM, MODEL_PATH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    module = torch.jit.load(str(args.model), map_location="cpu").eval()
    size_mb = args.model.stat().st_size / 1e6
    print(f"# {args.model.name} ({size_mb:.1f} MB), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'batch':>5} | {'median ms':>9} | {'p95 ms':>7} | {'ms per sample':>13} | output shape")
    print("-" * 60)
    for batch in (1, 8):
        image = torch.rand(batch, *IMAGE_SHAPE)
        lang = torch.nn.functional.normalize(torch.randn(batch, LANGUAGE_DIM), dim=-1)
        times = []
        with torch.no_grad():
            for _ in range(10):
                out = module(image, lang)
            for _ in range(args.calls):
                t0 = time.perf_counter()
                out = module(image, lang)
                times.append((time.perf_counter() - t0) * 1e3)
        med, p95 = float(np.median(times)), float(np.percentile(times, 95))
        print(f"{batch:>5} | {med:>9.2f} | {p95:>7.2f} | {med / batch:>13.2f} | {list(out.shape)}")


if __name__ == "__main__":
    main()
