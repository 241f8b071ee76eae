"""A real PostgreSQL server for vla_fleet's unit tests (vla_msgs.launching.postgres_server: Debian's binaries on
loopback in a temporary directory, no system service), once per session; `postgres_url` gives each test a
fresh database. Skipped, and reported as skipped, where the server binaries are not installed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from vla_msgs import launching

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of the session's server's `postgres` database."""
    if not launching.have_postgres():
        pytest.skip(f"PostgreSQL server binaries not in {launching.POSTGRES_BIN} (Debian package postgresql)")
    with launching.postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's server."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"
