#!/usr/bin/env python3
"""Simulator throughput: physics steps/s and camera, lidar and point-cloud renders/s for 1, 3 and 10 robots.

Usage: python bench/bench_sim.py [--seconds S]   (results go to docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

from vla_sim.world import World

PHYSICS_DT_S = 0.01  # sim_node's default 100 Hz physics


def rate(fn: Callable[[], None], seconds: float) -> float:
    """Calls per second of `fn`, measured for about `seconds` after one warm-up call."""
    fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="measuring time per cell")
    args = parser.parse_args()
    print(f"# vla_sim world, {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"{'robots':>6} | {'steps/s':>9} | {'camera renders/s':>16} | {'scans/s':>8} | {'clouds/s':>8}")
    print("-" * 60)
    for n in (1, 3, 10):
        ids = [f"robot_{i + 1}" for i in range(n)]
        world = World(ids, seed=0)
        rng = np.random.default_rng(0)
        for rid in ids:
            world.set_twist(rid, *rng.uniform([-0.8, -0.4, -1.0], [0.8, 0.4, 1.0]))
        cycle = iter(np.tile(ids, 10**7))
        steps = rate(lambda world=world: world.step(PHYSICS_DT_S), args.seconds)
        cams = rate(lambda world=world, cycle=cycle: world.camera(next(cycle)), args.seconds)
        scans = rate(lambda world=world, cycle=cycle: world.lidar(next(cycle)), args.seconds)
        clouds = rate(lambda world=world, cycle=cycle: world.point_cloud(next(cycle)), args.seconds)
        print(f"{n:>6} | {steps:>9.0f} | {cams:>16.0f} | {scans:>8.0f} | {clouds:>8.0f}")


if __name__ == "__main__":
    main()
