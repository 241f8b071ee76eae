"""The update server: `rosrun vla_fleet update_server --root DIR --port P [--certfile F --keyfile F]
[--token-file F]`.

A Starlette app under uvicorn. DIR holds the packages (`*.tar.gz`, each with its `.sig` beside it) and
an optional rollout plan (`rollout.json`); the newest version is offered, to the robots its rollout
stage allows.
  GET  /api/updates/latest?current_version=X&robot_id=R   the offer (INTERFACES.md "OTA update service")
  GET  /packages/<file>                                   the package, with HTTP Range (resume)
  POST /api/updates/report   {robot_id, version, previous_version, status, message}
  GET  /api/fleet            who runs which version; each release's rollout stage, halted and why
With --token-file (vla_fleet.ota.auth) every route needs a valid token (401 without, nothing recorded);
a robot's token speaks only for its own robot_id in latest and report (403 for another's).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from vla_fleet.ota.auth import Identity, RobotTokens, TokenFileError, readable_by_others
from vla_fleet.ota.package import PackageError, newer, parse_version, read_manifest
from vla_fleet.ota.rollout import RolloutError, Rollouts
from vla_fleet.ota.signing import digest_file

_log = logging.getLogger(__name__)
SIGNATURE_SUFFIX = ".sig"
PLAN_NAME = "rollout.json"
STATE_NAME = "rollout_state.json"


@dataclass(frozen=True)
class Package:
    path: Path
    version: str
    size: int
    sha256: str
    signature: str


class Catalogue:
    """The signed packages in root, each read once per (size, mtime)."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[Path, tuple[tuple[int, int], Package]] = {}
        self._lock = threading.Lock()

    def packages(self) -> list[Package]:
        found = []
        with self._lock:
            for path in sorted(self.root.glob("*.tar.gz")):
                sig = path.with_name(path.name + SIGNATURE_SUFFIX)
                if not sig.is_file() or path.is_symlink():
                    continue
                st = path.stat()
                key = (st.st_size, st.st_mtime_ns)
                cached = self._cache.get(path)
                if cached is None or cached[0] != key:
                    try:
                        version = read_manifest(path).version
                    except PackageError as exc:
                        _log.warning("%s skipped: %s", path.name, exc)
                        continue
                    digests = digest_file(path)
                    cached = (key, Package(path, version, digests.size, digests.sha256, sig.read_text().strip()))
                    self._cache[path] = cached
                found.append(cached[1])
        return found

    def newest(self) -> Package | None:
        packages = self.packages()
        return max(packages, key=lambda p: parse_version(p.version)) if packages else None

    def by_name(self, name: str) -> Package | None:
        return next((p for p in self.packages() if p.path.name == name), None)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _unauthorized() -> JSONResponse:
    return JSONResponse({"error": "a valid token is required (Authorization: Bearer <token>)"}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="vla_fleet update server"'})


def create_app(root: Path, clock=time.time, tokens: RobotTokens | None = None) -> Starlette:
    """The app; tokens None serves everyone (main() warns about it)."""
    catalogue = Catalogue(root)
    rollouts = Rollouts(root / PLAN_NAME, root / STATE_NAME, clock)

    def caller(request: Request) -> Identity | None:
        if tokens is None:
            return Identity("*")
        return tokens.identify(request.headers.get("authorization"))

    def forbidden(who: Identity, robot_id: str) -> JSONResponse | None:
        if who.speaks_for(robot_id):
            return None
        return _error(403, f"this token is {who.robot_id}'s: it does not speak for robot_id {robot_id[:128]!r}")

    def latest(request: Request) -> JSONResponse:
        who = caller(request)
        if who is None:
            return _unauthorized()
        current = request.query_params.get("current_version", "0")
        robot_id = request.query_params.get("robot_id", "")
        try:
            parse_version(current)
        except PackageError as exc:
            return _error(400, f"current_version: {exc}")
        if not robot_id or len(robot_id) > 128:
            return _error(400, "robot_id: required, at most 128 characters")
        if (refused := forbidden(who, robot_id)) is not None:
            return refused
        rollouts.seen(robot_id, current)
        package = catalogue.newest()
        if package is None or not newer(package.version, current):
            return JSONResponse({"available": False, "version": current})
        try:
            allowed, why = rollouts.may_have(package.version, robot_id)
        except RolloutError as exc:
            return _error(500, str(exc))
        if not allowed:
            return JSONResponse({"available": False, "version": package.version, "reason": why})
        return JSONResponse({"available": True, "version": package.version,
                             "download_url": f"/packages/{package.path.name}", "checksum": package.sha256,
                             "signature": package.signature, "size": package.size})

    def download(request: Request):
        if caller(request) is None:
            return _unauthorized()
        package = catalogue.by_name(request.path_params["name"])
        if package is None:
            return _error(404, "no such package")
        return FileResponse(package.path, media_type="application/gzip")

    async def report(request: Request) -> JSONResponse:
        who = caller(request)
        if who is None:
            return _unauthorized()
        try:
            doc = await request.json()
            fields = {k: doc[k] for k in ("robot_id", "version", "status")}
            if not all(isinstance(v, str) and v for v in fields.values()):
                raise TypeError("robot_id, version and status must be non-empty strings")
            if (refused := forbidden(who, fields["robot_id"])) is not None:
                return refused
            parse_version(fields["version"])
            rollouts.report(fields["robot_id"], fields["version"], str(doc.get("previous_version") or ""),
                            fields["status"], str(doc.get("message") or "")[:2000])
        except (ValueError, KeyError, TypeError, RolloutError, PackageError) as exc:
            return _error(400, f"bad report: {exc}")
        return JSONResponse({"ok": True})

    def fleet(request: Request) -> JSONResponse:
        if caller(request) is None:
            return _unauthorized()
        return JSONResponse(rollouts.view())

    return Starlette(routes=[
        Route("/api/updates/latest", latest),
        Route("/packages/{name}", download),
        Route("/api/updates/report", report, methods=["POST"]),
        Route("/api/fleet", fleet),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="update_server", description="the OTA update server")
    parser.add_argument("--root", type=Path, required=True, help="directory of packages (*.tar.gz + .sig)")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--certfile", default=None, help="TLS certificate (PEM); with --keyfile serves https")
    parser.add_argument("--keyfile", default=None)
    parser.add_argument("--token-file", type=Path, default=None,
                        help="per-robot tokens, `robot_id token` per line (`* token`: fleet-wide); read again "
                             "when it changes. Without it the robot endpoints are unauthenticated")
    args = parser.parse_args(argv)
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together")
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is not a directory")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tokens = None
    if args.token_file is not None:
        try:
            tokens = RobotTokens(args.token_file)
        except TokenFileError as exc:
            print(f"error: --token-file: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        _log.info("robot endpoints need a token from %s (%d tokens)", args.token_file, tokens.count)
        if readable_by_others(args.token_file):
            _log.warning("%s is readable by group or others: chmod 600 it", args.token_file)
    else:
        _log.warning("no --token-file: the robot endpoints (latest, report, packages, fleet) are "
                     "unauthenticated; anyone who reaches this port can halt or advance a rollout")
    uvicorn.run(create_app(args.root, tokens=tokens), host=args.host, port=args.port, ssl_certfile=args.certfile,
                ssl_keyfile=args.keyfile, log_level="warning")


if __name__ == "__main__":
    main()
