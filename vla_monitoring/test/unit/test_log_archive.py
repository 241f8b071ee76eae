"""The vla_logs archive: rotation by size and by age into gzip files that hold every line, retention by age,
count and total size, recovery after a crash, and a writer thread that never blocks and counts what it loses."""

import gzip
import json
import random
import threading

import pytest

from vla_monitoring.log_archive import ArchiveWriter, LogArchive

DAY = 86400.0


class Clock:
    def __init__(self, t: float = 1_750_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def archive(tmp_path, clock=None, **limits) -> LogArchive:
    kw = dict(max_bytes=1000, rotate_interval_s=DAY, max_age_s=30 * DAY, max_archives=100,
              max_total_bytes=10**9)
    kw.update(limits)
    return LogArchive(tmp_path, "robot_1", clock=clock or Clock(), **kw)


def line(i: int) -> str:
    return json.dumps({"timestamp": float(i), "type": "log", "message": f"entry {i:05d}"})


def every_line(a: LogArchive) -> list[str]:
    out = []
    for p in a.archives():
        with gzip.open(p, "rt") as fh:
            out += fh.read().splitlines()
    a.flush()
    return out + a.path.read_text().splitlines()


def test_size_rotation_compresses_and_keeps_every_line_in_order(tmp_path):
    clock = Clock()
    a = archive(tmp_path, clock)
    lines = [line(i) for i in range(100)]  # ~55 bytes each: ~6 archives of <= 1000 bytes
    for text in lines:
        clock.t += 0.001
        a.write(text)
    archives = a.archives()
    assert len(archives) >= 5
    assert all(p.name.startswith("robot_1.") and p.name.endswith("Z.jsonl.gz") for p in archives)
    assert every_line(a) == lines
    for p in archives:
        assert len(gzip.decompress(p.read_bytes())) <= 1000
    assert a.path.stat().st_size <= 1000


def test_age_rotation_on_write_and_on_tick(tmp_path):
    clock = Clock()
    a = archive(tmp_path, clock, max_bytes=10**6, rotate_interval_s=3600.0)
    a.write(line(1))
    clock.t += 3599.0
    a.write(line(2))
    assert a.archives() == []
    clock.t += 2.0
    a.write(line(3))  # the file is now older than an hour: archived before this line
    assert len(a.archives()) == 1
    clock.t += 3601.0
    a.tick()          # nothing written, but the hour has passed again
    assert len(a.archives()) == 2
    a.tick()          # an empty file is not archived
    assert len(a.archives()) == 2
    assert every_line(a) == [line(1), line(2), line(3)]


def test_retention_by_age_count_and_total_size(tmp_path):
    clock = Clock()
    a = archive(tmp_path, clock, max_bytes=100, max_age_s=10 * DAY, max_archives=5)
    for i in range(8):  # one archive a day
        a.write(line(i) + "x" * 60)
        clock.t += DAY
        a.rotate()
    assert len(a.archives()) == 5  # by count: the three oldest went
    clock.t += 8.5 * DAY  # the archives are now 12.5, 11.5, 10.5, 9.5 and 8.5 days old
    a.prune()
    assert len(a.archives()) == 2  # by age: older than 10 days
    total = sum(p.stat().st_size for p in a.archives())
    a.max_total_bytes = total - 1
    a.prune()
    assert len(a.archives()) == 1  # by total size, oldest first


def test_a_month_at_a_high_rate_stays_within_the_disk_bound(tmp_path):
    """30 days of entries, compressed and rotated: the active file plus archives never exceed the bound."""
    clock = Clock()
    bound = 200_000
    a = archive(tmp_path, clock, max_bytes=20_000, rotate_interval_s=DAY, max_archives=10_000,
                max_total_bytes=bound)
    rng = random.Random(0)
    for hour in range(30 * 24):  # a burst an hour stands for that hour's entries
        clock.t += 3600.0
        for i in range(40):
            # random digits compress about 2:1, so the month's archives would be ~8 x the bound without its limit
            a.write(line(hour * 40 + i) + f"{rng.getrandbits(128):032x}")
        if hour % 24 == 0:
            assert a.disk_bytes() <= bound + a.max_bytes
    assert a.archives() and a.disk_bytes() <= bound + a.max_bytes


def test_recovery_of_what_a_crash_left(tmp_path):
    clock = Clock()
    (tmp_path / "robot_1.jsonl").write_text(line(1) + "\n")
    (tmp_path / "robot_1.20240101T000000.000000Z.jsonl").write_text(line(0) + "\n")  # uncompressed archive
    (tmp_path / "robot_1.20240101T000001.000000Z.jsonl.gz.part").write_bytes(b"half")
    (tmp_path / "other.jsonl").write_text("not ours\n")
    a = archive(tmp_path, clock, max_age_s=10_000 * DAY)
    assert [p.suffix for p in a.archives()] == [".gz", ".gz"]
    assert not list(tmp_path.glob("*.part"))
    assert (tmp_path / "other.jsonl").read_text() == "not ours\n"
    a.write(line(2))
    assert every_line(a) == [line(0), line(1), line(2)]


def test_writer_writes_everything_submitted(tmp_path):
    w = ArchiveWriter(archive(tmp_path, max_bytes=2000), queue_size=10_000)
    for i in range(3000):
        assert w.submit(line(i))
    assert w.flush()
    assert (w.written, w.dropped, w.errors) == (3000, 0, 0)
    assert every_line(w.archive) == [line(i) for i in range(3000)]
    w.close()


def test_writer_never_blocks_and_counts_what_a_full_queue_drops(tmp_path):
    a = archive(tmp_path)
    gate = threading.Event()
    slow_write = a.write

    def blocked_write(text):
        gate.wait(10.0)
        slow_write(text)
    a.write = blocked_write
    w = ArchiveWriter(a, queue_size=5)
    accepted = sum(w.submit(line(i)) for i in range(50))  # the disk is stuck: the queue fills, submit returns
    assert accepted <= 6 and w.dropped == 50 - accepted
    gate.set()
    assert w.flush()
    assert w.written == accepted
    w.close()


def test_write_errors_are_counted_not_raised(tmp_path):
    a = archive(tmp_path)
    w = ArchiveWriter(a, queue_size=100)

    def failing_write(_text):
        raise OSError(28, "No space left on device")
    a.write = failing_write
    for i in range(3):
        w.submit(line(i))
    assert w.flush()
    assert w.errors == 3 and w.written == 0 and "No space left" in w.last_error
    w.close()


@pytest.mark.parametrize("stem", ["robot_1", "a.b"])
def test_archives_of_another_stem_are_left_alone(tmp_path, stem):
    other = tmp_path / "robot_10.20240101T000000.000000Z.jsonl.gz"
    other.write_bytes(gzip.compress(b"x\n"))
    a = LogArchive(tmp_path, stem, max_bytes=100, rotate_interval_s=DAY, max_age_s=1.0, max_archives=1,
                   max_total_bytes=1, clock=Clock())
    a.write(line(1) + "y" * 100)
    a.write(line(2))
    assert other.exists()
    assert all(p.name.startswith(stem + ".") for p in a.archives())
