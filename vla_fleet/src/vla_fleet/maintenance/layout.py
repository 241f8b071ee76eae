"""Where maintenance finds things on disk, and the small file helpers its tasks share.

The OTA layout (INTERFACES.md): `<releases_dir>/releases/<version>/` holds each release, with its
`manifest.json` ({"version", "files": [{"path", "sha256", "size"}], ...}), and `<releases_dir>/current`
is a link to the active one. Every part may be absent: a host with no release yet is not an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

CHUNK_BYTES = 1 << 20
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


class TaskFailed(Exception):  # noqa: N818 (names the outcome a task reports: failed)
    """A maintenance task could not do its work; the message is the reason reported."""


def expand(path: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(path)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def sqlite_path(db_url: str) -> Path | None:
    """The file of an `sqlite:///<path>` URL (`~` expanded); None for another database or `:memory:`."""
    if not db_url.startswith("sqlite:///"):
        return None
    path = db_url[len("sqlite:///"):]
    return None if path in ("", ":memory:") else expand(path)


def version_key(name: str) -> tuple:
    """Orders release names as versions (1.10.0 after 1.9.2); a non-numeric part sorts as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-+_]", name))


def releases(releases_dir: Path) -> list[Path]:
    """Every release folder, oldest version first."""
    root = releases_dir / "releases"
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.is_symlink()), key=lambda p: version_key(p.name))


def current_release(releases_dir: Path) -> Path | None:
    """The folder `current` points to, resolved; None when there is no such link or it dangles."""
    link = releases_dir / "current"
    if not link.is_symlink() and not link.is_dir():
        return None
    target = link.resolve()
    return target if target.is_dir() else None


def read_manifest(release: Path) -> dict:
    """A release's manifest, checked for the fields maintenance relies on; TaskFailed saying what is wrong."""
    path = release / MANIFEST_NAME
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise TaskFailed(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TaskFailed(f"{path}: missing") from exc
    except (OSError, ValueError) as exc:
        raise TaskFailed(f"{path}: unreadable: {exc}") from exc
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)
            for f in files):
        raise TaskFailed(f"{path}: no 'files' list of {{path, sha256, size}}")
    return doc


def inside(base: Path, relative: str) -> Path | None:
    """base/relative when it stays inside base (no absolute path, no `..` out); None otherwise."""
    if os.path.isabs(relative):
        return None
    candidate = Path(os.path.normpath(base / relative))
    return candidate if candidate == base or base in candidate.parents else None
