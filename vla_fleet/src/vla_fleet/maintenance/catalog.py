"""The seven maintenance tasks bound to one config and the host's clocks: name -> fn(argument) -> details.

Two clocks: `ros_now` (ROS time: what vla_logs entries are stamped with) and `wall_now` (file times, archive
names: files outlive any ROS clock).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vla_fleet.maintenance import backup, deep, health, logs, performance, security
from vla_fleet.maintenance.config import MaintenanceConfig
from vla_fleet.maintenance.layout import expand
from vla_fleet.maintenance.runner import TaskFn


def build_tasks(cfg: MaintenanceConfig, probes: health.HealthProbes, ros_log_dir: Path,
                protected_logs: Callable[[], list[Path]], ros_now: Callable[[], float],
                wall_now: Callable[[], float]) -> dict[str, TaskFn]:
    log_dirs = [ros_log_dir] + [expand(d) for d in cfg.log_dirs]
    return {
        "health_check": lambda _arg: health.health_check(cfg, probes),
        "log_cleanup": lambda _arg: logs.log_cleanup(cfg, log_dirs, protected_logs(), wall_now()),
        "full_backup": lambda _arg: backup.full_backup(cfg, wall_now()),
        "performance_review": lambda _arg: performance.performance_review(cfg, ros_now(), wall_now()),
        "deep_maintenance": lambda _arg: deep.deep_maintenance(cfg, wall_now()),
        "security_scan": lambda _arg: security.security_scan(cfg),
        "restore_backup": lambda arg: backup.restore_backup(cfg, arg),
    }
