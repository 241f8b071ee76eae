#!/usr/bin/env python3
"""Builds the reference policy's optimised variants with vla_edge.optimize and prints the one side-by-side
table of `python -m vla_edge.optimize benchmark` (size, parameters, end-to-end latency at batch 1 and 8,
success on the held-out seeds with both phrasings). Long: ~50 episodes x 2 phrasings per model.

Usage: python bench/optimize_variants.py --dir DIR [--episodes 50] [--calls 1000] [--skip-distill]
       (results go to docs/benchmarks.md; DIR must not hold the variants yet)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from vla_sim import resources


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(list(args), check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--skip-distill", action="store_true")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    ref = str(resources.model_path())
    fast = str(resources.share_dir() / "models" / "reference_policy_fast.onnx")
    d = args.dir
    opt = [sys.executable, "-m", "vla_edge.optimize"]
    calib, demos = str(d / "calibration.npz"), str(d / "demonstrations.npz")
    run(sys.executable, "-m", "vla_sim.observations", "--out", calib, "--episodes", "20")
    run(sys.executable, "-m", "vla_sim.observations", "--out", demos, "--episodes", "60", "--every", "1",
        "--first-seed", "60000")
    variants = {
        "fp32.onnx": ["export", "onnx", ref],
        "int8_linear.pt": ["quantize", ref, "--method", "torch-dynamic"],
        "int8_conv.pt": ["quantize", ref, "--method", "torch-static", "--calibration", calib],
        "pruned_channels.pt": ["prune", ref, "--method", "channels", "--amount", "0.5", "--demonstrations", demos],
        "pruned_sparse.pt": ["prune", ref, "--method", "unstructured", "--amount", "0.5", "--demonstrations", demos],
    }
    if not args.skip_distill:
        variants["distilled.pt"] = ["distill", ref, "--rounds", "2", "--episodes", "25", "--epochs", "8"]
    for name, command in variants.items():
        run(*opt, *command, "--out", str(d / f"reference_policy_{name}"))
    models = [ref, fast] + [str(d / f"reference_policy_{name}") for name in variants]
    run(*opt, "benchmark", *models, "--episodes", str(args.episodes), "--calls", str(args.calls), "--json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
