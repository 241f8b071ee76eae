"""security_scan: the installed release against its manifest (every file's size and sha256, nothing missing,
nothing added), world-writable files and folders, and secret files (keys, tokens, backups) readable by
anyone but their owner. With `fix_permissions` the permissions found wrong are corrected and said so;
content is never changed.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path

from vla_fleet.maintenance import backup
from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.maintenance.layout import (
    MANIFEST_NAME,
    TaskFailed,
    current_release,
    expand,
    inside,
    read_manifest,
    sha256_file,
)

# beside the manifest, files a release may hold that the manifest cannot list (its own signature)
RELEASE_META = {MANIFEST_NAME, f"{MANIFEST_NAME}.sig"}


def verify_release(release: Path) -> dict:
    """Checks every file the manifest lists; problems name each mismatch, missing and unlisted file."""
    manifest = read_manifest(release)
    problems: list[str] = []
    listed = set()
    for entry in manifest["files"]:
        path = inside(release, entry["path"])
        if path is None:
            problems.append(f"manifest path {entry['path']!r} leaves the release folder")
            continue
        listed.add(path)
        if path.is_symlink() or not path.is_file():
            problems.append(f"{entry['path']}: missing")
            continue
        size = path.stat().st_size
        if "size" in entry and size != entry["size"]:
            problems.append(f"{entry['path']}: {size} bytes, manifest says {entry['size']}")
        elif sha256_file(path) != entry["sha256"].lower():
            problems.append(f"{entry['path']}: sha256 differs from the manifest (modified)")
    root = release.resolve()
    for p in sorted(release.rglob("*")):
        rel = p.relative_to(release).as_posix()
        if p.is_symlink():  # a package may hold links, but only to its own files
            target = p.resolve()
            if target != root and root not in target.parents:
                problems.append(f"{rel}: link leads outside the release ({os.readlink(p)})")
        elif p.is_file() and p not in listed and p.name not in RELEASE_META:
            problems.append(f"{rel}: not in the manifest")
    return {"version": manifest.get("version", release.name), "files": len(manifest["files"]), "problems": problems}


def _secret_content(path: Path) -> bool:
    """A .pem/.crt is secret only when it holds a private key (a certificate is public); other names are."""
    if path.suffix not in (".pem", ".crt"):
        return True
    try:
        with open(path, "rb") as f:
            return b"PRIVATE KEY" in f.read(1 << 16)
    except OSError:
        return True  # unreadable to us: judged by its name


def _walk(roots: list[Path], limit: int):
    seen = 0
    for root in roots:
        if not root.exists():
            continue
        yield root
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                seen += 1
                if seen > limit:
                    return
                yield Path(dirpath) / name


def security_scan(cfg: MaintenanceConfig) -> dict:
    problems: list[str] = []
    release_dir = current_release(expand(cfg.releases_dir))
    if release_dir is None:
        release = {"installed": None}
    else:
        try:
            release = {"installed": release_dir.name, **verify_release(release_dir)}
        except TaskFailed as exc:
            release = {"installed": release_dir.name, "problems": [str(exc)]}
        problems += [f"release {release_dir.name}: {p}" for p in release["problems"]]

    roots = [expand(p) for p in cfg.scan_paths]
    roots += [expand(cfg.releases_dir), expand(cfg.backup_dir)] + ([expand(cfg.config_dir)] if cfg.config_dir else [])
    unique: list[Path] = []  # each folder once, a folder inside another not again
    for r in sorted({r.resolve() for r in roots if r.exists()}, key=lambda p: len(p.parts)):
        if not any(u == r or u in r.parents for u in unique):
            unique.append(r)
    world_writable, secrets_open, fixed = [], [], []
    backups = {p.resolve() for p in backup.archives(expand(cfg.backup_dir))}
    scanned = 0
    for path in _walk(unique, cfg.scan_max_files):
        scanned += 1
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        mode = stat.S_IMODE(st.st_mode)
        sticky_dir = stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX
        if mode & stat.S_IWOTH and not sticky_dir:
            world_writable.append(f"{path} ({mode:04o})")
            if cfg.fix_permissions:
                os.chmod(path, mode & ~stat.S_IWOTH)
                fixed.append(f"{path}: o-w")
        is_secret = stat.S_ISREG(st.st_mode) and not path.name.endswith(".pub") and (
            path in backups or any(fnmatch.fnmatch(path.name, g) for g in cfg.secret_globs)) and _secret_content(path)
        if is_secret and mode & 0o077:
            secrets_open.append(f"{path} ({mode:04o}, want 0600)")
            if cfg.fix_permissions:
                os.chmod(path, 0o600)
                fixed.append(f"{path}: 0600")
    if scanned > cfg.scan_max_files:
        problems.append(f"scan stopped after {cfg.scan_max_files} entries (~scan_max_files)")
    problems += [f"world-writable: {p}" for p in world_writable]
    problems += [f"secret readable by others: {p}" for p in secrets_open]
    return {"release": release, "scanned_paths": [str(u) for u in unique], "entries_scanned": scanned,
            "world_writable": world_writable, "secrets_with_open_permissions": secrets_open, "fixed": fixed,
            "problems": problems}
