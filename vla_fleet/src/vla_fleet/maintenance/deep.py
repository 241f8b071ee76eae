"""deep_maintenance: every SQLite database checked (PRAGMA integrity_check) and compacted (VACUUM), old OTA
releases pruned to the newest `keep_releases` (the current one always kept), old cache files deleted, and
every backup archive's sha256 checked again (a backup that rotted is found before it is needed).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from vla_fleet.maintenance import backup, pgdump
from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.maintenance.layout import current_release, expand, releases, sha256_file, sqlite_path

DAY_S = 86400.0


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def check_database(path: Path, vacuum: bool = True) -> dict:
    """Integrity check, then VACUUM when it is sound; raises sqlite3.Error when the file cannot be opened."""
    before = _db_bytes(path)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        ok = rows == ["ok"]
        vacuumed = False
        if ok and vacuum:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL folded back: the file is the database
            vacuumed = True
    finally:
        conn.close()
    return {"integrity": "ok" if ok else rows[:20], "vacuumed": vacuumed, "bytes_before": before,
            "bytes_after": _db_bytes(path)}


def prune_releases(releases_dir: Path, keep: int) -> list[str]:
    """Keeps the current release and the newest others, `keep` in all (as the OTA updater's own pruning);
    the versions deleted."""
    current = current_release(releases_dir)
    others = [p for p in releases(releases_dir) if current is None or p.resolve() != current]
    doomed = others[:-(keep - 1 if current else keep) or len(others)]
    for p in doomed:
        shutil.rmtree(p)
    return [p.name for p in doomed]


def prune_cache(folder: Path, max_age_s: float, now_s: float) -> tuple[int, int]:
    """Deletes files older than max_age_s under folder; (files, bytes)."""
    files = size = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
                if now_s - st.st_mtime > max_age_s:
                    path.unlink()
                    files += 1
                    size += st.st_size
            except FileNotFoundError:
                continue
    return files, size


def deep_maintenance(cfg: MaintenanceConfig, now_s: float) -> dict:
    problems: list[str] = []
    databases = {}
    for url in cfg.db_urls:
        path = sqlite_path(url)
        if path is None or not path.is_file():
            # a postgresql:// URL may hold a password: the report names it without
            name = pgdump.public_url(url) if pgdump.is_postgresql(url) else url
            databases[name] = {"skipped": "not an SQLite file" if path is None else "no such file"}
            continue
        try:
            result = check_database(path)
        except sqlite3.Error as exc:
            problems.append(f"database {path}: {exc}")
            databases[url] = {"error": str(exc)}
            continue
        if result["integrity"] != "ok":
            problems.append(f"database {path}: integrity check failed: {result['integrity'][0]}")
        databases[url] = result
    releases_dir = expand(cfg.releases_dir)
    pruned = prune_releases(releases_dir, cfg.keep_releases)
    caches = {}
    for raw in cfg.cache_dirs:
        folder = expand(raw)
        if folder.is_dir():
            n, size = prune_cache(folder, cfg.cache_max_age_days * DAY_S, now_s)
            caches[str(folder)] = {"files_deleted": n, "bytes_deleted": size}
    checked = []
    for archive in backup.archives(expand(cfg.backup_dir)):
        want = archive.with_name(archive.name + ".sha256").read_text().split()[0]
        if sha256_file(archive) != want:
            problems.append(f"backup {archive.name}: sha256 does not match (corrupted)")
        checked.append(archive.name)
    return {"databases": databases, "releases_pruned": pruned,
            "releases_kept": [p.name for p in releases(releases_dir)], "caches": caches,
            "backups_verified": checked, "problems": problems}
