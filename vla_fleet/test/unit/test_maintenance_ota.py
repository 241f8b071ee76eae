"""Maintenance on a release made and installed by the OTA code itself (`vla_fleet.release build`, the updater's
`unpack` into `releases/<version>/`, `current` a relative link): security_scan finds it clean and then each
tampering, full_backup carries it and restore_backup brings it back byte-identical, deep_maintenance prunes
as the updater would."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from vla_fleet import release
from vla_fleet.maintenance import backup, deep, security
from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.ota.package import Caps, unpack
from vla_fleet.ota.signing import keygen
from vla_monitoring.config import build_config


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def installed(tmp_path: Path):
    private, _public = keygen(tmp_path / "keys")
    ota = tmp_path / "ota"
    for version in ("1.0.0", "1.1.0", "1.2.0", "2.0.0"):
        source = tmp_path / f"src-{version}"
        (source / "model").mkdir(parents=True)
        (source / "model" / "policy.pt").write_bytes(version.encode() * 5000)
        (source / "model" / "policy.json").write_text(f'{{"version": "{version}"}}')
        (source / "config").mkdir()
        (source / "config" / "safety.yaml").write_text("max_linear_speed: 0.4\n")
        package = tmp_path / f"{version}.tar.gz"
        release.build(version, source, private, package)
        unpack(package, ota / "releases" / version, Caps())
    (ota / "current").symlink_to(Path("releases") / "2.0.0")
    cfg = build_config(MaintenanceConfig, {
        "releases_dir": str(ota), "backup_dir": str(tmp_path / "backups"), "db_urls": [],
        "scan_paths": [str(tmp_path / "keys")], "cache_dirs": [str(ota / "staging")], "keep_releases": 2})
    return cfg, ota / "releases" / "2.0.0"


def test_security_scan_of_an_installed_release(installed):
    cfg, current = installed
    clean = security.security_scan(cfg)
    assert clean["release"] == {"installed": "2.0.0", "version": "2.0.0", "files": 3, "problems": []}
    assert clean["problems"] == []     # keygen writes the private key 0600
    (current / "config" / "safety.yaml").write_text("max_linear_speed: 9.9\n")
    found = security.security_scan(cfg)["problems"]
    assert found == ["release 2.0.0: config/safety.yaml: sha256 differs from the manifest (modified)"]


def test_backup_and_restore_of_an_installed_release(installed):
    cfg, current = installed
    before = _tree(current)
    done = backup.full_backup(cfg, 1_790_000_000.0)
    assert done["release"] == "2.0.0" and done["by_kind"]["release"] == 4   # 3 files and the manifest
    shutil.rmtree(current)
    restored = backup.restore_backup(cfg)
    assert restored["restored"]["release"] == 4 and _tree(current) == before
    assert security.security_scan(cfg)["problems"] == []


def test_deep_maintenance_prunes_like_the_updater(installed):
    cfg, _current = installed
    (Path(cfg.releases_dir) / "current").unlink()
    (Path(cfg.releases_dir) / "current").symlink_to(Path("releases") / "1.1.0")   # rolled back
    out = deep.deep_maintenance(cfg, 1_790_000_000.0)
    assert sorted(out["releases_pruned"]) == ["1.0.0", "1.2.0"]
    assert out["releases_kept"] == ["1.1.0", "2.0.0"]
