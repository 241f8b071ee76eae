"""vla_logs on disk: JSON lines in one active file, rotated by size and age into gzip archives, pruned.

ROS-free. `LogArchive` writes `<dir>/<stem>.jsonl`; when the next line would take it past `max_bytes`,
or it is older than `rotate_interval_s`, it becomes `<stem>.<UTC time>Z.jsonl.gz`. Archives older than
`max_age_s`, beyond `max_archives`, or beyond `max_total_bytes` together (oldest first) are deleted, so
the disk used is bounded by `max_bytes + max_total_bytes` whatever the rate or the uptime.
`ArchiveWriter` puts the writing on a thread of its own behind a bounded queue, so a slow disk never
holds up a subscriber callback: a full queue drops the entry and counts it.

File times are wall-clock times (files outlive any ROS clock), injected for tests.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import math
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

LOG = logging.getLogger(__name__)
_ARCHIVE_TIME = "%Y%m%dT%H%M%S.%f"
_PRUNE_PERIOD_S = 60.0
_ERROR_LOG_PERIOD_S = 10.0


class LogArchive:
    """The active file and its archives; not thread-safe (ArchiveWriter serialises the calls)."""

    def __init__(self, directory: str | Path, stem: str, *, max_bytes: int, rotate_interval_s: float,
                 max_age_s: float, max_archives: int, max_total_bytes: int, compresslevel: int = 6,
                 clock: Callable[[], float] = time.time):
        self.directory = Path(os.path.expanduser(str(directory)))
        self.stem = stem
        self.max_bytes = max_bytes
        self.rotate_interval_s = rotate_interval_s
        self.max_age_s = max_age_s
        self.max_archives = max_archives
        self.max_total_bytes = max_total_bytes
        self.compresslevel = compresslevel
        self.clock = clock
        self.path = self.directory / f"{stem}.jsonl"
        self._archive_re = re.compile(re.escape(stem) + r"\.(\d{8}T\d{6}\.\d{6})Z(-\d+)?\.jsonl(\.gz)?$")
        self._fh = None
        self._size = 0
        self._opened_s = 0.0
        self._pruned_s = 0.0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._open()

    # ---------------------------------------------------------------- writing
    def _open(self) -> None:
        self._fh = self.path.open("ab")
        self._size = self._fh.tell()
        self._opened_s = self.clock()

    def write(self, line: str) -> None:
        """Appends one line (a newline is added); rotates first when the line would not fit or the file is old."""
        data = line.encode("utf-8") + b"\n"
        if self._fh is None:  # an earlier rotation could not reopen the file (disk trouble): try again
            self._open()
        if self._size and (self._size + len(data) > self.max_bytes or self._age_due()):
            self.rotate()
        self._fh.write(data)
        self._size += len(data)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def _age_due(self) -> bool:
        return self.clock() - self._opened_s >= self.rotate_interval_s

    def tick(self) -> None:
        """Rotates an old non-empty file even while nothing is written; prunes by age once a minute."""
        if self._size and self._age_due():
            self.rotate()
        elif self.clock() - self._pruned_s >= _PRUNE_PERIOD_S:
            self.prune()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # ---------------------------------------------------------------- rotation
    def _archive_name(self, now_s: float) -> Path:
        stamp = dt.datetime.fromtimestamp(now_s, dt.UTC).strftime(_ARCHIVE_TIME)
        name = self.directory / f"{self.stem}.{stamp}Z.jsonl"
        n = 0
        while name.exists() or Path(f"{name}.gz").exists():
            n += 1
            name = self.directory / f"{self.stem}.{stamp}Z-{n}.jsonl"
        return name

    def rotate(self) -> Path | None:
        """Closes the active file, compresses it into a new archive, opens a fresh file, prunes; the archive."""
        self.close()
        archive = None
        if self.path.exists() and self.path.stat().st_size:
            plain = self._archive_name(self.clock())
            os.replace(self.path, plain)
            archive = self._compress(plain)
        self._open()
        self.prune()
        return archive

    def _compress(self, plain: Path) -> Path | None:
        target = Path(f"{plain}.gz")
        part = Path(f"{target}.part")
        try:
            with plain.open("rb") as src, gzip.open(part, "wb", compresslevel=self.compresslevel) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(part, target)
        except OSError as exc:  # disk full or gone: keep the plain file, it is pruned like any archive
            LOG.error("could not compress %s: %s", plain, exc)
            part.unlink(missing_ok=True)
            return plain
        plain.unlink()
        return target

    def _recover(self) -> None:
        """What a crash left: half-written .part files go, plain archives are compressed, and a non-empty
        active file from an earlier run becomes an archive (each file's age then starts with this run)."""
        for part in self.directory.glob(f"{self.stem}.*.part"):
            part.unlink(missing_ok=True)
        for plain in self.archives():
            if plain.suffix == ".jsonl":
                self._compress(plain)
        if self.path.exists() and self.path.stat().st_size:
            plain = self._archive_name(self.clock())
            os.replace(self.path, plain)
            self._compress(plain)
        self.prune()

    # ---------------------------------------------------------------- retention
    def archives(self) -> list[Path]:
        """Every archive of this stem, oldest first."""
        found = [p for p in self.directory.iterdir() if self._archive_re.match(p.name)]
        return sorted(found, key=self._order)

    def _order(self, path: Path) -> tuple[str, int]:
        stamp, suffix = self._archive_re.match(path.name).group(1, 2)
        return stamp, int(suffix[1:]) if suffix else 0

    def _archive_time(self, path: Path) -> float:
        stamp = self._archive_re.match(path.name).group(1)
        return dt.datetime.strptime(stamp, _ARCHIVE_TIME).replace(tzinfo=dt.UTC).timestamp()

    def prune(self) -> list[Path]:
        """Deletes archives past the age, count and total-size limits, oldest first; the deleted paths."""
        archives = self.archives()
        now = self._pruned_s = self.clock()
        doomed = [p for p in archives if now - self._archive_time(p) > self.max_age_s]
        kept = [p for p in archives if p not in doomed]
        sizes = {p: p.stat().st_size for p in kept}
        total = sum(sizes.values())
        while kept and (len(kept) > self.max_archives or total > self.max_total_bytes):
            oldest = kept.pop(0)
            total -= sizes[oldest]
            doomed.append(oldest)
        for p in doomed:
            p.unlink(missing_ok=True)
        if doomed:
            LOG.info("log archive: deleted %d old archive(s) of %s", len(doomed), self.stem)
        return doomed

    def disk_bytes(self) -> int:
        """Bytes used by the active file and every archive."""
        total = self._size
        for p in self.archives():
            try:
                total += p.stat().st_size
            except FileNotFoundError:  # pruned meanwhile
                continue
        return total


class ArchiveWriter:
    """Feeds a LogArchive from a bounded queue on its own thread; `submit` never blocks."""

    def __init__(self, archive: LogArchive, queue_size: int, tick_s: float = 1.0):
        self.archive = archive
        self.dropped = 0        # entries refused because the queue was full
        self.written = 0
        self.errors = 0         # entries lost to a write error (disk full, folder gone)
        self.last_error = ""
        self._logged_s = -math.inf
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=queue_size)
        self._tick_s = tick_s
        self._thread = threading.Thread(target=self._run, name="log_archive", daemon=True)
        self._thread.start()

    def submit(self, line: str) -> bool:
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            try:
                line = self._queue.get(timeout=self._tick_s)
            except queue.Empty:
                self._guard(self.archive.tick)
                continue
            batch = [line]
            # Drain what is already queued, then flush once: one syscall per burst, not per line.
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for item in batch:
                if item is None:
                    self._guard(self.archive.flush)
                    self._guard(self.archive.close)
                    self._queue.task_done()
                    return
                if self._guard(self.archive.write, item):
                    self.written += 1
                else:
                    self.errors += 1
                self._queue.task_done()
            self._guard(self.archive.flush)

    def _guard(self, fn: Callable, *args) -> bool:
        try:
            fn(*args)
        except (OSError, ValueError) as exc:  # the node outlives a full or vanished disk; the counts say so
            self.last_error = f"{type(exc).__name__}: {exc}"
            # Throttled: a node's log reaches vla_logs, whose entries come back here to be written.
            now = time.monotonic()
            if now - self._logged_s >= _ERROR_LOG_PERIOD_S:
                self._logged_s = now
                LOG.error("log archive: %s (%d entries lost so far)", self.last_error, self.errors + 1)
            return False
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Waits until everything submitted so far is written and flushed; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Writes what is queued, closes the file and ends the thread."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            LOG.error("log archive: queue still full after %.0f s at close; %d entries not written",
                      timeout_s, self._queue.qsize())
            return
        self._thread.join(timeout_s)
