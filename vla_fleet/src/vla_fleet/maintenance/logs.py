"""log_cleanup: ROS's log folder and the suite's log folders kept within an age and a size budget.

Plain files older than `log_compress_after_days` are gzip-compressed (their time kept), files older than
`log_max_age_days` deleted, and while all folders together exceed `log_max_total_mb` the oldest files go
first. Never touched: anything under a protected folder (the running ROS session: `latest` and the
/run_id folder), a file written within `log_min_idle_s` (in use), links. File ages are wall-clock ages
(files outlive any ROS clock); `now_s` is injected.
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vla_fleet.maintenance.config import MaintenanceConfig

DAY_S = 86400.0
MAX_FILES = 1_000_000   # files looked at per run at most (a runaway folder cannot take the node's memory)


def ros_log_dir(env: dict[str, str]) -> Path:
    """Where roslaunch and rospy write their logs: ROS_LOG_DIR, else $ROS_HOME/log, else ~/.ros/log."""
    if env.get("ROS_LOG_DIR"):
        return Path(env["ROS_LOG_DIR"]).expanduser()
    return Path(env.get("ROS_HOME") or os.path.expanduser("~/.ros")).expanduser() / "log"


@dataclass
class _File:
    path: Path
    size: int
    mtime: float
    movable: bool   # may be compressed or deleted (not protected, not in use)


def _scan(root: Path, protected: list[Path], now_s: float, idle_s: float, out: list[_File]) -> None:
    for dirpath, dirnames, filenames in os.walk(root):  # links to folders are not followed
        here = Path(dirpath)
        held = any(here == p or p in here.parents for p in protected)
        for name in filenames:
            if len(out) >= MAX_FILES:
                return
            path = here / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if not path.is_file() or path.is_symlink():
                continue
            out.append(_File(path, st.st_size, st.st_mtime, not held and now_s - st.st_mtime >= idle_s))
        dirnames.sort()


def _compress(f: _File) -> int:
    """Gzips f beside itself (`.gz`), keeps its time, removes the plain file; the new size."""
    target = f.path.with_name(f.path.name + ".gz")
    part = target.with_name(target.name + ".part")
    try:
        with open(f.path, "rb") as src, gzip.open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.utime(part, (f.mtime, f.mtime))
        os.replace(part, target)
    except OSError:
        part.unlink(missing_ok=True)
        raise
    f.path.unlink()
    return target.stat().st_size


def log_cleanup(cfg: MaintenanceConfig, dirs: list[Path], protected: list[Path], now_s: float) -> dict:
    """Cleans `dirs`; details say what was compressed and deleted, and the space before and after."""
    protected = [p.resolve() for p in protected]
    files: list[_File] = []
    missing = []
    for d in dirs:
        if d.is_dir():
            _scan(d.resolve(), protected, now_s, cfg.log_min_idle_s, files)
        else:
            missing.append(str(d))
    before = sum(f.size for f in files)
    deleted: list[str] = []
    deleted_bytes = compressed_from = compressed_to = compressed = 0
    problems: list[str] = []
    kept: list[_File] = []
    for f in files:
        age_days = (now_s - f.mtime) / DAY_S
        try:
            if f.movable and age_days > cfg.log_max_age_days:
                f.path.unlink()
                deleted.append(str(f.path))
                deleted_bytes += f.size
                continue
            if f.movable and age_days > cfg.log_compress_after_days and not f.path.name.endswith((".gz", ".part")):
                new_size = _compress(f)
                compressed_from += f.size
                compressed_to += new_size
                compressed += 1
                f = _File(f.path.with_name(f.path.name + ".gz"), new_size, f.mtime, True)
        except OSError as exc:  # one file that cannot be handled (permissions, vanished) does not stop the rest
            problems.append(f"{f.path}: {exc}")
        kept.append(f)

    budget = cfg.log_max_total_mb * 1e6
    total = sum(f.size for f in kept)
    for f in sorted((f for f in kept if f.movable), key=lambda f: f.mtime):
        if total <= budget:
            break
        try:
            f.path.unlink()
        except OSError as exc:
            problems.append(f"{f.path}: {exc}")
            continue
        total -= f.size
        deleted.append(str(f.path))
        deleted_bytes += f.size
    if total > budget:
        problems.append(f"{total / 1e6:.1f} MB left, above the {cfg.log_max_total_mb:g} MB budget "
                        "(the rest is in use or protected)")
    removed_dirs = _remove_empty_dirs(dirs, protected)
    return {"dirs": [str(d) for d in dirs], "missing_dirs": missing, "files_seen": len(files),
            "compressed": {"files": compressed, "bytes_before": compressed_from,
                           "bytes_after": compressed_to},
            "deleted": {"files": len(deleted), "bytes": deleted_bytes, "paths": deleted[:50]},
            "empty_dirs_removed": removed_dirs, "bytes_before": before, "bytes_after": total,
            "problems": problems}


def _remove_empty_dirs(dirs: list[Path], protected: list[Path]) -> int:
    removed = 0
    for d in dirs:
        if not d.is_dir():
            continue
        for dirpath, _dirnames, _filenames in os.walk(d.resolve(), topdown=False):
            here = Path(dirpath)
            if here == d.resolve() or any(here == p or p in here.parents for p in protected):
                continue
            try:
                here.rmdir()  # only succeeds when empty
                removed += 1
            except OSError:
                continue
    return removed
