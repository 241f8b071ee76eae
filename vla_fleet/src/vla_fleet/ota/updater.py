"""One robot's updater: check, download, verify, unpack, switch, confirm or roll back, behind a journal.

Layout under releases_dir: `releases/<version>/` (one unpacked release each), `current` (a relative
symlink to the active one, switched by rename), `staging/` (downloads and unpacking), `journal.json`
(the operation under way and its phase) and `state.json` (versions activated in order, versions
rolled back). Every step writes the journal first, so `kill -9` anywhere leaves either the old or the
new release active, and `recover()` at the next start finishes or undoes the step:

  install  unpacking  -> undone (the half-unpacked copy removed, the old release stays active)
           unpacked   -> finished (the release re-checked against its manifest, then switched)
           switched   -> the new release is active but unconfirmed: reload and watch again
  rollback switching  -> finished (switched back, the failed release removed)

`crash_hook(point)` is called at each named point; only tests set it (to kill the process there).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vla_fleet.ota.download import DownloadError, Offer, ServerClient
from vla_fleet.ota.package import (
    NO_VERSION,
    Caps,
    Manifest,
    PackageError,
    newer,
    parse_version,
    read_manifest,
    unpack,
    verify_tree,
)
from vla_fleet.ota.signing import SignatureError, digest_file, verify_file
from vla_msgs.states import UpdateState

_log = logging.getLogger(__name__)
CRASH_POINTS = ("downloading", "verified", "unpacking", "unpacked", "switching", "switched", "health",
                "rolling_back")
# report(status, version, previous_version, progress 0..1, message)
Reporter = Callable[[str, str, str, float, str], None]


class UpdateError(RuntimeError):
    """An update refused or failed; the message is the reason reported on /vla_updates."""


@dataclass(frozen=True)
class Pending:
    """A release switched to but not yet confirmed healthy."""
    version: str
    previous: str


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, doc: dict) -> None:
    """Atomically: a reader (or a restart after kill -9) sees the old document or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Updater:
    def __init__(self, releases_dir: Path, verify_key, *, clock: Callable[[], float], report: Reporter,
                 max_package_bytes: int = 2 << 30, caps: Caps | None = None, keep_releases: int = 3,
                 crash_hook: Callable[[str], None] | None = None):
        self.root = Path(releases_dir).expanduser()
        self.releases = self.root / "releases"
        self.staging = self.root / "staging"
        self.current_link = self.root / "current"
        self.journal_path = self.root / "journal.json"
        self.state_path = self.root / "state.json"
        for d in (self.releases, self.staging):
            d.mkdir(parents=True, exist_ok=True)
        self.verify_key = verify_key
        self.clock = clock
        self._report = report
        self.max_package_bytes = max_package_bytes
        self.caps = caps or Caps()
        self.keep_releases = keep_releases
        self._crash = crash_hook or (lambda _point: None)

    # ------------------------------------------------------------------ state on disk
    def current_version(self) -> str:
        """The active release's version; NO_VERSION when none is installed."""
        try:
            return Path(os.readlink(self.current_link)).name
        except FileNotFoundError:
            return NO_VERSION

    def installed(self) -> list[str]:
        return sorted((p.name for p in self.releases.iterdir() if p.is_dir()), key=parse_version)

    def journal(self) -> dict | None:
        try:
            return json.loads(self.journal_path.read_text())
        except FileNotFoundError:
            return None

    def state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {"history": [], "rolled_back": []}

    def _journal(self, op: str, version: str, previous: str, phase: str) -> None:
        _write_json(self.journal_path, {"op": op, "version": version, "previous": previous, "phase": phase,
                                        "time": self.clock()})

    def _end_journal(self) -> None:
        self.journal_path.unlink(missing_ok=True)
        _fsync_dir(self.root)

    def _switch(self, version: str) -> None:
        """Points `current` at releases/<version> by renaming a new link over it (atomic)."""
        tmp = self.staging / "current.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(os.path.join("releases", version), tmp)
        self._crash("switching")
        os.replace(tmp, self.current_link)
        _fsync_dir(self.root)

    def _remove_release(self, version: str) -> None:
        if version and version != self.current_version():
            shutil.rmtree(self.releases / version, ignore_errors=True)

    def _clean_staging(self, keep: tuple[Path, ...] = ()) -> None:
        for p in self.staging.iterdir():
            if p in keep:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ recovery
    def recover(self) -> Pending | None:
        """Finishes or undoes what a killed process left; returns the release still to be confirmed, if any."""
        j = self.journal()
        if j is None:
            self._clean_staging(keep=tuple(self.staging.glob("*.part")))
            return None
        op, version, previous, phase = j["op"], j["version"], j["previous"], j["phase"]
        _log.warning("recovering an interrupted %s of %s (phase %s)", op, version, phase)
        if op == "install" and phase == "unpacking":
            self._remove_release(version)
            self._clean_staging()
            self._end_journal()
            self._report(UpdateState.FAILED, version, previous, 0.0,
                         f"interrupted while unpacking {version}; undone, {self.current_version()} stays active")
            return None
        if op == "install" and phase == "unpacked":
            try:
                verify_tree(self.releases / version)
            except (PackageError, OSError) as exc:
                self._remove_release(version)
                self._clean_staging()
                self._end_journal()
                self._report(UpdateState.FAILED, version, previous, 0.0, f"interrupted; unpacked copy bad: {exc}")
                return None
            self._switch(version)
            self._journal("install", version, previous, "switched")
            phase = "switched"
        if op == "install" and phase == "switched":
            if self.current_version() != version:  # cannot happen: the journal says switched after the rename
                self._switch(version)
            self._clean_staging()
            return Pending(version, previous)
        if op == "rollback":
            self._finish_rollback(version, previous, j.get("reason", "interrupted rollback finished"))
            return None
        raise UpdateError(f"journal {self.journal_path} holds an unknown step {op}/{phase}: fix it by hand")

    # ------------------------------------------------------------------ the update
    def check_offer(self, offer: Offer) -> None:
        """Refuses an offer before downloading it: not newer, rolled back here before, or too large."""
        current = self.current_version()
        parse_version(offer.version)
        if not newer(offer.version, current):
            raise UpdateError(f"refused {offer.version}: not newer than the running {current}")
        if offer.version in self.state()["rolled_back"]:
            raise UpdateError(f"refused {offer.version}: it was rolled back on this robot")
        if offer.size > self.max_package_bytes:
            raise UpdateError(f"refused {offer.version}: {offer.size} bytes is over the cap of "
                              f"{self.max_package_bytes}")

    def fetch(self, client: ServerClient, offer: Offer) -> Path:
        """Downloads (resuming a partial download) and verifies the package; returns its staging path.

        A package that fails verification is deleted; a broken-off download is kept for resuming."""
        current = self.current_version()
        part = self.staging / f"{offer.version}.tar.gz.part"
        for stale in self.staging.glob("*.part"):
            if stale != part:
                stale.unlink()

        def on_chunk(done: int, total: int) -> None:
            self._report(UpdateState.DOWNLOADING, offer.version, current, done / total, "")
            self._crash("downloading")

        self._report(UpdateState.DOWNLOADING, offer.version, current, 0.0, f"{offer.size} bytes")
        fetched = client.download(offer, part, self.max_package_bytes, on_chunk)
        self._report(UpdateState.VERIFYING, offer.version, current, 0.0,
                     f"resumed at byte {fetched.resumed_from}" if fetched.resumed_from else "")
        try:
            self.verify(part, offer)
        except (UpdateError, SignatureError, PackageError):
            part.unlink(missing_ok=True)
            raise
        package = self.staging / f"{offer.version}.tar.gz"
        os.replace(part, package)
        self._crash("verified")
        return package

    def verify(self, package: Path, offer: Offer) -> Manifest:
        """Size, sha256 and signature over the bytes on disk, then the signed manifest's versions."""
        digests = digest_file(package)
        if digests.size != offer.size:
            raise UpdateError(f"refused {offer.version}: {digests.size} bytes, the server declared {offer.size}")
        if digests.sha256 != offer.checksum.lower():
            raise UpdateError(f"refused {offer.version}: sha256 {digests.sha256} differs from the declared "
                              f"{offer.checksum}")
        try:
            verify_file(self.verify_key, package, offer.signature)
        except SignatureError as exc:
            raise UpdateError(f"refused {offer.version}: {exc}") from exc
        manifest = read_manifest(package)
        current = self.current_version()
        if manifest.version != offer.version:
            raise UpdateError(f"refused: the signed manifest says version {manifest.version}, "
                              f"the server offered {offer.version}")
        if not newer(manifest.version, current):
            raise UpdateError(f"refused {manifest.version}: not newer than the running {current}")
        if newer(manifest.min_version, current):
            raise UpdateError(f"refused {manifest.version}: needs at least {manifest.min_version}, "
                              f"this robot runs {current}")
        return manifest

    def install(self, package: Path, version: str) -> Pending:
        """Unpacks the verified package into releases/<version> and switches `current` to it."""
        previous = self.current_version()
        work = self.staging / f"unpack-{version}"
        self._journal("install", version, previous, "unpacking")
        self._remove_release(version)  # a copy from an earlier failed attempt
        shutil.rmtree(work, ignore_errors=True)
        self._report(UpdateState.APPLYING, version, previous, 0.0, "unpacking")
        first = [True]

        def progress(done: int, total: int) -> None:
            self._report(UpdateState.APPLYING, version, previous, 0.8 * done / max(total, 1), "unpacking")
            if first[0]:
                first[0] = False
                self._crash("unpacking")

        try:
            unpack(package, work, self.caps, progress)
        except PackageError as exc:
            shutil.rmtree(work, ignore_errors=True)
            package.unlink(missing_ok=True)
            self._end_journal()
            raise UpdateError(f"refused {version}: {exc}") from exc
        _fsync_dir(work)
        os.replace(work, self.releases / version)
        _fsync_dir(self.releases)
        self._journal("install", version, previous, "unpacked")
        self._crash("unpacked")
        self._report(UpdateState.APPLYING, version, previous, 0.9, "switching")
        self._switch(version)
        self._journal("install", version, previous, "switched")
        self._crash("switched")
        package.unlink(missing_ok=True)
        return Pending(version, previous)

    def install_file(self, package: Path) -> str:
        """Installs a local package with its `.sig` beside it (a robot's first release, from the factory or
        a USB stick): verified like a download, activated and confirmed without a health window."""
        digests = digest_file(package)
        signature = Path(str(package) + ".sig").read_text()
        manifest = read_manifest(package)
        offer = Offer(True, manifest.version, package.name, digests.sha256, signature, digests.size)
        self.check_offer(offer)
        self.verify(package, offer)
        staged = self.staging / f"{offer.version}.tar.gz"
        shutil.copyfile(package, staged)
        pending = self.install(staged, offer.version)
        self.confirm(pending)
        self._report(UpdateState.COMPLETED, pending.version, pending.previous, 1.0, f"installed from {package}")
        return pending.version

    def confirm(self, pending: Pending) -> None:
        """The new release passed its checks: recorded in the history, old releases pruned."""
        state = self.state()
        state["history"] = [v for v in state["history"] if v != pending.version] + [pending.version]
        _write_json(self.state_path, state)
        self._end_journal()
        self.prune()

    def prune(self) -> list[str]:
        """Keeps the active release and the newest others up to keep_releases in all; returns those removed."""
        current = self.current_version()
        history = [v for v in self.state()["history"] if v != current and (self.releases / v).is_dir()]
        keep = {current, *history[-(self.keep_releases - 1):]} if self.keep_releases > 1 else {current}
        removed = [v for v in self.installed() if v not in keep]
        for v in removed:
            shutil.rmtree(self.releases / v, ignore_errors=True)
        return removed

    def rollback_target(self, failed: str) -> str:
        """The release to go back to from `failed`: the newest earlier one activated here that is still on disk."""
        for v in reversed(self.state()["history"]):
            if v != failed and (self.releases / v).is_dir() and not newer(v, failed):
                return v
        raise UpdateError(f"no earlier release on disk to roll back to from {failed}")

    def rollback(self, failed: str, reason: str) -> str:
        """Switches back from `failed` to the release before it and removes `failed`; returns the active version."""
        target = self.rollback_target(failed)
        _write_json(self.journal_path, {"op": "rollback", "version": target, "previous": failed,
                                        "phase": "switching", "reason": reason, "time": self.clock()})
        self._crash("rolling_back")
        self._finish_rollback(target, failed, reason)
        return target

    def _finish_rollback(self, target: str, failed: str, reason: str) -> None:
        self._switch(target)
        state = self.state()
        state["history"] = [v for v in state["history"] if v != failed]
        if failed not in state["rolled_back"]:
            state["rolled_back"].append(failed)
        _write_json(self.state_path, state)
        self._remove_release(failed)
        self._end_journal()
        self._report(UpdateState.ROLLED_BACK, failed, target, 1.0, f"{target} active again: {reason}")

    # ------------------------------------------------------------------ the whole update
    def run(self, client: ServerClient, robot_id: str, reload: Callable[[], tuple[bool, str]],
            watch: Callable[[Pending], tuple[bool, str]]) -> str:
        """One check and, when a newer release is offered, the whole update; returns what happened.

        reload() asks the inference node to load the policy under current/; watch(pending) blocks for the
        health window and says whether the release passed. Failures are reported, never raised.
        """
        current = self.current_version()
        self._report(UpdateState.CHECKING, "", current, 0.0, "")
        try:
            offer = client.latest(current, robot_id)
        except DownloadError as exc:
            self._report(UpdateState.FAILED, "", current, 0.0, f"check failed: {exc}")
            return f"check failed: {exc}"
        if not offer.available:
            message = f"up to date at {current}" + (f" ({offer.reason})" if offer.reason else "")
            self._report(UpdateState.CHECKING, "", current, 1.0, message)
            return message
        try:
            self.check_offer(offer)
            package = self.fetch(client, offer)
            pending = self.install(package, offer.version)
        except DownloadError as exc:
            # the network, not the release: the server is not told (a failure report halts the rollout) and
            # the partial download is resumed at the next check
            self._report(UpdateState.FAILED, offer.version, current, 0.0, str(exc))
            return f"failed: {exc}"
        except (UpdateError, PackageError, SignatureError, OSError) as exc:
            self._report(UpdateState.FAILED, offer.version, current, 0.0, str(exc))
            self.tell_server(client, robot_id, offer.version, current, UpdateState.FAILED, str(exc))
            return f"failed: {exc}"
        return self.settle(pending, client, robot_id, reload, watch)

    def settle(self, pending: Pending, client: ServerClient | None, robot_id: str,
               reload: Callable[[], tuple[bool, str]], watch: Callable[[Pending], tuple[bool, str]]) -> str:
        """Reloads the policy and watches the switched release; confirms it or rolls it back."""
        self._report(UpdateState.APPLYING, pending.version, pending.previous, 0.95, "loading the new policy")
        ok, why = reload()
        if ok:
            ok, why = watch(pending)
            self._crash("health")
        if not ok:
            try:
                self.rollback(pending.version, why)
                reload_ok, reload_why = reload()
                if not reload_ok:
                    _log.error("after rolling back, the policy did not reload: %s", reload_why)
            except UpdateError as exc:
                self._report(UpdateState.FAILED, pending.version, pending.previous, 0.0,
                             f"{why}; and cannot roll back: {exc}")
            self.tell_server(client, robot_id, pending.version, pending.previous, UpdateState.ROLLED_BACK, why)
            return f"rolled back: {why}"
        self.confirm(pending)
        self._report(UpdateState.COMPLETED, pending.version, pending.previous, 1.0, why)
        self.tell_server(client, robot_id, pending.version, pending.previous, UpdateState.COMPLETED, why)
        return f"completed: {pending.version} ({why})"

    def tell_server(self, client: ServerClient | None, robot_id: str, version: str, previous: str,
                     status: str, message: str) -> None:
        if client is None:
            return
        try:
            client.report(robot_id, version, previous, str(status), message)
        except DownloadError as exc:  # the rollout waits for it; the next check's query tells our version anyway
            _log.warning("could not report %s of %s to the server: %s", status, version, exc)


def main(argv: list[str] | None = None) -> int:
    """`python -m vla_fleet.ota.updater install PACKAGE --releases-dir D --public-key K` | `status`."""
    import argparse
    import sys
    import time

    from vla_fleet.ota.signing import load_verify_key

    parser = argparse.ArgumentParser(prog="python -m vla_fleet.ota.updater")
    parser.add_argument("command", choices=("install", "status"))
    parser.add_argument("package", type=Path, nargs="?")
    parser.add_argument("--releases-dir", type=Path, required=True)
    parser.add_argument("--public-key", type=Path, help="the trusted ota_ed25519.pub (install)")
    args = parser.parse_args(argv)
    if args.command == "status":
        updater = Updater(args.releases_dir, None, clock=time.time, report=lambda *a: None)
        print(json.dumps({"current": updater.current_version(), "installed": updater.installed(),
                          "journal": updater.journal(), **updater.state()}, indent=1))
        return 0
    if args.package is None or args.public_key is None:
        parser.error("install needs PACKAGE and --public-key")
    try:
        updater = Updater(args.releases_dir, load_verify_key(args.public_key), clock=time.time,
                          report=lambda *a: None)
        updater.recover()
        print(f"installed {updater.install_file(args.package)} under {updater.current_link}")
    except (UpdateError, PackageError, SignatureError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
