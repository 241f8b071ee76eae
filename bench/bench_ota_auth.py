#!/usr/bin/env python3
"""OTA tokens: what checking a token costs the update server.

1. `RobotTokens.identify` alone (the header compared with every token in constant time) for fleets of
   3, 100, 1000 and 10000 robots, a wrong token (the worst case: every entry compared, as always).
2. `GET /api/updates/latest` round trips to the real server (`python -m vla_fleet.ota.server`, a process
   of its own on loopback, one package in --root) without --token-file and with 1000 robots' tokens,
   one client, sequential requests: median and p95 per request.

    python bench/bench_ota_auth.py [--requests 500]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from vla_fleet import release
from vla_fleet.ota.auth import RobotTokens
from vla_fleet.ota.signing import keygen
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.waiting import wait_until


def token_file(path: Path, robots: int) -> dict[str, str]:
    tokens = {f"robot_{i}": secrets.token_urlsafe(32) for i in range(robots)}
    path.write_text("".join(f"{rid} {tok}\n" for rid, tok in tokens.items()))
    return tokens


def identify_us(work: Path, robots: int, rounds: int = 2000) -> float:
    token_file(work / f"tokens-{robots}", robots)
    tokens = RobotTokens(work / f"tokens-{robots}")
    header = "Bearer " + secrets.token_urlsafe(32)
    t0 = time.perf_counter()
    for _ in range(rounds):
        tokens.identify(header)
    return (time.perf_counter() - t0) / rounds * 1e6


def round_trips(work: Path, root: Path, requests: int, tokens: dict[str, str] | None) -> tuple[float, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    extra = ["--token-file", str(work / "tokens-1000")] if tokens else []
    headers = {"Authorization": f"Bearer {tokens['robot_7']}"} if tokens else {}

    def get(path: str) -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=10) as resp:
                resp.read()
                return resp.status
        except OSError:
            return 0

    with ProcessGroup([sys.executable, "-m", "vla_fleet.ota.server", "--root", str(root), "--host", "127.0.0.1",
                       "--port", str(port), *extra], work / f"server-{port}.log"):
        wait_until(lambda: get("/api/fleet") == 200, 60.0, "the update server to answer")
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            assert get("/api/updates/latest?current_version=1.0.0&robot_id=robot_7") == 200
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_ota_auth") as tmp:
        work = Path(tmp)
        print("| robots in the token file | identify (wrong token) |\n|---|---|")
        for robots in (3, 100, 1000, 10000):
            print(f"| {robots} | {identify_us(work, robots):.1f} us |")
        private, _ = keygen(work / "keys")
        (work / "src" / "model").mkdir(parents=True)
        (work / "src" / "model" / "policy.pt").write_bytes(b"policy")
        root = work / "root"
        root.mkdir()
        release.build("1.1.0", work / "src", private, root / "vla-1.1.0.tar.gz")
        tokens = token_file(work / "tokens-1000", 1000)
        print(f"\n| server | latest p50 | latest p95 | ({args.requests} sequential requests) |\n|---|---|---|---|")
        for label, toks in (("no --token-file", None), ("--token-file, 1000 robots", tokens)):
            p50, p95 = round_trips(work, root, args.requests, toks)
            print(f"| {label} | {p50:.2f} ms | {p95:.2f} ms | |")


if __name__ == "__main__":
    main()
