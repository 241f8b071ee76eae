"""Slow health probes (network checks) run concurrently off the caller's thread, each with a deadline.

`ProbeRunner.poll()` never blocks: it starts every probe that is not already running on a bounded
thread pool and returns the newest result of each. A probe that has run longer than its timeout
reads as unhealthy ("no answer in X s") until it returns; one that answers late counts as
unhealthy too, so a slow dependency does not flap. A hung probe holds one worker and is not
started again until it returns, so it can never pile up threads. Also here: the cloud service's
health check (HTTP, no ROS).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

LOG = logging.getLogger(__name__)

MAX_WORKERS = 8
_MAX_BODY_BYTES = 65536


@dataclass(frozen=True)
class Probe:
    name: str
    check: Callable[[], tuple[bool, str]]  # (healthy, reason); may block up to about timeout_s
    timeout_s: float


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    reason: str


class ProbeRunner:
    """Runs `probes` on at most `max_workers` threads; `clock` times the deadlines (ROS time in a node)."""

    def __init__(self, probes: Sequence[Probe], clock: Callable[[], float] = time.monotonic,
                 max_workers: int = MAX_WORKERS):
        names = [p.name for p in probes]
        if len(set(names)) != len(names):
            raise ValueError(f"probe names must be unique, got {names}")
        self._probes = list(probes)
        self._clock = clock
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}    # running probes: name -> start time
        self._results: dict[str, ProbeResult] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(probes))),
                                        thread_name_prefix="health_probe") if probes else None
        self._closed = False
        self.runs = 0  # probes started so far

    def poll(self) -> dict[str, ProbeResult]:
        """Starts every idle probe and returns each probe's newest result (running too long = unhealthy)."""
        now = self._clock()
        out = {}
        with self._lock:
            for probe in self._probes:
                started = self._started.get(probe.name)
                if started is None and self._pool is not None and not self._closed:
                    self._started[probe.name] = now
                    self.runs += 1
                    self._pool.submit(self._run, probe, now)
                elif started is not None and now - started > probe.timeout_s:
                    self._results[probe.name] = ProbeResult(False, f"no answer in {probe.timeout_s:g} s")
                if probe.name in self._results:
                    out[probe.name] = self._results[probe.name]
        return out

    def _run(self, probe: Probe, started: float) -> None:
        try:
            healthy, reason = probe.check()
        except Exception as exc:  # a probe's bug must read as unhealthy, not kill the runner
            LOG.exception("health probe %s failed", probe.name)
            healthy, reason = False, f"probe failed: {type(exc).__name__}: {exc}"
        took = self._clock() - started
        if healthy and took > probe.timeout_s:
            healthy, reason = False, f"answered after {took:.2f} s, over its {probe.timeout_s:g} s"
        with self._lock:
            self._results[probe.name] = ProbeResult(bool(healthy), "" if healthy else reason)
            self._started.pop(probe.name, None)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._started)

    def close(self) -> None:
        """Stops starting probes; running ones finish on their own (each bounded by its timeout)."""
        with self._lock:
            self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def check_cloud(url: str, timeout_s: float) -> tuple[bool, str]:
    """GETs the cloud service's /health: healthy only on HTTP 200 with a JSON object whose status is "ok"."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            status = resp.status
            body = resp.read(_MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return False, f"cloud health {url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"cloud health {url} unreachable: {getattr(exc, 'reason', exc)}"
    if status != 200:
        return False, f"cloud health {url} answered HTTP {status}, expected 200"
    if len(body) > _MAX_BODY_BYTES:
        return False, f"cloud health {url} answered more than {_MAX_BODY_BYTES} bytes"
    try:
        doc = json.loads(body)
    except ValueError:
        return False, f"cloud health {url} answered no JSON: {body[:80]!r}"
    if not isinstance(doc, dict) or doc.get("status") != "ok":
        return False, f'cloud health {url} answered {json.dumps(doc)[:120]}, expected {{"status": "ok"}}'
    return True, ""
