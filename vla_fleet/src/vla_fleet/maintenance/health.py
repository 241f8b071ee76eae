"""health_check: the master and the expected nodes answer, watched topics arrive fast enough, disks have
room, the clock runs. The ROS side is injected (pings, measured rates, clock readings), so the check itself
is plain Python; `TopicRates` measures arrival rates on the node's clock with bounded memory.
"""

from __future__ import annotations

import collections
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from vla_fleet.maintenance.config import MaintenanceConfig, parse_rate
from vla_fleet.maintenance.layout import expand

# most arrivals remembered per topic: enough for 1 kHz over the longest window a rate check needs to tell
MAX_ARRIVALS = 100_000


class TopicRates:
    """Arrival times per topic over the last `window_s` (not thread-safe: the node holds a lock)."""

    def __init__(self, topics: list[str], window_s: float, start_s: float):
        self.window_s = window_s
        self.start_s = start_s
        self._arrivals = {t: collections.deque(maxlen=MAX_ARRIVALS) for t in topics}
        self.last_s: dict[str, float | None] = {t: None for t in topics}

    def note(self, topic: str, now_s: float) -> None:
        self._arrivals[topic].append(now_s)
        self.last_s[topic] = now_s

    def restart(self, now_s: float) -> None:
        """The clock went backwards (simulator reset): what was measured belongs to another timeline."""
        for q in self._arrivals.values():
            q.clear()
        self.start_s = now_s

    def rates(self, now_s: float) -> dict[str, float | None]:
        """Hz per topic over the window (or since the start, when shorter); None before any time passed."""
        span = min(self.window_s, now_s - self.start_s)
        out: dict[str, float | None] = {}
        for topic, q in self._arrivals.items():
            while q and q[0] < now_s - self.window_s:
                q.popleft()
            out[topic] = len(q) / span if span > 0 else None
        return out


@dataclass
class HealthProbes:
    """The ROS side of a health check."""
    master: Callable[[], tuple[bool, str]]            # (answers, why not)
    ping: Callable[[str], tuple[bool, str]]           # node name -> (answers, why not)
    rates: Callable[[], dict[str, float | None]]     # measured Hz per watched topic
    clock: Callable[[], dict]                         # {ros_time, wall_time, sim_time, clock_age_s}


def health_check(cfg: MaintenanceConfig, probes: HealthProbes) -> dict:
    """Details of one check; `problems` lists everything found wrong (empty: healthy)."""
    problems: list[str] = []
    master_ok, why = probes.master()
    if not master_ok:
        problems.append(f"ROS master: {why}")
    nodes = {}
    for node in cfg.expected_nodes:
        ok, why = probes.ping(node) if master_ok else (False, "master unreachable")
        nodes[node] = {"alive": ok, "error": why or None}
        if not ok:
            problems.append(f"node {node}: {why}")

    measured = probes.rates()
    topics = {}
    for pair in cfg.topic_min_rates:
        topic, min_hz = parse_rate(pair)
        hz = measured.get(topic)
        topics[topic] = {"rate_hz": None if hz is None else round(hz, 3), "min_hz": min_hz}
        if hz is None:
            problems.append(f"topic {topic}: rate not measured yet")
        elif hz < min_hz:
            problems.append(f"topic {topic}: {hz:.3g} Hz, below {min_hz:g} Hz")

    disks = {}
    for raw in cfg.disk_paths:
        path = expand(raw)
        probe = path
        while not probe.exists() and probe != probe.parent:  # a folder not made yet: its file system
            probe = probe.parent
        try:
            usage = shutil.disk_usage(probe)
        except OSError as exc:
            problems.append(f"disk {path}: {exc}")
            continue
        free_pct = 100.0 * usage.free / usage.total if usage.total else 0.0
        disks[str(path)] = {"free_percent": round(free_pct, 2), "free_mb": round(usage.free / 1e6, 1),
                            "total_mb": round(usage.total / 1e6, 1)}
        if free_pct < cfg.min_free_disk_percent:
            problems.append(f"disk {path}: {free_pct:.1f}% free, below {cfg.min_free_disk_percent:g}%")

    clock = probes.clock()
    if not clock.get("ros_time"):
        problems.append("clock: ROS time is 0 (no /clock yet under /use_sim_time)")
    if clock.get("sim_time"):
        age = clock.get("clock_age_s")
        if age is None or age > cfg.max_clock_age_s:
            problems.append(f"clock: /clock silent for {'ever' if age is None else f'{age:.1f} s'} "
                            f"(limit {cfg.max_clock_age_s:g} s)")
    return {"healthy": not problems, "problems": problems, "master": master_ok, "nodes": nodes,
            "topics": topics, "disks": disks, "clock": clock}
