#!/usr/bin/env python3
"""OTA: time and peak memory to download, verify and apply a release, at two package sizes.

For each size (default 10 and 100 MB of incompressible policy weights) a signed package is built,
served by the real update server (`update_server`, a process of its own, on loopback), and a fresh
process (one per size, so its peak RSS is its own) runs the updater's steps on a robot directory
holding 1.0.0: download (streamed to staging), verify (size, sha256, ed25519 over the prehash), unpack
(each file hashed against the manifest) and switch. Peak memory flat in the package size is the aim.

    python bench/bench_ota.py [--sizes-mb 10 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from vla_fleet import release
from vla_fleet.ota.download import ServerClient
from vla_fleet.ota.signing import keygen, load_verify_key
from vla_fleet.ota.updater import Updater
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.waiting import wait_until


def source(directory: Path, version: str, size_mb: float) -> Path:
    (directory / "model").mkdir(parents=True)
    with open(directory / "model" / "policy.pt", "wb") as f:
        left = int(size_mb * (1 << 20))
        while left > 0:  # written in chunks: the bench's own memory stays out of the child's
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            left -= len(block)
    (directory / "model" / "policy.json").write_text(json.dumps({"version": version}))
    return directory


def child(root: Path, public_key: Path, url: str) -> None:
    """One update's steps, timed; prints one JSON line with the phases and this process's peak RSS."""
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    updater = Updater(root, load_verify_key(public_key), clock=time.time, report=lambda *a: None)
    client = ServerClient(url, timeout_s=120.0)
    offer = client.latest(updater.current_version(), "bench")
    t0 = time.perf_counter()
    part = updater.staging / f"{offer.version}.tar.gz.part"
    client.download(offer, part, updater.max_package_bytes)
    t1 = time.perf_counter()
    updater.verify(part, offer)
    t2 = time.perf_counter()
    package = updater.staging / f"{offer.version}.tar.gz"
    os.replace(part, package)
    pending = updater.install(package, offer.version)
    t3 = time.perf_counter()
    updater.confirm(pending)
    print(json.dumps({"download_s": t1 - t0, "verify_s": t2 - t1, "apply_s": t3 - t2,
                      "baseline_mb": baseline_mb,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "current": updater.current_version()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[10.0, 100.0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.child[2])
        return
    work = Path(tempfile.mkdtemp(prefix="bench_ota_"))
    private, public = keygen(work / "keys")
    rows = []
    for size in args.sizes_mb:
        server_root, robot = work / f"server-{size:g}", work / f"robot-{size:g}"
        server_root.mkdir()
        base = work / f"base-{size:g}.tar.gz"
        release.build("1.0.0", source(work / f"src-1-{size:g}", "1.0.0", 0.001), private, base)
        Updater(robot, load_verify_key(public), clock=time.time, report=lambda *a: None).install_file(base)
        t = time.perf_counter()
        package = server_root / "vla-2.0.0.tar.gz"
        release.build("2.0.0", source(work / f"src-2-{size:g}", "2.0.0", size), private, package)
        build_s = time.perf_counter() - t
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with ProcessGroup([sys.executable, "-m", "vla_fleet.ota.server", "--root", str(server_root), "--host",
                           "127.0.0.1", "--port", str(port)], work / f"server-{size:g}.log"):
            def up(url=url) -> bool:
                try:
                    urllib.request.urlopen(url + "/api/fleet", timeout=5).close()
                    return True
                except OSError:
                    return False
            wait_until(up, 60.0, "the update server")
            out = subprocess.run([sys.executable, __file__, "--child", str(robot), str(public), url],
                                 capture_output=True, text=True, check=True, timeout=1800)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["current"] == "2.0.0"
        rows.append((size, package.stat().st_size / (1 << 20), build_s, result))
    print(f"{'release MB':>10} {'package MB':>10} {'build s':>8} {'download s':>10} {'verify s':>9} "
          f"{'apply s':>8} {'RSS after imports MB':>20} {'peak RSS MB':>11}")
    for size, package_mb, build_s, r in rows:
        print(f"{size:>10g} {package_mb:>10.1f} {build_s:>8.2f} {r['download_s']:>10.2f} {r['verify_s']:>9.2f} "
              f"{r['apply_s']:>8.2f} {r['baseline_mb']:>20.1f} {r['peak_mb']:>11.1f}")


if __name__ == "__main__":
    main()
