"""A real PostgreSQL server for vla_fleet's unit tests: Debian's `postgresql` binaries, started on loopback in a
temporary directory (no system service), once per session; `postgres_url` gives each test a fresh database.

Skipped (and reported as skipped) where the server binaries are not installed. As root the server runs
as the `postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vla_msgs.launching import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_databases = itertools.count()


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running server's `postgres` database (superuser `vla`, trust on loopback)."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not in {PG_BIN} (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="vla_pg_"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    user = _as_server_user()
    subprocess.run([*user, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "vla"],
                   check=True, capture_output=True, timeout=120)
    # -F: no fsync, a test server's durability is not under test; -k: its socket in the temporary directory
    subprocess.run([*user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60",
                    "-o", f"-h 127.0.0.1 -p {port} -k {root} -F", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://vla@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's server."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"
