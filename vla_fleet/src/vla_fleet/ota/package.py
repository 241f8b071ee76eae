"""What an update package is: versions, the manifest, and unpacking a verified package safely.

A package is a `.tar.gz` whose first member is `manifest.json` (version, min_version, every file with
its sha256 and size, post-install checks) followed by the files it installs. Unpacking streams the
archive (constant memory) and refuses absolute paths, `..`, links leading outside, hard links,
devices, files the manifest does not list or whose hash differs, and archives over the size or
file-count caps; it writes only below the directory it is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
MAX_MANIFEST_BYTES = 1 << 20
CHECK_KINDS = ("health_overall", "component", "file")
_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")
NO_VERSION = "0"  # what a robot with no release installed runs


class PackageError(ValueError):
    """A package, manifest or version that is refused; the message is the reason."""


def parse_version(text: str) -> tuple[int, ...]:
    """`1.2.3` -> (1, 2, 3); dotted numbers only, compared as numbers (1.10 is newer than 1.9)."""
    if not isinstance(text, str) or not _VERSION.match(text):
        raise PackageError(f"version {text!r} is not dotted numbers like 1.2.3")
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (4 - len(parts))


def newer(a: str, b: str) -> bool:
    """Whether version a is newer than version b."""
    return parse_version(a) > parse_version(b)


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    version: str
    min_version: str
    files: tuple[FileEntry, ...]
    checks: tuple[dict, ...] = ()
    created: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "format": MANIFEST_FORMAT, "version": self.version, "min_version": self.min_version,
            "created": self.created,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
            "post_install": {"checks": list(self.checks)}, **self.extra}, indent=1, sort_keys=True)


def check_member_name(name: str) -> str:
    """The normalised relative path of an archive member; PackageError for absolute paths and `..`."""
    if not name or "\\" in name or "\x00" in name:
        raise PackageError(f"refused archive member {name!r}: empty or with a backslash/NUL")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise PackageError(f"refused archive member {name!r}: absolute path")
    if ".." in path.parts:
        raise PackageError(f"refused archive member {name!r}: path traversal ('..')")
    parts = [p for p in path.parts if p != "."]
    if not parts:
        raise PackageError(f"refused archive member {name!r}: names no file")
    return "/".join(parts)


def _check(check: Any) -> dict:
    if not isinstance(check, dict) or check.get("kind") not in CHECK_KINDS:
        raise PackageError(f"manifest check {check!r}: needs a kind among {', '.join(CHECK_KINDS)}")
    if check["kind"] == "component" and not isinstance(check.get("name"), str):
        raise PackageError(f"manifest check {check!r}: a component check names its component")
    if check["kind"] == "file":
        check_member_name(check.get("path", ""))
    return check


def parse_manifest(text: bytes | str) -> Manifest:
    """The manifest from its JSON text; PackageError saying what is wrong."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"manifest is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise PackageError(f"manifest is not format {MANIFEST_FORMAT}")
    version, min_version = doc.get("version"), doc.get("min_version", NO_VERSION)
    parse_version(version)
    parse_version(min_version)
    files, seen = [], set()
    for entry in doc.get("files", []):
        try:
            path = check_member_name(entry["path"])
            sha, size = str(entry["sha256"]), int(entry["size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"manifest file entry {entry!r}: needs path, sha256, size") from exc
        if path in seen or path == MANIFEST_NAME or not re.fullmatch(r"[0-9a-f]{64}", sha) or size < 0:
            raise PackageError(f"manifest file entry {entry!r}: duplicate, reserved or malformed")
        seen.add(path)
        files.append(FileEntry(path, sha, size))
    post = doc.get("post_install") or {}
    checks = tuple(_check(c) for c in (post.get("checks") or []))
    known = {"format", "version", "min_version", "created", "files", "post_install"}
    return Manifest(version, min_version, tuple(files), checks, float(doc.get("created", 0.0)),
                    {k: v for k, v in doc.items() if k not in known})


@dataclass(frozen=True)
class Caps:
    max_total_bytes: int = 2 << 30
    max_files: int = 10_000


def _inside(root: Path, target: Path) -> bool:
    return os.path.normpath(target) == os.path.normpath(root) or \
        os.path.normpath(target).startswith(os.path.normpath(root) + os.sep)


def _no_link_on_the_way(root: Path, rel: str) -> None:
    """Refuses writing through a directory that an earlier member made a link."""
    here = root
    for part in PurePosixPath(rel).parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise PackageError(f"refused archive member {rel!r}: it would be written through the link {part!r}")


def _copy_hashed(src, dest: Path, limit: int) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        while block := src.read(1 << 20):
            size += len(block)
            if size > limit:
                raise PackageError(f"{dest.name}: larger than the manifest says")
            sha.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return sha.hexdigest(), size


def read_manifest(package: Path) -> Manifest:
    """The manifest of a package: its first member, read without unpacking anything."""
    with tarfile.open(package, "r|gz") as tar:
        for member in tar:
            return _manifest_member(tar, member)
    raise PackageError("archive is empty")


def _manifest_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Manifest:
    if member.name != MANIFEST_NAME or not member.isfile():
        raise PackageError(f"the first archive member is {member.name!r}, not {MANIFEST_NAME}")
    if member.size > MAX_MANIFEST_BYTES:
        raise PackageError(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
    return parse_manifest(tar.extractfile(member).read())


def unpack(package: Path, dest: Path, caps: Caps, progress=None) -> Manifest:
    """Unpacks package into the new directory dest, each file checked against the manifest; returns it.

    On PackageError dest may hold part of the package: the caller removes it (it is a staging directory).
    `progress(done_bytes, total_bytes)` is called after each file.
    """
    dest.mkdir(parents=True)
    root = dest.resolve()
    try:
        with tarfile.open(package, "r|gz") as tar:
            members = iter(tar)
            first = next(members, None)
            if first is None:
                raise PackageError("archive is empty")
            manifest = _manifest_member(tar, first)
            (root / MANIFEST_NAME).write_text(manifest.to_json())
            expected = {f.path: f for f in manifest.files}
            if len(expected) > caps.max_files:
                raise PackageError(f"manifest lists {len(expected)} files, over the cap of {caps.max_files}")
            declared = sum(f.size for f in manifest.files)
            if declared > caps.max_total_bytes:
                raise PackageError(f"manifest declares {declared} bytes, over the cap of {caps.max_total_bytes}")
            done, seen = 0, set()
            for count, member in enumerate(members, 1):
                if count > caps.max_files * 2:  # directories and links count too, at twice the file cap
                    raise PackageError(f"archive holds more than {caps.max_files * 2} members")
                rel = check_member_name(member.name)
                if rel in seen or rel == MANIFEST_NAME:
                    raise PackageError(f"refused archive member {rel!r}: duplicate")
                seen.add(rel)
                _no_link_on_the_way(root, rel)
                target = root / rel
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.issym():
                    link_to = Path(os.path.normpath(target.parent / member.linkname))
                    if PurePosixPath(member.linkname).is_absolute() or not _inside(root, link_to):
                        raise PackageError(f"refused archive member {rel!r}: symlink to {member.linkname!r} "
                                           "leads outside the release")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.linkname, target)
                elif member.isfile():
                    entry = expected.get(rel)
                    if entry is None:
                        raise PackageError(f"refused archive member {rel!r}: not listed in the manifest")
                    if member.size != entry.size or done + member.size > caps.max_total_bytes:
                        raise PackageError(f"refused archive member {rel!r}: size {member.size} differs from the "
                                           f"manifest's {entry.size} or passes the cap of {caps.max_total_bytes}")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    sha, size = _copy_hashed(tar.extractfile(member), target, entry.size)
                    if sha != entry.sha256 or size != entry.size:
                        raise PackageError(f"{rel}: sha256 {sha} differs from the manifest's {entry.sha256}")
                    done += size
                    if progress is not None:
                        progress(done, declared)
                else:
                    kind = "hard link" if member.islnk() else "device or fifo"
                    raise PackageError(f"refused archive member {rel!r}: a {kind}")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PackageError(f"archive unreadable: {exc}") from exc
    missing = sorted(set(expected) - seen)
    if missing:
        raise PackageError(f"files listed in the manifest are missing from the archive: {missing[:5]}")
    return manifest


def verify_tree(release: Path) -> Manifest:
    """Re-checks an unpacked release against its manifest (after a restart, before trusting it)."""
    manifest = parse_manifest((release / MANIFEST_NAME).read_bytes())
    for entry in manifest.files:
        path = release / entry.path
        sha = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    sha.update(block)
        except OSError as exc:
            raise PackageError(f"{path}: {exc}") from exc
        if sha.hexdigest() != entry.sha256:
            raise PackageError(f"{path}: sha256 differs from the manifest")
    return manifest
