"""Building and signing update packages: `python -m vla_fleet.release keygen|build`.

keygen --out DIR                      writes DIR/ota_ed25519 (0600) and DIR/ota_ed25519.pub
build --version V --source DIR --key KEY --out FILE [--min-version M] [--check KIND[:ARG]]...
                                      writes FILE (.tar.gz: manifest.json first, then DIR's files)
                                      and FILE.sig (the detached signature, base64)
Checks: `health_overall` (vla_health healthy through the window), `component:NAME` (one vla_health
component healthy), `file:PATH` (the release holds PATH); default: health_overall.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
import time
from pathlib import Path

from vla_fleet.ota.package import MANIFEST_NAME, FileEntry, Manifest, PackageError, check_member_name, parse_version
from vla_fleet.ota.signing import SignatureError, keygen, load_signing_key, sign_file

SIGNATURE_SUFFIX = ".sig"


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


def parse_check(text: str) -> dict:
    kind, _, arg = text.partition(":")
    if kind == "health_overall" and not arg:
        return {"kind": kind}
    if kind == "component" and arg:
        return {"kind": kind, "name": arg}
    if kind == "file" and arg:
        return {"kind": kind, "path": check_member_name(arg)}
    raise PackageError(f"check {text!r}: use health_overall, component:NAME or file:PATH")


def source_files(source: Path) -> list[Path]:
    """The regular files below source, sorted; links and special files are refused (a package holds files)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                raise PackageError(f"{path}: not a regular file (links are not packaged)")
            files.append(path)
    return files


def build(version: str, source: Path, key_file: Path, out: Path, min_version: str = "0",
          checks: tuple[dict, ...] = ({"kind": "health_overall"},), now: float | None = None) -> Manifest:
    """Writes the package `out` and its signature `out.sig`; returns the manifest."""
    parse_version(version)
    parse_version(min_version)
    key = load_signing_key(key_file)
    files = source_files(source)
    entries = tuple(FileEntry(p.relative_to(source).as_posix(), _sha256(p), p.stat().st_size) for p in files)
    if any(e.path == MANIFEST_NAME for e in entries):
        raise PackageError(f"{source} holds a {MANIFEST_NAME}: the build writes it")
    manifest = Manifest(version, min_version, entries, tuple(checks), time.time() if now is None else now)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    with tarfile.open(partial, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        data = manifest.to_json().encode()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mtime, info.mode = len(data), int(manifest.created), 0o644
        tar.addfile(info, io.BytesIO(data))
        for path, entry in zip(files, entries, strict=True):
            info = tar.gettarinfo(str(path), arcname=entry.path)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
    signature = sign_file(key, partial)
    os.replace(partial, out)
    Path(str(out) + SIGNATURE_SUFFIX).write_text(signature + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vla_fleet.release", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    kg = sub.add_parser("keygen", help="write an ed25519 key pair")
    kg.add_argument("--out", type=Path, required=True)
    bd = sub.add_parser("build", help="build and sign a package")
    bd.add_argument("--version", required=True)
    bd.add_argument("--source", type=Path, required=True, help="directory: model/policy.pt, its sidecar, config/...")
    bd.add_argument("--key", type=Path, required=True, help="the private key file (ota_ed25519)")
    bd.add_argument("--out", type=Path, required=True, help="the package file, e.g. vla-1.2.0.tar.gz")
    bd.add_argument("--min-version", default="0", help="the oldest version that may update to this one")
    bd.add_argument("--check", action="append", default=None, help="post-install check (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            private, public = keygen(args.out)
            print(f"wrote {private} (0600) and {public}")
        else:
            checks = tuple(parse_check(c) for c in (args.check or ["health_overall"]))
            manifest = build(args.version, args.source, args.key, args.out, args.min_version, checks)
            print(f"wrote {args.out} ({len(manifest.files)} files, version {manifest.version}) "
                  f"and {args.out}{SIGNATURE_SUFFIX}")
    except (PackageError, SignatureError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
