"""full_backup and restore_backup on real files: config, a live SQLite database (written to during the
backup), the current OTA release; restored byte-identical (the database: identical content), a corrupted
archive refused with nothing changed, retention."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tarfile
import threading
from pathlib import Path

import pytest

from vla_fleet.maintenance import backup
from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.maintenance.layout import TaskFailed
from vla_monitoring.config import build_config

T0 = 1_790_000_000.0


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def site(tmp_path: Path) -> tuple[MaintenanceConfig, Path]:
    config = tmp_path / "config"
    (config / "prometheus").mkdir(parents=True)
    (config / "safety.yaml").write_text("max_linear_speed: 0.5\n")
    (config / "prometheus" / "rules.yml").write_bytes(os.urandom(3000))
    db = tmp_path / "fleet.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, description TEXT)")
    conn.executemany("INSERT INTO tasks (description) VALUES (?)", [(f"go to {i}",) for i in range(500)])
    conn.commit()
    conn.close()
    ota = tmp_path / "ota"
    release = ota / "releases" / "1.2.0"
    (release / "model").mkdir(parents=True)
    (release / "model" / "policy.pt").write_bytes(os.urandom(200_000))
    (release / "manifest.json").write_text(json.dumps({"version": "1.2.0", "files": []}))
    (ota / "current").symlink_to(Path("releases") / "1.2.0")
    cfg = build_config(MaintenanceConfig, {
        "db_urls": [f"sqlite:///{db}", "sqlite:///:memory:"], "config_dir": str(config),
        "releases_dir": str(ota), "backup_dir": str(tmp_path / "backups"), "backup_keep": 2})
    return cfg, tmp_path


def test_backup_then_restore_brings_everything_back(site):
    cfg, root = site
    config_before, release_before = _tree(root / "config"), _tree(root / "ota" / "releases" / "1.2.0")
    db_before = _dump(root / "fleet.db")

    done = backup.full_backup(cfg, T0)
    archive = Path(done["archive"])
    assert archive.name == "backup-20260921T141320Z.tar.gz" and archive.stat().st_mode & 0o077 == 0
    assert done["by_kind"] == {"config": 2, "database": 1, "release": 2}
    assert done["release"] == "1.2.0"
    assert any("in memory" in s for s in done["skipped"]) and done["problems"] == []
    assert (archive.with_name(archive.name + ".sha256").read_text().split()[0]
            == hashlib.sha256(archive.read_bytes()).hexdigest())
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())
    assert {e["member"] for e in manifest["files"]} >= {"config/safety.yaml", "release/1.2.0/model/policy.pt"}

    # the damage: a config file edited, one deleted, rows deleted, the release file corrupted, `current` gone
    (root / "config" / "safety.yaml").write_text("max_linear_speed: 5.0\n")
    (root / "config" / "prometheus" / "rules.yml").unlink()
    conn = sqlite3.connect(root / "fleet.db")
    conn.execute("DELETE FROM tasks WHERE id > 10")
    conn.commit()
    conn.close()
    (root / "ota" / "releases" / "1.2.0" / "model" / "policy.pt").write_bytes(b"garbage")
    (root / "ota" / "current").unlink()

    restored = backup.restore_backup(cfg)
    assert restored["restored"] == {"config": 2, "database": 1, "release": 2}
    assert _tree(root / "config") == config_before
    assert _tree(root / "ota" / "releases" / "1.2.0") == release_before
    assert _dump(root / "fleet.db") == db_before
    assert restored["current_relinked"] and (root / "ota" / "current").resolve().name == "1.2.0"


def test_database_backed_up_while_written(site):
    cfg, root = site
    stop = threading.Event()

    def writer():
        conn = sqlite3.connect(root / "fleet.db", timeout=10)
        while not stop.is_set():
            conn.execute("INSERT INTO tasks (description) VALUES ('more')")
            conn.commit()
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        done = backup.full_backup(cfg, T0)
    finally:
        stop.set()
        thread.join()
    with tarfile.open(done["archive"]) as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith("databases/"))
        (root / "x").mkdir()
        (root / "x" / "copy.db").write_bytes(tar.extractfile(member).read())
    conn = sqlite3.connect(root / "x" / "copy.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] >= 500
    conn.close()


def test_corrupted_archive_refused_and_nothing_changed(site):
    cfg, root = site
    archive = Path(backup.full_backup(cfg, T0)["archive"])
    (root / "config" / "safety.yaml").write_text("edited\n")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(TaskFailed, match="sha256"):
        backup.restore_backup(cfg, archive.name)
    assert (root / "config" / "safety.yaml").read_text() == "edited\n"


def test_archive_pointing_outside_the_configured_places_is_refused(site, tmp_path):
    cfg, root = site
    archive = Path(backup.full_backup(cfg, T0)["archive"])
    other = build_config(MaintenanceConfig, {"db_urls": [], "config_dir": str(tmp_path / "elsewhere"),
                                             "releases_dir": str(tmp_path / "ota2"), "backup_dir": cfg.backup_dir})
    (root / "config" / "safety.yaml").write_text("edited\n")
    with pytest.raises(TaskFailed, match="outside"):
        backup.restore_backup(other, archive.name)
    assert (root / "config" / "safety.yaml").read_text() == "edited\n"


def test_retention_and_names(site):
    cfg, _root = site
    names = [Path(backup.full_backup(cfg, T0 + 86400 * i)["archive"]).name for i in range(4)]
    kept = [p.name for p in backup.archives(Path(cfg.backup_dir))]
    assert kept == names[-2:]
    with pytest.raises(TaskFailed, match="no backup named"):
        backup.restore_backup(cfg, names[0])
    assert backup.restore_backup(cfg, names[2])["archive"].endswith(names[2])


def test_no_release_no_config_is_not_an_error(tmp_path):
    cfg = build_config(MaintenanceConfig, {"db_urls": [f"sqlite:///{tmp_path}/none.db"],
                                           "releases_dir": str(tmp_path / "ota"),
                                           "backup_dir": str(tmp_path / "b")})
    done = backup.full_backup(cfg, T0)
    assert done["files"] == 0 and len(done["skipped"]) == 2
    assert backup.restore_backup(cfg)["restored"] == {"config": 0, "database": 0, "release": 0}


def test_database_whose_name_needs_escaping(tmp_path):
    db = tmp_path / "fleet?mode=rw#1.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (42)")
    conn.commit()
    conn.close()
    before = _dump(db)
    cfg = build_config(MaintenanceConfig, {"db_urls": [f"sqlite:///{db}"], "releases_dir": str(tmp_path / "ota"),
                                           "backup_dir": str(tmp_path / "b")})
    assert backup.full_backup(cfg, T0)["by_kind"]["database"] == 1
    db.unlink()
    backup.restore_backup(cfg)
    assert _dump(db) == before
