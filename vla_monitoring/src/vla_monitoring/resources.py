"""The machine's and the suite's own processes' resource use, sampled without blocking, and its verdict.

ROS-free: `ResourceSampler.sample()` reads psutil (CPU total and per core, memory, disk of the
log/data volume, load, temperatures where readable), the GPU source and the tracked processes;
`NodeProcesses` keeps one `psutil.Process` per node so that `cpu_percent()` measures the time since
the previous sample instead of sleeping; `assess()` holds a sample against the thresholds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psutil

from vla_monitoring.config import param
from vla_monitoring.gpu import GpuReading, GpuSource, NoGpu

LOG = logging.getLogger(__name__)
MB = 1024.0 * 1024.0
# The suite's per-robot nodes (relative: resolved in the monitor's namespace) and the simulator (one per master).
SUITE_NODES = ["inference_node", "safety_node", "health_node", "resource_monitor_node", "monitoring_node",
               "alert_node", "dashboard_node", "robot_agent_node", "ota_updater_node", "/sim_node"]


@dataclass
class ResourceConfig:
    """Every parameter of resource_monitor_node (config/resources.yaml mirrors it); percentages 0..100."""

    robot_id: str = param("robot_1", nonempty=True, help="robot whose machine this is")
    rate: float = param(1.0, lo=0.05, hi=10.0, help="vla_resources / vla/resources rate [Hz]")
    disk_path: str = param("~/.ros", nonempty=True,
                           help="a path on the log/data volume whose use is reported (~ expanded; the nearest "
                                "existing parent is used while it does not exist)")
    cpu_threshold: float = param(80.0, lo=1.0, hi=100.0, help="diagnostics warn above this total CPU [%]")
    memory_threshold: float = param(80.0, lo=1.0, hi=100.0, help="diagnostics warn above this memory use [%]")
    disk_threshold: float = param(90.0, lo=1.0, hi=100.0, help="diagnostics warn above this disk use [%]")
    gpu_threshold: float = param(85.0, lo=1.0, hi=100.0, help="diagnostics warn above this GPU load [%]")
    gpu_memory_threshold: float = param(90.0, lo=1.0, hi=100.0, help="diagnostics warn above this GPU memory [%]")
    nodes: list[str] = param(SUITE_NODES, items=str,
                             help="nodes whose CPU and memory are reported when they run on this host "
                                  "(relative names are in the monitor's namespace)")
    node_refresh_s: float = param(5.0, lo=0.5, hi=600.0,
                                  help="how often the master is asked which of those nodes run, and their pids [s]")
    lookup_timeout_s: float = param(0.5, lo=0.01, hi=10.0, help="timeout of each master or node lookup [s]")


@dataclass(frozen=True)
class NodeUsage:
    pid: int
    cpu_percent: float          # of one core, since the previous sample (the first: since tracking began)
    rss_mb: float


@dataclass(frozen=True)
class ResourceSample:
    hostname: str
    cpu_percent: float
    cpu_percent_per_core: list[float]
    memory_percent: float
    memory_used_mb: float
    memory_total_mb: float
    disk_path: str
    disk_percent: float | None
    disk_free_gb: float | None
    load_average: list[float]                  # 1, 5 and 15 minutes
    temperatures_c: dict[str, float]           # sensor -> current; empty where none is readable
    gpus: list[GpuReading]
    nodes: dict[str, NodeUsage] = field(default_factory=dict)

    @property
    def gpu_percent(self) -> float | None:
        """The busiest GPU's load; None without a GPU or a readable load."""
        return max((g.percent for g in self.gpus if g.percent is not None), default=None)

    @property
    def gpu_memory_percent(self) -> float | None:
        return max((g.memory_percent for g in self.gpus if g.memory_percent is not None), default=None)

    @property
    def gpu_temperature_c(self) -> float | None:
        return max((g.temperature_c for g in self.gpus if g.temperature_c is not None), default=None)


def local_addresses() -> set[str]:
    """Names and addresses under which this host's nodes register: hostname, localhost, every interface's IP."""
    found = {"localhost", socket.gethostname(), socket.getfqdn()}
    try:
        for addresses in psutil.net_if_addrs().values():
            found.update(a.address.split("%")[0] for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6))
    except OSError as exc:
        LOG.debug("interface addresses unreadable: %s", exc)
    return found


def is_local_uri(uri: str, addresses: set[str]) -> bool:
    """Whether a node's XML-RPC URI (http://host:port/) points at this host."""
    host = urlsplit(uri).hostname or ""
    return host in addresses or host.startswith("127.")


def existing_path(path: str) -> str:
    """`path` with ~ expanded, or its nearest existing parent (a log folder not created yet)."""
    p = os.path.abspath(os.path.expanduser(path))
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    return p


class NodeProcesses:
    """CPU and resident memory of named processes; each Process object is kept between samples.

    Thread-safe: the node's lookups call `track` while its publishing timer calls `sample`.
    """

    def __init__(self):
        self._procs: dict[str, psutil.Process] = {}
        self._lock = threading.Lock()

    def track(self, pids: dict[str, int]) -> None:
        """The nodes to follow now, name -> pid; a name whose pid changed starts afresh."""
        with self._lock:
            self._track(pids)

    def _track(self, pids: dict[str, int]) -> None:
        for name in [n for n in self._procs if n not in pids or self._procs[n].pid != pids[n]]:
            del self._procs[name]
        for name, pid in pids.items():
            if name in self._procs:
                continue
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # the baseline: the next call measures from here, without sleeping
            except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
                LOG.debug("cannot follow %s (pid %d): %s", name, pid, exc)
                continue
            self._procs[name] = proc

    @property
    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._procs)

    def sample(self) -> dict[str, NodeUsage]:
        with self._lock:
            return self._sample()

    def _sample(self) -> dict[str, NodeUsage]:
        out = {}
        for name in list(self._procs):
            proc = self._procs[name]
            try:
                with proc.oneshot():
                    cpu = proc.cpu_percent(None)
                    rss = proc.memory_info().rss / MB
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                del self._procs[name]  # it ended; the next lookup finds its successor
                continue
            out[name] = NodeUsage(proc.pid, cpu, rss)
        return out


def _temperatures() -> dict[str, float]:
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return {}
    try:
        sensors = read()
    except (OSError, RuntimeError) as exc:
        LOG.debug("temperatures unreadable: %s", exc)
        return {}
    out = {}
    for chip, entries in sensors.items():
        for i, entry in enumerate(entries):
            out[f"{chip}/{entry.label or i}"] = float(entry.current)
    return out


class ResourceSampler:
    """One call per period: every reading measures the time since the previous call, none sleeps."""

    def __init__(self, config: ResourceConfig, gpu: GpuSource | None = None):
        self.config = config
        self.gpu = gpu if gpu is not None else NoGpu()
        self.nodes = NodeProcesses()
        self.hostname = socket.gethostname()
        # Baselines for the non-blocking cpu_percent calls (total and per core keep separate ones).
        psutil.cpu_percent(None)
        psutil.cpu_percent(None, percpu=True)

    def sample(self) -> ResourceSample:
        per_core = [float(v) for v in psutil.cpu_percent(None, percpu=True)]
        total = float(psutil.cpu_percent(None))
        mem = psutil.virtual_memory()
        disk_path = existing_path(self.config.disk_path)
        try:
            disk = psutil.disk_usage(disk_path)
            disk_percent, disk_free = float(disk.percent), disk.free / (MB * 1024.0)
        except OSError as exc:
            LOG.debug("disk use of %s unreadable: %s", disk_path, exc)
            disk_percent = disk_free = None
        try:
            load = [float(v) for v in os.getloadavg()]
        except OSError:
            load = []
        return ResourceSample(
            hostname=self.hostname, cpu_percent=total, cpu_percent_per_core=per_core,
            memory_percent=float(mem.percent), memory_used_mb=(mem.total - mem.available) / MB,
            memory_total_mb=mem.total / MB, disk_path=disk_path, disk_percent=disk_percent, disk_free_gb=disk_free,
            load_average=load, temperatures_c=_temperatures(), gpus=self.gpu.read(), nodes=self.nodes.sample())


def assess(sample: ResourceSample, config: ResourceConfig) -> list[str]:
    """What is above its threshold, one phrase each; empty when every reading is within bounds."""
    checks = [("CPU", sample.cpu_percent, config.cpu_threshold),
              ("memory", sample.memory_percent, config.memory_threshold),
              ("disk", sample.disk_percent, config.disk_threshold),
              ("GPU", sample.gpu_percent, config.gpu_threshold),
              ("GPU memory", sample.gpu_memory_percent, config.gpu_memory_threshold)]
    return [f"{what} {value:.0f} % above {limit:.0f} %" for what, value, limit in checks
            if value is not None and value > limit]


def json_fields(sample: ResourceSample) -> dict:
    """The fields of vla_resources (json_forms.RESOURCES): the seed's, then the detail; unknown is null."""
    return {
        "hostname": sample.hostname, "cpu_percent": sample.cpu_percent, "memory_percent": sample.memory_percent,
        "disk_percent": sample.disk_percent, "gpu_percent": sample.gpu_percent,
        "gpu_memory_percent": sample.gpu_memory_percent,
        "nodes": {name: {"pid": u.pid, "cpu_percent": u.cpu_percent, "rss_mb": round(u.rss_mb, 1)}
                  for name, u in sorted(sample.nodes.items())},
        "cpu_percent_per_core": sample.cpu_percent_per_core, "memory_used_mb": round(sample.memory_used_mb, 1),
        "memory_total_mb": round(sample.memory_total_mb, 1), "disk_path": sample.disk_path,
        "disk_free_gb": None if sample.disk_free_gb is None else round(sample.disk_free_gb, 2),
        "load_average": sample.load_average, "temperatures_c": sample.temperatures_c,
        "gpu_temperature_c": sample.gpu_temperature_c,
        "gpus": [{"index": g.index, "name": g.name, "percent": g.percent, "memory_percent": g.memory_percent,
                  "temperature_c": g.temperature_c} for g in sample.gpus],
    }
