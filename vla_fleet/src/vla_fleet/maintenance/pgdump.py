"""PostgreSQL databases in a backup: Debian's `pg_dump` (custom format: one transaction's snapshot) and
`pg_restore` (one transaction), run as child processes with a timeout.

A URL's password reaches the child only through its environment (PGPASSWORD): the command line carries a
conninfo string without it, and every text this module hands back (names, reasons, the child's stderr)
names the database by its public URL, the password left out.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from vla_fleet.maintenance.layout import TaskFailed, version_key

SCHEMES = ("postgresql://", "postgres://")
DEBIAN_BINS = "/usr/lib/postgresql/*/bin"   # Debian's postgresql-client-<version> (pg_dump, pg_restore)
CONNECT_TIMEOUT_S = 10                       # a host that does not answer fails this task, not the whole backup
MAX_REASON_CHARS = 1000
LOCK_SHARE = 0.5   # of the timeout pg_dump's lock wait may take: another client's lock is reported as such
# The server checks this often [ms] that the client is still there, also while it waits for a lock: a tool
# killed at its timeout leaves no session behind holding the locks it took (a dump's own SETs reset
# lock_timeout and statement_timeout to 0 in pg_restore's session, so those cannot bound its waits).
CLIENT_CHECK_MS = 1000
SUFFIX = ".pgdump"                           # a dump's name in a backup archive


def is_postgresql(url: str) -> bool:
    return url.startswith(SCHEMES)


def public_url(url: str) -> str:
    """The URL without its password (in the user part or a `password=` query parameter): what reports,
    manifests and logs may show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{hostport}"
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("password="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class Target:
    """One database as the client tools are given it."""

    conninfo: str            # keyword=value, no password: the only part on a command line
    password: str | None     # to the child's environment only
    public: str              # public_url: how the database is named everywhere else
    identity: tuple          # the connection parameters but the password: the same database, whatever the URL form
    dbname: str


def target(url: str) -> Target:
    """The parts of a postgresql:// URL; TaskFailed (naming the public URL) when libpq cannot read it."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    public = public_url(url)
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except ProgrammingError:
        # libpq's message may quote the URL, password and all: it is not passed on
        raise TaskFailed(f"database {public}: not a URL libpq can read") from None
    password = params.pop("password", None)
    conninfo = make_conninfo(**params)
    return Target(conninfo, password, public, tuple(sorted(params.items())),
                  params.get("dbname") or params.get("user") or "postgres")


def find_tool(name: str, bin_dir: str = "") -> Path | None:
    """`bin_dir/name` when bin_dir is given; otherwise `name` on PATH, else the newest Debian version's."""
    if bin_dir:
        path = Path(os.path.expanduser(bin_dir)) / name
        return path if path.is_file() and os.access(path, os.X_OK) else None
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    found = [Path(d) / name for d in glob.glob(DEBIAN_BINS) if (Path(d) / name).is_file()]
    return max(found, key=lambda p: version_key(p.parent.parent.name), default=None)


def _tool(name: str, bin_dir: str, db: Target) -> Path:
    tool = find_tool(name, bin_dir)
    if tool is None:
        where = bin_dir or f"PATH or {DEBIAN_BINS}"
        raise TaskFailed(f"database {db.public}: {name} not found in {where} (Debian package postgresql-client-15)")
    return tool


def _run(argv: list[str], db: Target, what: str, timeout_s: float) -> None:
    env = dict(os.environ)
    env.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_S))
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c client_connection_check_interval={CLIENT_CHECK_MS}".strip()
    if db.password is not None:
        env["PGPASSWORD"] = db.password
    try:
        # -w in argv: never a password prompt; stdin closed; killed on timeout (the server then rolls back)
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        raise TaskFailed(f"database {db.public}: {what} did not finish within {timeout_s:g} s; stopped") from None
    except OSError as exc:
        raise TaskFailed(f"database {db.public}: cannot run {what}: {exc}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        if db.password:
            err = err.replace(db.password, "***")
        if len(err) > MAX_REASON_CHARS:
            err = "..." + err[-MAX_REASON_CHARS:]
        raise TaskFailed(f"database {db.public}: {what} failed (exit {proc.returncode}): {err or 'no message'}")


def _lock_ms(timeout_s: float) -> int:
    return max(1, int(timeout_s * LOCK_SHARE * 1000))


def dump(url: str, out: Path, timeout_s: float, bin_dir: str = "") -> Target:
    """pg_dump -Fc of the URL's database into out (uncompressed: the archive gzips it once); TaskFailed with
    pg_dump's own message otherwise."""
    db = target(url)
    _run(dump_argv(_tool("pg_dump", bin_dir, db), db, out, timeout_s), db, "pg_dump", timeout_s)
    return db


def dump_argv(tool: Path, db: Target, out: Path, timeout_s: float) -> list[str]:
    """pg_dump's command line (no password on it: -w, and the conninfo holds none)."""
    return [str(tool), "--format=custom", "--compress=0", "--no-password",
            # a table locked exclusively (a migration) fails the dump in time rather than hanging it
            f"--lock-wait-timeout={_lock_ms(timeout_s)}", f"--file={out}", f"--dbname={db.conninfo}"]


def restore_argv(tool: Path, db: Target, dump_file: Path) -> list[str]:
    """pg_restore's command line (no password on it)."""
    return [str(tool), "--clean", "--if-exists", "--single-transaction", "--exit-on-error", "--no-password",
            f"--dbname={db.conninfo}", str(dump_file)]


def restore(url: str, dump_file: Path, timeout_s: float, bin_dir: str = "") -> None:
    """pg_restore --clean --if-exists --single-transaction of dump_file into the URL's database: the objects in
    the dump are dropped and recreated with their rows in one transaction, so a failure leaves the database
    as it was and clients see either the old or the restored rows. TaskFailed with pg_restore's message."""
    db = target(url)
    argv = restore_argv(_tool("pg_restore", bin_dir, db), db, dump_file)
    _run(argv, db, "pg_restore", timeout_s)


def check_tool(name: str, bin_dir: str, url: str) -> None:
    """TaskFailed when the tool for url is missing (a restore checks before it puts anything back)."""
    _tool(name, bin_dir, target(url))
