#!/usr/bin/env python3
"""Prepares the OTA rostest: `ota_setup.py DIR` writes a signing key pair, three releases of a small
TorchScript policy (1.0.0, 1.1.0, 1.2.0; each sidecar's version is the release's) built and signed with
`vla_fleet.release`, installs 1.0.0 under DIR/robot as at the factory, puts 1.1.0 on the server (DIR/server)
and keeps 1.2.0 aside (DIR/later). Prints the model path under DIR/robot/current/ without a newline, for a
launch file's `<param command=...>`; a second run on the same DIR only prints it."""

import shutil
import sys
import tempfile
import time
from pathlib import Path

from vla_edge.testing import write_policy
from vla_fleet import release
from vla_fleet.ota.signing import keygen, load_verify_key
from vla_fleet.ota.updater import Updater

VERSIONS = ("1.0.0", "1.1.0", "1.2.0")


def source(work: Path, version: str) -> Path:
    src = work / f"src-{version}"
    model = write_policy("image", src / "scratch", version=version)
    (src / "model").mkdir()
    model.rename(src / "model" / "policy.pt")
    model.with_suffix(".json").rename(src / "model" / "policy.json")
    shutil.rmtree(src / "scratch")
    (src / "config").mkdir()
    (src / "config" / "inference.yaml").write_text(f"# overlay of release {version}\n")
    return src


def main() -> None:
    root = Path(sys.argv[1])
    model_path = root / "robot" / "current" / "model" / "policy.pt"
    if not (root / "ready").exists():
        root.mkdir(parents=True, exist_ok=True)
        private, public = keygen(root / "keys")
        work = Path(tempfile.mkdtemp(prefix="src", dir=root))
        packages = {}
        for version in VERSIONS:
            packages[version] = root / ("server" if version == "1.1.0" else "later") / f"vla-{version}.tar.gz"
            release.build(version, source(work, version), private, packages[version],
                          checks=({"kind": "health_overall"}, {"kind": "file", "path": "model/policy.json"}))
        updater = Updater(root / "robot", load_verify_key(public), clock=time.time, report=lambda *a: None)
        updater.install_file(packages["1.0.0"])
        shutil.rmtree(work)
        (root / "ready").touch()
    sys.stdout.write(str(model_path))


if __name__ == "__main__":
    main()
