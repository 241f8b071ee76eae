"""full_backup and restore_backup of a PostgreSQL task store on a real server (loopback, conftest's
postgres_server) with a password-authenticated role: the tasks come back exactly after rows were changed
and deleted, and a manager connected throughout sees them; a wrong password, an unreachable server or a
missing pg_dump fail that database's part only (the task ends `warning`, the rest is backed up); a
corrupted dump is refused by its checksum with the database untouched; the password never shows in a
report, a log line or the archive."""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import secrets
import sqlite3
import tarfile
from pathlib import Path

import pytest

from vla_fleet.maintenance import backup, pgdump
from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.maintenance.layout import TaskFailed, sha256_file
from vla_fleet.maintenance.runner import WARNING, MaintenanceRunner
from vla_fleet.store import CANCELLED, SUCCEEDED, open_store
from vla_monitoring.config import build_config
from vla_msgs.launching import free_port
from vla_msgs.waiting import wait_until

T0 = 1_790_000_000.0
TABLES = {"tasks": "seq", "attempts": "task_id, attempt", "history": "id", "coordination": "task_id, slot"}
_roles = itertools.count()


def _password_database(admin_url: str) -> tuple[str, str]:
    """A new role that must give its password (a pg_hba line of its own before the session's `trust`
    lines) and a database it owns: (its URL with the password, the password)."""
    import psycopg

    role, password = f"maint_{os.getpid()}_{next(_roles)}", secrets.token_urlsafe(18)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {role} OWNER {role}")
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        conn.execute("SELECT pg_reload_conf()")
    host = admin_url.split("@", 1)[1].rsplit("/", 1)[0]

    def refused() -> bool:
        try:
            psycopg.connect(f"postgresql://{role}:wrong@{host}/{role}", connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            return "password authentication failed" in str(exc)
        return False

    wait_until(refused, 30.0, "the server to ask the new role for its password")
    return f"postgresql://{role}:{password}@{host}/{role}", password


def _rows(url: str) -> dict[str, list[tuple]]:
    import psycopg

    with psycopg.connect(url) as conn:
        out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall() for t, key in TABLES.items()}
        out["next_seq"] = conn.execute("SELECT last_value FROM tasks_seq_seq").fetchall()
        out["indexes"] = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                                      "ORDER BY indexname").fetchall()
    return out


def _fill(url: str, n: int) -> None:
    store = open_store(url)
    try:
        ids = [store.submit(f"go to shelf {i}", i % 5, T0 + i, location=(float(i), 1.0)).id for i in range(n)]
        store.submit_once("inspect dock", 3, T0, submit_key="nightly-42", submit_digest="d" * 64)
        claimed = store.assign_round(lambda pending, busy: [(pending[k].id, f"robot_{k}") for k in range(3)],
                                     "m1", T0 + n, 10)
        for k, task in enumerate(claimed):
            store.mark_running(task.id, f"robot_{k}", T0 + n + 1)
        store.finish(claimed[0].id, "robot_0", SUCCEEDED, "", T0 + n + 2)
        store.cancel(ids[-1], "operator", T0 + n + 3)
        assert store.count(CANCELLED) == 1
    finally:
        store.close()


def _config(tmp_path: Path, db_urls: list[str], **extra) -> MaintenanceConfig:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "safety.yaml").write_text("max_linear_speed: 0.5\n")
    return build_config(MaintenanceConfig, {"db_urls": db_urls, "config_dir": str(config),
                                            "releases_dir": str(tmp_path / "ota"),
                                            "backup_dir": str(tmp_path / "backups")} | extra)


def _manifest(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        return json.loads(tar.extractfile(backup.MANIFEST).read())


def _damage(url: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM tasks WHERE seq % 3 = 0")
        conn.execute("UPDATE tasks SET priority = 99, description = 'changed'")
        conn.execute("DELETE FROM history")
        conn.execute("DELETE FROM attempts")


def test_tasks_back_exactly_after_restore_and_a_connected_manager_sees_them(postgres_server, tmp_path):
    url, password = _password_database(postgres_server)
    _fill(url, 200)
    before = _rows(url)
    assert len(before["tasks"]) == 201 and before["attempts"] and before["history"]
    cfg = _config(tmp_path, [url])

    done = backup.full_backup(cfg, T0)
    assert done["by_kind"]["database"] == 1 and done["problems"] == [] and done["skipped"] != []
    manifest = _manifest(Path(done["archive"]))
    (entry,) = [e for e in manifest["files"] if e["kind"] == "database"]
    assert entry["member"].endswith(pgdump.SUFFIX) and entry["origin"] == pgdump.public_url(url)
    assert password not in entry["origin"] and url.replace(f":{password}", "") == entry["origin"]

    live = open_store(url)  # a fleet manager connected across the restore (its statements prepared by now)
    try:
        for _ in range(6):
            assert len(live.list_tasks()) == 201
        _damage(url)
        live.submit("made after the backup", 1, T0 + 999)
        assert _rows(url) != before

        restored = backup.restore_backup(cfg)
        assert restored["restored"] == {"config": 1, "database": 1, "release": 0}
        assert _rows(url) == before
        assert sorted(t.id for t in live.list_tasks()) == sorted(row[1] for row in before["tasks"])
        # the sequence came back too: a new task follows the restored ones
        assert live.submit("after the restore", 1, T0 + 1000).id not in {row[1] for row in before["tasks"]}
    finally:
        live.close()
    for details in (done, restored):
        assert password not in json.dumps(details)


def test_wrong_password_and_unreachable_server_fail_their_part_only(postgres_server, tmp_path, caplog):
    url, password = _password_database(postgres_server)
    wrong = url.replace(f":{password}@", ":not-the-password-7f3a@")
    unreachable = f"postgresql://nobody:secret-9c1d@127.0.0.1:{free_port()}/fleet"
    db = tmp_path / "fleet.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    cfg = _config(tmp_path, [wrong, f"sqlite:///{db}", unreachable])
    reports = []
    caplog.set_level(logging.DEBUG)
    runner = MaintenanceRunner({"full_backup": lambda _arg: backup.full_backup(cfg, T0)},
                               lambda task, status, details: reports.append((task, status, details)), 4)
    try:
        run, _ = runner.submit("full_backup")
        assert run.done.wait(120)
    finally:
        runner.stop()
    assert run.status == WARNING
    problems = run.details["problems"]
    assert len(problems) == 2
    assert pgdump.public_url(wrong) in problems[0] and "password authentication failed" in problems[0]
    assert pgdump.public_url(unreachable) in problems[1] and "pg_dump failed" in problems[1]
    assert "refused" in problems[1].lower() or "could not connect" in problems[1].lower()
    assert run.details["by_kind"] == {"config": 1, "database": 1, "release": 0}
    assert _manifest(Path(run.details["archive"]))["problems"] == problems
    said = json.dumps(reports) + caplog.text + json.dumps(_manifest(Path(run.details["archive"])))
    assert "not-the-password-7f3a" not in said and "secret-9c1d" not in said and password not in said


def test_missing_pg_dump_and_pg_restore(postgres_server, tmp_path):
    url, _ = _password_database(postgres_server)
    _fill(url, 5)
    empty = tmp_path / "no-tools"
    empty.mkdir()
    missing = _config(tmp_path, [url], pg_bin_dir=str(empty))
    done = backup.full_backup(missing, T0)
    assert done["by_kind"] == {"config": 1, "database": 0, "release": 0}
    assert done["problems"] == [f"database {pgdump.public_url(url)}: pg_dump not found in {empty} "
                                "(Debian package postgresql-client-15); not backed up"]

    archive = backup.full_backup(_config(tmp_path, [url]), T0 + 60)["archive"]
    (tmp_path / "config" / "safety.yaml").write_text("edited\n")
    with pytest.raises(TaskFailed, match="pg_restore not found"):
        backup.restore_backup(missing, Path(archive).name)
    assert (tmp_path / "config" / "safety.yaml").read_text() == "edited\n"  # refused before anything was put back


def test_corrupted_dump_refused_and_database_untouched(postgres_server, tmp_path):
    url, _ = _password_database(postgres_server)
    _fill(url, 50)
    cfg = _config(tmp_path, [url])
    archive = Path(backup.full_backup(cfg, T0)["archive"])
    # a dump corrupted inside an archive whose own sha256 still matches: only the manifest's checksum can tell
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(archive, "w:gz") as tar:
        for m, data in members:
            if m.name.endswith(pgdump.SUFFIX):
                data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1:]
            tar.addfile(m, io.BytesIO(data))
    archive.with_name(archive.name + ".sha256").write_text(f"{sha256_file(archive)}  {archive.name}\n")
    _damage(url)
    damaged = _rows(url)
    with pytest.raises(TaskFailed, match=r"\.pgdump fails its sha256"):
        backup.restore_backup(cfg)
    assert _rows(url) == damaged


def test_a_failing_restore_leaves_the_database_as_it_was(postgres_server, tmp_path):
    import psycopg

    url, _ = _password_database(postgres_server)
    _fill(url, 50)
    cfg = _config(tmp_path, [url])
    backup.full_backup(cfg, T0)
    _damage(url)
    with psycopg.connect(url) as conn:  # an object the dump does not know depends on a table it drops
        conn.execute("CREATE VIEW robots_busy AS SELECT robot_id FROM tasks WHERE robot_id <> ''")
    damaged = _rows(url)
    with pytest.raises(TaskFailed, match=r"(?s)pg_restore failed .*depend.*that database is unchanged"):
        backup.restore_backup(cfg)
    assert _rows(url) == damaged


def test_a_lock_held_too_long_fails_dump_and_restore_in_time_and_leaves_no_lock(postgres_server, tmp_path):
    import psycopg

    url, _ = _password_database(postgres_server)
    _fill(url, 20)
    cfg = _config(tmp_path, [url], pg_timeout_s=6.0)  # pg_dump's lock wait gives up after 3 s
    backup.full_backup(cfg, T0)
    with psycopg.connect(url) as migration:  # a transaction left open with the table locked (a migration)
        migration.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
        done = backup.full_backup(cfg, T0 + 60)
    assert done["by_kind"]["database"] == 0 and "pg_dump failed" in done["problems"][0]
    assert "LOCK TABLE public.tasks" in done["problems"][0]  # pg_dump names the lock it waited for
    _damage(url)
    damaged = _rows(url)

    def tasks_readable() -> bool:
        with psycopg.connect(url) as other:
            other.execute("SET lock_timeout = '1s'")
            try:
                return other.execute("SELECT count(*) FROM tasks").fetchone() is not None
            except psycopg.errors.LockNotAvailable:
                return False

    # a manager's transaction that read the attempts and did not end: pg_restore --clean drops the indexes of
    # tasks, history and coordination (locking those tables) before the attempts' key, where it waits
    with psycopg.connect(url) as manager:
        manager.execute("SELECT count(*) FROM attempts").fetchone()
        with pytest.raises(TaskFailed, match="pg_restore did not finish within 6 s"):
            backup.restore_backup(cfg, Path(backup.archives(Path(cfg.backup_dir))[0]).name)
        # the killed pg_restore's session went with it: the tables it had locked are free again while the
        # manager's transaction still runs
        wait_until(tasks_readable, 20.0, "the killed restore's locks on tasks to be released")
    assert _rows(url) == damaged


def test_restore_only_into_a_configured_database(postgres_server, tmp_path):
    url, password = _password_database(postgres_server)
    _fill(url, 5)
    backup.full_backup(_config(tmp_path, [url]), T0)
    other, _ = _password_database(postgres_server)
    _damage(url)
    damaged = _rows(url)
    with pytest.raises(TaskFailed, match="outside"):
        backup.restore_backup(_config(tmp_path, [other]))
    assert _rows(url) == damaged
    # the same database under a new password (and the other URL form) is the same origin
    import psycopg

    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {url.split('//')[1].split(':')[0]} PASSWORD 'rotated-{password}'")
    rotated = url.replace("postgresql://", "postgres://").replace(f":{password}@", f":rotated-{password}@")
    assert backup.restore_backup(_config(tmp_path, [rotated]))["restored"]["database"] == 1


def test_pg_dump_found_in_debian_folder_without_path(monkeypatch):
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_dump")):
        pytest.skip("Debian's postgresql-client is not installed")
    monkeypatch.setenv("PATH", "/nonexistent")
    tool = pgdump.find_tool("pg_dump")
    assert tool is not None and tool.parent.parent.parent == Path("/usr/lib/postgresql")


def test_public_url_drops_the_password():
    assert pgdump.public_url("postgresql://u:p%40ss@h:5/db?sslmode=require&password=x") == \
        "postgresql://u@h:5/db?sslmode=require"
    assert pgdump.public_url("postgres://h/db") == "postgres://h/db"


def test_no_password_on_a_command_line():
    url = "postgresql://fleet:pw-on-no-line@db.example:5433/fleet?sslmode=require"
    db = pgdump.target(url)
    assert db.password == "pw-on-no-line" and db.public == "postgresql://fleet@db.example:5433/fleet?sslmode=require"
    for argv in (pgdump.dump_argv(Path("pg_dump"), db, Path("out"), 60.0),
                 pgdump.restore_argv(Path("pg_restore"), db, Path("in"))):
        line = " ".join(argv)
        assert "pw-on-no-line" not in line and "--no-password" in argv and "dbname=fleet" in line
