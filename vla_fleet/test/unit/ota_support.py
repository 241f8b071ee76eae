"""Helpers of the OTA tests: signed packages (good and crafted bad ones), a real update server on loopback
in a thread, and an Updater that records what it reported."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path

import uvicorn

from vla_fleet import release
from vla_fleet.ota.auth import RobotTokens
from vla_fleet.ota.download import ServerClient
from vla_fleet.ota.package import FileEntry, Manifest
from vla_fleet.ota.server import create_app
from vla_fleet.ota.signing import keygen, load_signing_key, load_verify_key, sign_file
from vla_fleet.ota.updater import Updater
from vla_msgs.launching import free_port
from vla_msgs.waiting import wait_until


def policy_tree(directory: Path, version: str, extra_bytes: int = 0) -> Path:
    """extra_bytes of random (incompressible) weight make a package of about that size."""
    (directory / "model").mkdir(parents=True)
    (directory / "config").mkdir()
    (directory / "model" / "policy.pt").write_bytes(f"policy {version}\n".encode() + os.urandom(extra_bytes))
    (directory / "model" / "policy.json").write_text(json.dumps({"version": version}))
    (directory / "config" / "inference.yaml").write_text(f"# overlay of {version}\n")
    return directory


class Keys:
    def __init__(self, directory: Path):
        self.private, self.public = keygen(directory)
        self.verify = load_verify_key(self.public)


def build(tmp: Path, keys: Keys, version: str, out_dir: Path, extra_bytes: int = 0, **kw) -> Path:
    out = out_dir / f"vla-{version}.tar.gz"
    release.build(version, policy_tree(tmp / f"src-{version}", version, extra_bytes), keys.private, out, **kw)
    return out


def crafted(out: Path, keys: Keys, version: str, members: list[tarfile.TarInfo], data: dict[str, bytes],
            manifest_files: list[FileEntry]) -> Path:
    """A package with arbitrary members, correctly signed: what an attacker holding the key (or a bug in the
    build) could produce; the unpacker must refuse it on its own."""
    manifest = Manifest(version, "0", tuple(manifest_files), ({"kind": "health_overall"},), time.time())
    with tarfile.open(out, "w:gz") as tar:
        text = manifest.to_json().encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
        for member in members:
            tar.addfile(member, io.BytesIO(data[member.name]) if member.isfile() else None)
    Path(str(out) + ".sig").write_text(sign_file(load_signing_key(keys.private), out))
    return out


class Server:
    """The real update server app under uvicorn on a loopback port, in a thread."""

    def __init__(self, root: Path, certfile: Path | None = None, keyfile: Path | None = None,
                 tokens: RobotTokens | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"{'https' if certfile else 'http'}://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(root, tokens=tokens), host="127.0.0.1", port=self.port,
                                                    log_level="warning", ssl_certfile=certfile, ssl_keyfile=keyfile))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 30.0, "the update server to listen")

    def client(self, ca_file: str = "", token: str = "") -> ServerClient:
        return ServerClient(self.url, timeout_s=30.0, ca_file=ca_file, token=token)

    def fleet(self, token: str = "") -> dict:
        import urllib.request
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with urllib.request.urlopen(urllib.request.Request(self.url + "/api/fleet", headers=headers),
                                    timeout=30) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30.0)


def loaded():
    """The hot swap of an updater under test: the model loaded."""
    return True, "loaded"


def passes(_pending):
    """The health watch of an updater under test: healthy."""
    return True, "healthy"


def fails(_pending):
    """The health watch of an updater under test: unhealthy, so it rolls back."""
    return False, "vla_health unhealthy"


class Reports(list):
    def __call__(self, status, version, previous, progress, message):
        self.append((str(status), version, previous, progress, message))

    def statuses(self) -> list[str]:
        return [r[0] for r in self]


def updater(releases_dir: Path, keys: Keys, **kw) -> tuple[Updater, Reports]:
    reports = Reports()
    return Updater(releases_dir, keys.verify, clock=time.time, report=reports, **kw), reports


def snapshot(root: Path) -> dict:
    """What is on disk under a robot's releases_dir that matters: the link, the releases, their files."""
    releases = root / "releases"
    return {"current": (root / "current").readlink().as_posix() if (root / "current").is_symlink() else None,
            "files": sorted(p.relative_to(releases).as_posix() for p in releases.rglob("*")),
            "staging": sorted(p.name for p in (root / "staging").iterdir()),
            "journal": (root / "journal.json").exists()}
