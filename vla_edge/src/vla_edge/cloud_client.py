"""The inference node's client of the cloud policy server (INTERFACES.md, cloud section): JPEG encoding,
one pooled HTTP session to `POST /infer`, a hard per-request deadline on the loop's clock and a
circuit breaker, so that a dead or hung server costs a few deadlines, then only background probes
of `GET /health` until it answers again.

ROS-free: the clock (ROS time in the node) and the HTTP session are injected.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import requests

from vla_edge.clock import Clock
from vla_edge.cloud.protocol import RequestError, infer_request, parse_infer_response
from vla_edge.spec import PolicySpec

LOG = logging.getLogger(__name__)


class CloudError(RuntimeError):
    """A cloud request that gave no usable chunk; `kind` names why (a vla_logs / cloud_vla_result reason)."""

    kind = "cloud_error"


class CloudUnavailableError(CloudError):
    """The breaker is open (the server failed recently) or every connection is busy: nothing was sent."""

    kind = "cloud_unavailable"


class CloudTimeoutError(CloudError):
    """No answer within the request's deadline."""

    kind = "cloud_timeout"


class CloudConnectionError(CloudError):
    """The server could not be reached or dropped the connection."""

    kind = "cloud_connection"


class CloudRejectedError(CloudError):
    """The server answered with an error status, or with a body that is not an action chunk."""

    kind = "cloud_rejected"


class BreakerState(StrEnum):
    CLOSED = "closed"        # requests go to the server
    OPEN = "open"            # requests refused at once; a /health probe is due at next_probe_s
    HALF_OPEN = "half_open"  # one probe in flight; requests still refused


class CircuitBreaker:
    """Opens after `failure_threshold` failures in a row; once open, a probe is due after `retry_s`,
    doubled after each failed probe up to `max_retry_s`; a successful probe or request closes it."""

    def __init__(self, failure_threshold: int, retry_s: float, max_retry_s: float, clock: Callable[[], float]):
        if failure_threshold < 1 or retry_s <= 0 or max_retry_s < retry_s:
            raise ValueError("breaker needs failure_threshold >= 1 and 0 < retry_s <= max_retry_s")
        self.failure_threshold = failure_threshold
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._backoff_s = retry_s
        self._next_probe_s = math.inf

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow_request(self) -> bool:
        return self._state is BreakerState.CLOSED

    def claim_probe(self) -> bool:
        """True (and half-open) when the breaker is open and its probe is due: the caller must probe and
        report the outcome through record_success / record_failure."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() >= self._next_probe_s:
                self._state = BreakerState.HALF_OPEN
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            if self._state is not BreakerState.CLOSED:
                LOG.info("cloud server answers again: breaker closed")
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._backoff_s = self.retry_s
            self._next_probe_s = math.inf

    def record_failure(self) -> None:
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.HALF_OPEN:
                self._backoff_s = min(2.0 * self._backoff_s, self.max_retry_s)
                self._state = BreakerState.OPEN
                self._next_probe_s = now + self._backoff_s
                return
            if self._state is BreakerState.OPEN:
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._state = BreakerState.OPEN
                self._next_probe_s = now + self._backoff_s
                LOG.warning("cloud server failed %d times in a row: breaker open, next /health probe in %.2g s",
                            self._failures, self._backoff_s)


@dataclass(frozen=True)
class CloudAnswer:
    actions: np.ndarray          # float32 [T, 6], as the server gave them
    model_version: str
    server_inference_ms: float   # the server's own forward time (NaN when it did not say)
    latency_ms: float            # request sent -> answer parsed, on this computer's counter
    jpeg_bytes: int              # size of the JPEG sent


class CloudClient:
    """Blocking HTTP to one cloud server through one pooled session (keep-alive, at most `pool_size`
    connections). Every call is bounded by the connect and read timeouts; the deadline of a control
    step is CloudPolicy's business."""

    def __init__(self, url: str, *, token: str = "", ca_file: str = "", connect_timeout_s: float = 0.2,
                 read_timeout_s: float = 1.0, jpeg_quality: int = 90, pool_size: int = 2,
                 session: requests.Session | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"~cloud_url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.jpeg_quality = jpeg_quality
        self._timeouts = (connect_timeout_s, read_timeout_s)
        self.session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if ca_file and not Path(ca_file).is_file():
            raise ValueError(f"~cloud_ca_file {ca_file!r} does not exist")
        # passed on every request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's verify
        self._verify: str | bool = ca_file or True

    def infer(self, rgb: np.ndarray, instruction: str) -> CloudAnswer:
        payload = infer_request(rgb, instruction, time.time(), self.jpeg_quality)  # ValueError: not an image
        start = time.perf_counter()
        body = self._call("POST", "/infer", json=payload)
        try:
            actions, version, inference_ms = parse_infer_response(body)
        except RequestError as exc:
            raise CloudRejectedError(f"POST /infer: {exc}") from exc
        jpeg_bytes = len(payload["image"]) * 3 // 4  # base64 carries 3 bytes in 4 characters
        return CloudAnswer(actions, version, inference_ms, (time.perf_counter() - start) * 1000.0, jpeg_bytes)

    def health(self) -> dict:
        body = self._call("GET", "/health")
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise CloudRejectedError(f"/health says {str(body)[:200]}")
        return body

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs) -> object:
        try:
            response = self.session.request(method, self.url + path, timeout=self._timeouts, verify=self._verify,
                                            **kwargs)
        except requests.Timeout as exc:
            raise CloudTimeoutError(f"{method} {path}: {exc}") from exc
        except requests.RequestException as exc:  # refused, reset, TLS failure
            raise CloudConnectionError(f"{method} {path}: {exc}") from exc
        if response.status_code != 200:
            raise CloudRejectedError(f"{method} {path}: HTTP {response.status_code} {response.text[:200]}")
        try:
            return response.json()
        except ValueError as exc:
            raise CloudRejectedError(f"{method} {path}: answer is not JSON ({exc})") from exc


class CloudPolicy:
    """The cloud as a policy source: `infer({"rgb", "instruction", "deadline_s"}) -> {"actions",
    "inference_ms", "model_version", "latency_ms"}` (openpi's infer(obs) -> dict), with the robot's
    policy spec (its action limits apply to cloud chunks too: wrap with policy.finite_and_clamped).

    Each request runs on one of `max_in_flight` threads and is waited for at most `deadline_s` on the
    injected clock: a late answer is abandoned (its thread ends within the client's timeouts) and counts
    as a failure. While the breaker is open nothing is sent; a due /health probe runs in the background.
    """

    def __init__(self, client: CloudClient, breaker: CircuitBreaker, clock: Clock, spec: PolicySpec | None = None,
                 max_in_flight: int = 2, _shared: tuple | None = None):
        self.client = client
        self.breaker = breaker
        self.spec = spec
        self._clock = clock
        if _shared is None:
            _shared = (cf.ThreadPoolExecutor(max_workers=max_in_flight + 1, thread_name_prefix="vla_cloud"),
                       threading.BoundedSemaphore(max_in_flight))
        self._pool, self._slots = _shared

    def for_spec(self, spec: PolicySpec) -> CloudPolicy:
        """The same client, breaker and threads with another policy's spec (after a hot swap)."""
        return CloudPolicy(self.client, self.breaker, self._clock, spec, _shared=(self._pool, self._slots))

    def infer(self, obs: dict) -> dict:
        self._maybe_probe()
        if not self.breaker.allow_request():
            raise CloudUnavailableError(f"cloud breaker {self.breaker.state.value}: server failed recently")
        if not self._slots.acquire(blocking=False):
            self.breaker.record_failure()
            raise CloudUnavailableError("every cloud connection is still busy with an earlier request")
        done = threading.Event()
        try:
            future = self._pool.submit(self.client.infer, obs["rgb"], obs["instruction"])
        except RuntimeError as exc:  # the pool is shut down: the node is stopping
            self._slots.release()
            raise CloudUnavailableError(f"cloud client closed: {exc}") from exc
        future.add_done_callback(lambda _f: (self._slots.release(), done.set()))
        deadline_s = float(obs["deadline_s"])
        if not self._clock.wait(done, deadline_s):
            self.breaker.record_failure()
            raise CloudTimeoutError(f"no cloud answer within {deadline_s * 1000.0:.0f} ms")
        try:
            answer: CloudAnswer = future.result()
        except CloudError:
            self.breaker.record_failure()
            raise
        except ValueError as exc:  # the frame could not be encoded: not the server's fault
            raise CloudRejectedError(f"frame not sent: {exc}") from exc
        self.breaker.record_success()
        return {"actions": answer.actions, "inference_ms": answer.server_inference_ms,
                "model_version": answer.model_version, "latency_ms": answer.latency_ms,
                "jpeg_bytes": answer.jpeg_bytes}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def _maybe_probe(self) -> None:
        if not self.breaker.claim_probe():
            return
        try:
            self._pool.submit(self._probe)
        except RuntimeError:
            self.breaker.record_failure()

    def _probe(self) -> None:
        try:
            info = self.client.health()
        except CloudError as exc:
            LOG.info("cloud /health probe failed: %s", exc)
            self.breaker.record_failure()
            return
        LOG.info("cloud /health probe: %s", info)
        self.breaker.record_success()
