"""Starting and stopping ROS processes from the demo, benchmarks and test tools, in one place.

`free_port()` finds a loopback port for a private master; `ProcessGroup` runs a command in a
session of its own and stops the whole group (roslaunch, rosmaster and every node) with SIGINT,
then SIGTERM, then SIGKILL, so nothing is orphaned to load the next run. `postgres_server()` runs a
throwaway PostgreSQL server for the fleet's tests and benchmarks. `python -m vla_msgs.launching
free_url` prints a URL on a free loopback port for a launch file's `<param command=...>`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, grace_s: Sequence[float] = (20.0, 5.0, 5.0)) -> None:
    """Stops `proc`'s whole process group: SIGINT, SIGTERM, SIGKILL, each given its grace period."""
    for sig, wait_s in zip((signal.SIGINT, signal.SIGTERM, signal.SIGKILL), grace_s, strict=False):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        break
    # The leader is gone; a child that ignored its signal may still hold the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class ProcessGroup:
    """A command in its own session, its output in `log`; `stop()` ends every process it started."""

    def __init__(self, cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None):
        self.cmd = list(cmd)
        self.log = Path(log)
        self._fh = self.log.open("w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._fh, stderr=subprocess.STDOUT,
                                     env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: Sequence[float] = (20.0, 5.0, 5.0)) -> int | None:
        stop_group(self.proc, grace_s)
        self._fh.close()
        return self.proc.returncode

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def roslaunch(package: str, launch_file: str, args: Mapping[str, object], log: Path,
              port: int | None = None) -> tuple[ProcessGroup, str]:
    """`roslaunch -p PORT package launch_file k:=v ...` on a master of its own; returns it and its URI."""
    port = free_port() if port is None else port
    uri = f"http://127.0.0.1:{port}"
    cmd = ["roslaunch", "-p", str(port), package, launch_file, *(f"{k}:={v}" for k, v in args.items())]
    return ProcessGroup(cmd, log, env=dict(os.environ, ROS_MASTER_URI=uri)), uri


POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian 12's `postgresql` server binaries


def have_postgres() -> bool:
    """Whether the PostgreSQL server binaries that `postgres_server` runs are installed."""
    return (POSTGRES_BIN / "initdb").exists()


@contextlib.contextmanager
def postgres_server(fsync: bool = False) -> Iterator[str]:
    """A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, a cluster in a temporary
    directory, listening on a free loopback port (no system service); yields the URL of its `postgres`
    database (superuser `vla`, trust on loopback) and removes everything on exit. As root the server runs
    as the `postgres` user, since PostgreSQL refuses to run as root. `fsync=False` (tests) skips the
    flushes whose durability is not under test."""
    root = Path(tempfile.mkdtemp(prefix="vla_pg_"))
    user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if user:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    pg_ctl = [*user, str(POSTGRES_BIN / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*user, str(POSTGRES_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "vla"],
                       check=True, capture_output=True, timeout=120)
        options = f"-h 127.0.0.1 -p {port} -k {root}" + ("" if fsync else " -F")
        subprocess.run([*pg_ctl, "-l", str(root / "log"), "-w", "-t", "60", "-o", options, "start"],
                       check=True, capture_output=True, timeout=120)
        yield f"postgresql://vla@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    """`free_url`: http://127.0.0.1:<free port>, without a newline (roslaunch keeps a command's output
    as it is), so that a rostest's node is given a port its test then starts a server on."""
    if list(argv) != ["free_url"]:
        sys.stderr.write("usage: python -m vla_msgs.launching free_url\n")
        return 2
    sys.stdout.write(f"http://127.0.0.1:{free_port()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
