"""maintenance_node's one config dataclass (config/maintenance_node.yaml mirrors it field by field).

Cron expressions are read on ROS time (the simulator's /clock in simulation) in `timezone`; an empty
expression switches that task's schedule off (it still runs on demand). Paths may start with `~`.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from vla_fleet.store import DEFAULT_DB_URL
from vla_monitoring.config import ConfigError, param

# The seed's schedule: daily health check and log cleanup, weekly backup and review, monthly deep maintenance
# and security scan, at night and staggered so that two never start together.
DEFAULT_SCHEDULE = {
    "health_check": "0 2 * * *",
    "log_cleanup": "30 2 * * *",
    "full_backup": "0 3 * * 0",
    "performance_review": "30 3 * * 0",
    "deep_maintenance": "0 4 1 * *",
    "security_scan": "30 4 1 * *",
}


@dataclass
class MaintenanceConfig:
    """Every parameter of maintenance_node."""

    # ---- schedule (cron, ROS time)
    health_check_cron: str = param(DEFAULT_SCHEDULE["health_check"], help="when health_check runs (cron; '' = off)")
    log_cleanup_cron: str = param(DEFAULT_SCHEDULE["log_cleanup"], help="when log_cleanup runs (cron; '' = off)")
    full_backup_cron: str = param(DEFAULT_SCHEDULE["full_backup"], help="when full_backup runs (cron; '' = off)")
    performance_review_cron: str = param(DEFAULT_SCHEDULE["performance_review"],
                                         help="when performance_review runs (cron; '' = off)")
    deep_maintenance_cron: str = param(DEFAULT_SCHEDULE["deep_maintenance"],
                                       help="when deep_maintenance runs (cron; '' = off)")
    security_scan_cron: str = param(DEFAULT_SCHEDULE["security_scan"], help="when security_scan runs (cron; '' = off)")
    timezone: str = param("UTC", nonempty=True, help="time zone the cron expressions are read in (IANA name)")
    poll_period_s: float = param(1.0, lo=0.01, hi=60.0, help="how often the schedule is looked at [s, ROS time]")
    state_file: str = param("~/.ros/vla_fleet/maintenance_state.json", nonempty=True,
                            help="when each task last ran on its schedule: a slot missed while the node was "
                                 "down runs at the next start")
    queue_size: int = param(16, lo=1, hi=1000, help="tasks waiting to run at most; more are refused")
    service_wait_s: float = param(10.0, lo=0.0, hi=600.0,
                                  help="run_task waits this long for the result before answering 'queued' "
                                       "[s, wall]")

    # ---- where things are (shared by several tasks)
    db_urls: list[str] = param([DEFAULT_DB_URL], items=str, nonempty=True, max_length=32,
                               help="databases backed up (sqlite:///<file>: online backup API; "
                                    "postgresql://user[:password]@host:port/db: pg_dump) and checked (SQLite)")
    config_dir: str = param("", help="configuration folder backed up ('' = none; fleet.launch gives the suite's "
                                     "config/)")
    releases_dir: str = param("~/.ros/vla_fleet/ota", nonempty=True,
                              help="OTA folder: releases/<version>/ and the current link (may be absent)")
    backup_dir: str = param("~/.ros/vla_fleet/backups", nonempty=True, help="where backup archives are kept")
    report_dir: str = param("~/.ros/vla_fleet/reports", nonempty=True,
                            help="where performance reviews are written as JSON")

    # ---- health_check
    expected_nodes: list[str] = param([], items=str, nonempty=True, max_length=256,
                                      help="nodes that must answer a ping (full names, /robot_1/safety_node)")
    topic_min_rates: list[str] = param([], items=str, nonempty=True, max_length=256,
                                       help="'<topic> <min Hz>' pairs: topics that must arrive at least this "
                                            "often")
    rate_window_s: float = param(10.0, lo=0.5, hi=3600.0, help="window the topic rates are measured over [s, ROS]")
    ping_timeout_s: float = param(2.0, lo=0.1, hi=60.0, help="wait for the master and each node at most [s]")
    disk_paths: list[str] = param(["~/.ros"], items=str, nonempty=True, max_length=64,
                                  help="file systems whose free space is checked")
    min_free_disk_percent: float = param(10.0, lo=0.0, hi=100.0, help="less free space than this is a problem [%]")
    max_clock_age_s: float = param(5.0, lo=0.1, hi=3600.0,
                                   help="under /use_sim_time, /clock silent this long is a problem [s, wall]")

    # ---- log_cleanup
    log_dirs: list[str] = param(["~/.ros/vla_logs"], items=str, nonempty=True, max_length=64,
                                help="the suite's log folders, besides ROS's own log folder")
    log_compress_after_days: float = param(1.0, lo=0.0, hi=3650.0,
                                           help="plain log files older than this are gzip-compressed [days]")
    log_max_age_days: float = param(14.0, lo=0.0, hi=3650.0, help="log files older than this are deleted [days]")
    log_max_total_mb: float = param(1024.0, lo=0.0, hi=10_000_000.0,
                                    help="all log folders together stay below this, oldest deleted first [MB]")
    log_min_idle_s: float = param(300.0, lo=0.0, hi=86400.0,
                                  help="a file written within this is in use and never touched [s, wall]")

    # ---- full_backup / restore_backup
    backup_keep: int = param(8, lo=1, hi=1000, help="newest backup archives kept; older ones are deleted")
    backup_max_file_mb: float = param(2048.0, lo=1.0, hi=1_000_000.0,
                                      help="a file larger than this is left out of a backup and reported [MB]")
    pg_bin_dir: str = param("", help="folder holding pg_dump and pg_restore ('' = PATH, else the newest "
                                     "/usr/lib/postgresql/<version>/bin)")
    pg_timeout_s: float = param(1800.0, lo=1.0, hi=86400.0,
                                help="one pg_dump or pg_restore runs at most this long, then is stopped [s, wall]")

    # ---- performance_review
    metrics_log_dir: str = param("~/.ros/vla_logs", nonempty=True,
                                 help="monitoring_node's vla_logs archive (<robot_id>.jsonl and .jsonl.gz)")
    review_window_days: float = param(7.0, lo=0.001, hi=366.0, help="the review covers this much history [days]")
    review_buckets: int = param(7, lo=1, hi=366, help="the window is cut into this many periods for trends")
    review_max_samples: int = param(100_000, lo=100, hi=10_000_000,
                                    help="latency samples kept per robot (reservoir); memory bound")
    latency_p95_warn_ms: float = param(200.0, lo=0.0, hi=1e6, help="a p95 inference latency above this is flagged")
    error_rate_warn: float = param(0.05, lo=0.0, hi=1.0, help="errors per inference above this are flagged")

    # ---- deep_maintenance
    keep_releases: int = param(3, lo=1, hi=100,
                               help="releases kept in all: the current one and the newest others")
    cache_dirs: list[str] = param(["~/.ros/vla_fleet/ota/staging"], items=str, nonempty=True, max_length=64,
                                  help="cache folders whose old files are deleted")
    cache_max_age_days: float = param(7.0, lo=0.0, hi=3650.0, help="cache files older than this are deleted [days]")

    # ---- security_scan
    scan_paths: list[str] = param(["~/.ros/vla_fleet"], items=str, nonempty=True, max_length=64,
                                  help="folders searched for world-writable files and keys (plus releases_dir, "
                                       "config_dir, backup_dir)")
    secret_globs: list[str] = param(["*.key", "*_ed25519", "*.pem", "*.token", "token", "*secret*", "*.p12"], items=str,
                                    nonempty=True, max_length=64,
                                    help="file names that hold secrets and must be 0600 or stricter (.pub never; "
                                         ".pem only with a private key)")
    fix_permissions: bool = param(False, help="security_scan chmods secret files to 0600 and drops world-write")
    scan_max_files: int = param(200_000, lo=100, hi=100_000_000, help="files looked at per scan at most")

    def check(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"~timezone must be an IANA time zone name, got {self.timezone!r}") from exc
        for task in DEFAULT_SCHEDULE:
            expr = getattr(self, f"{task}_cron")
            if expr and not croniter.is_valid(expr):
                raise ConfigError(f"~{task}_cron must be a cron expression (or '' for off), got {expr!r}")
        for pair in self.topic_min_rates:
            parse_rate(pair)
        if self.log_compress_after_days > self.log_max_age_days:
            raise ConfigError(f"~log_compress_after_days ({self.log_compress_after_days:g}) must be <= "
                              f"~log_max_age_days ({self.log_max_age_days:g})")

    def schedule(self) -> dict[str, str]:
        """task -> cron expression, for the tasks with a schedule."""
        return {task: expr for task in DEFAULT_SCHEDULE if (expr := getattr(self, f"{task}_cron"))}


def parse_rate(pair: str) -> tuple[str, float]:
    """'<topic> <min Hz>' -> (topic, min_hz); ConfigError naming ~topic_min_rates otherwise."""
    parts = pair.split()
    try:
        if len(parts) != 2:
            raise ValueError
        hz = float(parts[1])
        if not hz > 0 or hz > 1e6:
            raise ValueError
    except ValueError:
        raise ConfigError(f"~topic_min_rates items must be '<topic> <min Hz>' with 0 < Hz <= 1e6, got {pair!r}") \
            from None
    return parts[0], hz
