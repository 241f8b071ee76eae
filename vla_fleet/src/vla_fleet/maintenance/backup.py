"""full_backup and restore_backup: the configuration, the databases and the current OTA release in one
timestamped `.tar.gz`, every file's sha256 in its `MANIFEST.json`, the archive's own sha256 beside it.

An SQLite database is copied with SQLite's online backup API (`sqlite3.Connection.backup`), a PostgreSQL one
dumped with pg_dump (one transaction's snapshot, `pgdump`), so a fleet manager writing meanwhile is neither
stopped nor copied half-written. A part that cannot be backed up (a database failing, a file too large) is
left out and named in the details' `problems` (the task ends `warning`); the other parts are still backed
up. An archive is written as `.part` and renamed when complete; the newest `backup_keep` are kept. A
restore checks the archive's sha256 and then every file's before anything is put back; files are put back
by rename, an SQLite database through the backup API again, into the live file, so a reader never sees
half a file, and a PostgreSQL one by pg_restore in one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import socket
import sqlite3
import tarfile
import tempfile
from pathlib import Path

from vla_fleet.maintenance import pgdump
from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.maintenance.layout import (
    TaskFailed,
    current_release,
    expand,
    inside,
    sha256_file,
    sqlite_path,
)

PREFIX, SUFFIX = "backup-", ".tar.gz"
MANIFEST = "MANIFEST.json"
FORMAT = 1
MAX_MEMBERS = 100_000
_STAMP = "%Y%m%dT%H%M%SZ"


class _HashingReader:
    """What tarfile reads from a file, hashed on the way (one pass over each file)."""

    def __init__(self, f: io.BufferedReader):
        self.f = f
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        block = self.f.read(n)
        self.digest.update(block)
        return block


def archives(backup_dir: Path) -> list[Path]:
    """Complete backups (an archive with its .sha256 beside it), oldest first."""
    if not backup_dir.is_dir():
        return []
    found = [p for p in backup_dir.iterdir()
             if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX) and _sidecar(p).is_file()]
    return sorted(found, key=lambda p: p.name)


def _read_only(path: Path) -> str:
    """An SQLite URI opening path read-only (as_uri escapes `?` and `#` in a file name)."""
    return f"{path.resolve().as_uri()}?mode=ro"


def _sidecar(archive: Path) -> Path:
    return archive.with_name(archive.name + ".sha256")


def _add(tar: tarfile.TarFile, member: str, source: Path, mtime: float) -> tuple[str, int]:
    with open(source, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        info = tarfile.TarInfo(member)
        info.size, info.mtime, info.mode = size, int(mtime), 0o600
        reader = _HashingReader(f)
        tar.addfile(info, reader)  # OSError when the file shrank meanwhile: the backup fails, the reason says it
    return reader.digest.hexdigest(), size


def _copy_sqlite(path: Path, copy: Path) -> None:
    try:
        src = sqlite3.connect(_read_only(path), uri=True, timeout=30.0)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)  # online: pages copied under SQLite's locks, writers go on
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise TaskFailed(f"database {path}: online backup failed: {exc}") from exc


def _sources(cfg: MaintenanceConfig, tmp: Path, skipped: list[str],
             problems: list[str]) -> tuple[list[tuple[str, Path, str, str]], str]:
    """(member, file to read, where it came from, kind) for everything backed up, and the release version.
    A database that cannot be copied is a problem, and the others are still copied."""
    out: list[tuple[str, Path, str, str]] = []
    if cfg.config_dir:
        root = expand(cfg.config_dir)
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_symlink() or not path.is_file():
                    continue
                out.append((f"config/{path.relative_to(root).as_posix()}", path, str(path), "config"))
        else:
            skipped.append(f"config_dir {root}: not a folder")
    for i, url in enumerate(cfg.db_urls):
        if pgdump.is_postgresql(url):
            copy = tmp / f"db{i}.pgdump"
            try:
                db = pgdump.dump(url, copy, cfg.pg_timeout_s, cfg.pg_bin_dir)
            except TaskFailed as exc:
                problems.append(f"{exc}; not backed up")
                continue
            out.append((f"databases/{i}-{db.dbname}{pgdump.SUFFIX}", copy, db.public, "database"))
            continue
        path = sqlite_path(url)
        if path is None:
            skipped.append(f"database {url}: in memory, nothing on disk" if url.startswith("sqlite:") else
                           f"database {url}: neither sqlite:/// nor postgresql://")
            continue
        if not path.is_file():
            skipped.append(f"database {path}: no such file")
            continue
        copy = tmp / f"db{i}.sqlite3"
        try:
            _copy_sqlite(path, copy)
        except TaskFailed as exc:
            problems.append(f"{exc}; not backed up")
            continue
        out.append((f"databases/{i}-{path.name}", copy, str(path), "database"))
    version = ""
    release = current_release(expand(cfg.releases_dir))
    if release is None:
        skipped.append(f"release: none installed under {expand(cfg.releases_dir)}")
    else:
        version = release.name
        for path in sorted(release.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            out.append((f"release/{version}/{path.relative_to(release).as_posix()}", path, str(path), "release"))
    return out, version


def full_backup(cfg: MaintenanceConfig, now_s: float) -> dict:
    """Writes one archive into backup_dir and applies the retention; details name it and what it holds."""
    backup_dir = expand(cfg.backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    for stale in backup_dir.glob(f"{PREFIX}*{SUFFIX}.part"):  # what a crash mid-backup left
        stale.unlink(missing_ok=True)
    stamp = dt.datetime.fromtimestamp(now_s, dt.UTC).strftime(_STAMP)
    archive = backup_dir / f"{PREFIX}{stamp}{SUFFIX}"
    n = 0
    while archive.exists():
        n += 1
        archive = backup_dir / f"{PREFIX}{stamp}-{n}{SUFFIX}"
    part = archive.with_name(archive.name + ".part")
    skipped: list[str] = []
    problems: list[str] = []
    entries = []
    limit = cfg.backup_max_file_mb * 1e6
    with tempfile.TemporaryDirectory(dir=backup_dir, prefix=".backup-") as tmp:
        sources, version = _sources(cfg, Path(tmp), skipped, problems)
        try:
            # gzip's default level, not tarfile's 9: on a 15 MB task database 9 took 7x the CPU for a 24 % smaller
            # copy, and a policy's weights hardly compress at all
            with tarfile.open(part, "w:gz", compresslevel=6) as tar:
                for member, path, origin, kind in sources[:MAX_MEMBERS]:
                    if path.stat().st_size > limit:
                        problems.append(f"{origin}: larger than {cfg.backup_max_file_mb:g} MB, left out")
                        continue
                    sha, size = _add(tar, member, path, path.stat().st_mtime)
                    entries.append({"member": member, "origin": origin, "kind": kind, "sha256": sha, "size": size})
                manifest = json.dumps({"format": FORMAT, "created": now_s, "host": socket.gethostname(),
                                       "release": version or None, "files": entries, "skipped": skipped,
                                       "problems": problems},
                                      indent=1).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(manifest), int(now_s), 0o600
                tar.addfile(info, io.BytesIO(manifest))
            os.chmod(part, 0o600)  # it holds keys and databases
            os.replace(part, archive)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise TaskFailed(f"writing {archive.name}: {exc}") from exc
    digest = sha256_file(archive)
    _sidecar(archive).write_text(f"{digest}  {archive.name}\n")
    removed = []
    for old in archives(backup_dir)[:-cfg.backup_keep]:
        old.unlink(missing_ok=True)
        _sidecar(old).unlink(missing_ok=True)
        removed.append(old.name)
    kinds = {k: sum(1 for e in entries if e["kind"] == k) for k in ("config", "database", "release")}
    return {"archive": str(archive), "sha256": digest, "size": archive.stat().st_size, "files": len(entries),
            "by_kind": kinds, "release": version or None, "skipped": skipped, "removed_old": removed,
            "problems": problems}


def _pick(backup_dir: Path, name: str) -> Path:
    found = archives(backup_dir)
    if not name:
        if not found:
            raise TaskFailed(f"no backup in {backup_dir}")
        return found[-1]
    for p in found:
        if p.name == name:
            return p
    raise TaskFailed(f"no backup named {name!r} in {backup_dir} (have: {', '.join(p.name for p in found) or 'none'})")


def _verified_extract(archive: Path, staging: Path) -> dict:
    """Extracts the manifest's files into staging and checks every sha256; TaskFailed on any mismatch."""
    want = _sidecar(archive).read_text().split()[0] if _sidecar(archive).is_file() else ""
    have = sha256_file(archive)
    if want != have:
        raise TaskFailed(f"{archive.name}: sha256 {have} does not match its .sha256 ({want or 'missing'})")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()[:MAX_MEMBERS + 1]}
            if MANIFEST not in members:
                raise TaskFailed(f"{archive.name}: no {MANIFEST}")
            manifest = json.loads(tar.extractfile(members[MANIFEST]).read())
            for entry in manifest["files"]:
                m = members.get(entry["member"])
                target = inside(staging, entry["member"])
                if m is None or not m.isfile() or target is None:
                    raise TaskFailed(f"{archive.name}: member {entry['member']!r} missing or not a plain file")
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with tar.extractfile(m) as src, open(target, "wb") as dst:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
                if digest.hexdigest() != entry["sha256"]:
                    raise TaskFailed(f"{archive.name}: {entry['member']} fails its sha256; nothing restored")
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError) as exc:
        raise TaskFailed(f"{archive.name}: unreadable: {exc}") from exc
    return manifest


def _put(staged: Path, origin: Path) -> None:
    origin.parent.mkdir(parents=True, exist_ok=True)
    part = origin.with_name(f".{origin.name}.restore")
    with open(staged, "rb") as src, open(part, "wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
    if origin.exists():
        os.chmod(part, origin.stat().st_mode & 0o7777)
    os.replace(part, origin)


def _put_database(staged: Path, origin: Path) -> None:
    if not origin.exists():
        _put(staged, origin)
        return
    # into the live file through the backup API: other processes' connections stay valid and see the restored
    # pages after SQLite's own locking, where a rename would leave them on the old inode
    src = sqlite3.connect(_read_only(staged), uri=True)
    dst = sqlite3.connect(origin, timeout=30.0)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _allowed_origins(cfg: MaintenanceConfig) -> tuple[list[Path], set[Path]]:
    folders = [expand(cfg.releases_dir) / "releases"] + ([expand(cfg.config_dir)] if cfg.config_dir else [])
    return folders, {p for url in cfg.db_urls if (p := sqlite_path(url)) is not None}


def _postgresql_urls(cfg: MaintenanceConfig) -> dict[tuple, str]:
    """identity -> the configured URL (its password is the one a restore uses: the archive holds none); the
    first when two name the same database."""
    urls: dict[tuple, str] = {}
    for url in cfg.db_urls:
        if pgdump.is_postgresql(url):
            urls.setdefault(pgdump.target(url).identity, url)
    return urls


def _configured_url(pg_urls: dict[tuple, str], origin: str) -> str | None:
    try:
        return pg_urls.get(pgdump.target(origin).identity)
    except TaskFailed:
        return None


def _check_origins(cfg: MaintenanceConfig, manifest: dict) -> None:
    """An archive only writes where this node's config says its files live (never anywhere it names)."""
    folders, databases = _allowed_origins(cfg)
    pg_urls = _postgresql_urls(cfg)
    for entry in manifest["files"]:
        if entry["kind"] == "database" and pgdump.is_postgresql(entry["origin"]):
            ok = _configured_url(pg_urls, entry["origin"]) is not None
        else:
            origin = Path(os.path.normpath(entry["origin"]))
            ok = origin in databases if entry["kind"] == "database" else any(f in origin.parents for f in folders)
        if not ok:
            raise TaskFailed(f"{entry['origin']} is outside this node's config_dir, releases_dir and db_urls; "
                             "nothing restored")


def restore_backup(cfg: MaintenanceConfig, name: str = "") -> dict:
    """Brings back backup `name` (the newest when empty): every checksum is checked first, then the config
    files, databases and release files are put back where they came from, a PostgreSQL database by
    pg_restore into the database of the `~db_urls` entry it was dumped from (with that entry's password).
    The `current` link is pointed at the restored release only when it is missing or dangling (the OTA
    updater owns it otherwise)."""
    backup_dir = expand(cfg.backup_dir)
    archive = _pick(backup_dir, name)
    restored = {"config": 0, "database": 0, "release": 0}
    with tempfile.TemporaryDirectory(dir=backup_dir, prefix=".restore-") as tmp:
        staging = Path(tmp)
        manifest = _verified_extract(archive, staging)
        _check_origins(cfg, manifest)
        pg_urls = _postgresql_urls(cfg)
        for entry in manifest["files"]:
            if entry["kind"] == "database" and pgdump.is_postgresql(entry["origin"]):
                pgdump.check_tool("pg_restore", cfg.pg_bin_dir, entry["origin"])  # before anything is put back
        try:
            for entry in manifest["files"]:
                staged, origin = staging / entry["member"], entry["origin"]
                if entry["kind"] == "database" and pgdump.is_postgresql(origin):
                    pgdump.restore(_configured_url(pg_urls, origin), staged, cfg.pg_timeout_s, cfg.pg_bin_dir)
                elif entry["kind"] == "database":
                    _put_database(staged, Path(origin))
                else:
                    _put(staged, Path(origin))
                restored[entry["kind"]] += 1
        except TaskFailed as exc:
            raise TaskFailed(f"{exc} (that database is unchanged; files put back before it: "
                             f"{sum(restored.values())})") from exc
        except (OSError, sqlite3.Error) as exc:
            raise TaskFailed(f"putting back {entry['origin']}: {exc} (files before it were restored)") from exc
    relinked = False
    version = manifest.get("release")
    releases_dir = expand(cfg.releases_dir)
    if version and current_release(releases_dir) is None and (releases_dir / "releases" / version).is_dir():
        link = releases_dir / "current"
        tmp_link = releases_dir / ".current.restore"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(Path("releases") / version)
        os.replace(tmp_link, link)
        relinked = True
    return {"archive": str(archive), "created": manifest.get("created"), "restored": restored,
            "release": version, "current_relinked": relinked, "problems": []}
