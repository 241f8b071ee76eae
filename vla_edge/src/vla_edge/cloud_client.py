"""The inference node's client of the cloud policy server (INTERFACES.md, cloud section): JPEG encoding,
one pooled HTTP session to `POST /infer`, a hard per-request deadline on the loop's clock and a
circuit breaker, so that a dead or hung server costs a few deadlines, then only background probes
of `GET /health` until it answers again.

Three kinds of failed answer are told apart, because they call for different things:
- an outage (no answer, a reset, a 5xx, garbage): counts towards the breaker's failure threshold;
- an overload signal (429, 503 with Retry-After, 504): the server is alive and asks us to back off,
  so the breaker opens at once for the Retry-After (parse_retry_after) and nothing is sent, not even
  a /health probe, before it ends;
- the client's own fault (any other 4xx but 408: a wrong token, a frame the server refuses): the
  server is up, so the breaker is left alone; retrying cannot help, the error says what to fix.

ROS-free: the clock (ROS time in the node) and the HTTP session are injected.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import email.utils
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
RETRY_AFTER_DEFAULT_S = 1.0   # hold-off of an overload answer whose Retry-After is missing or unreadable
RETRY_AFTER_MAX_S = 30.0      # no server holds the robot off its cloud longer than this on one answer


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


class CloudOverloadedError(CloudError):
    """The server sheds load (429, 503 with Retry-After, 504), or we still hold off after it did:
    `retry_after_s` is how long no request goes out (from when the answer came)."""

    kind = "cloud_overloaded"

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CloudClientError(CloudError):
    """A 4xx that is this client's fault (a frame or body the server refuses, a wrong URL): the server
    is up, retrying the same request cannot help. `status` is the HTTP status."""

    kind = "cloud_client_error"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class CloudAuthError(CloudClientError):
    """401/403: the server refuses our token (~cloud_token_file wrong, missing or out of date)."""

    kind = "cloud_unauthorized"


def parse_retry_after(value: str | None, now_s: float, default_s: float = RETRY_AFTER_DEFAULT_S,
                      max_s: float = RETRY_AFTER_MAX_S) -> float:
    """Seconds to hold off from a Retry-After header (RFC 9110 10.2.3): delay-seconds or an HTTP-date,
    read against `now_s` (wall-clock epoch seconds: an HTTP-date is wall time). Capped at `max_s`; a
    date already past is 0; a missing, unreadable, negative or non-finite value is `default_s`."""
    if value is None or not value.strip():
        return min(default_s, max_s)
    text = value.strip()
    try:
        seconds = float(text)  # RFC's delay-seconds is an integer; a fraction is read as meant
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return min(default_s, max_s)
        if when.tzinfo is None:  # "-0000" says UTC without naming a zone
            when = when.replace(tzinfo=datetime.UTC)
        seconds = max(0.0, when.timestamp() - now_s)
    if not math.isfinite(seconds) or seconds < 0:
        return min(default_s, max_s)
    return min(seconds, max_s)


class BreakerState(StrEnum):
    CLOSED = "closed"        # requests go to the server
    OPEN = "open"            # requests refused at once; a /health probe is due at next_probe_s
    HALF_OPEN = "half_open"  # one probe in flight; requests still refused


class CircuitBreaker:
    """Opens after `failure_threshold` failures in a row; once open, a probe is due after `retry_s`,
    doubled after each failed probe up to `max_retry_s`; a successful probe or request closes it.

    `hold_off(seconds)` (the server shed load) opens it at once, whatever the count, and no probe is due
    before the hold-off ends; until then even a success does not close it. An overload episode (from
    the first hold-off to the close, or to a failed probe: then the server is down, not busy) is
    logged once when it begins and once when it ends."""

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
        self._hold_until_s = -math.inf
        self._overloaded = False
        self.overload_answers = 0  # overload answers of the current episode

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def overloaded(self) -> bool:
        """True from the server's first overload answer until the breaker closes again (or a probe fails)."""
        return self._overloaded

    def hold_remaining_s(self) -> float:
        """How much longer the server asked us to wait (0 when no hold-off runs)."""
        return max(0.0, self._hold_until_s - self._clock())

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

    def hold_off(self, duration_s: float) -> None:
        """The server is overloaded and asked for `duration_s` without requests: open now, probe after it."""
        with self._lock:
            now = self._clock()
            self._hold_until_s = max(self._hold_until_s, now + duration_s)
            if self._state is BreakerState.OPEN:  # open after failures: its probe waits for the hold-off too
                self._next_probe_s = max(self._next_probe_s, self._hold_until_s)
            else:  # closed, or half-open with the probe answered by an overload
                self._state = BreakerState.OPEN
                self._next_probe_s = self._hold_until_s
            self._failures = 0
            self.overload_answers = self.overload_answers + 1 if self._overloaded else 1
            first = not self._overloaded
            self._overloaded = True
        if first:
            LOG.warning("cloud server overloaded (it sheds load): no cloud request for %.3g s as it asked "
                        "(Retry-After), then a /health probe", duration_s)

    def record_success(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._hold_until_s:  # an answer from before the overload: still honour the hold-off
                if self._state is BreakerState.HALF_OPEN:
                    self._state = BreakerState.OPEN
                self._next_probe_s = max(self._next_probe_s, self._hold_until_s)
                return
            if self._state is not BreakerState.CLOSED:
                if self._overloaded:
                    LOG.info("cloud server takes requests again after its overload (%d overload answers): "
                             "breaker closed", self.overload_answers)
                else:
                    LOG.info("cloud server answers again: breaker closed")
            self._state = BreakerState.CLOSED
            self._overloaded = False
            self._failures = 0
            self._backoff_s = self.retry_s
            self._next_probe_s = math.inf

    def record_failure(self) -> None:
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.HALF_OPEN:
                if self._overloaded:
                    LOG.warning("cloud server overload over, but its /health probe failed: treated as down")
                self._overloaded = False
                self._backoff_s = min(2.0 * self._backoff_s, self.max_retry_s)
                self._state = BreakerState.OPEN
                self._next_probe_s = max(now + self._backoff_s, self._hold_until_s)
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
                 retry_after_default_s: float = RETRY_AFTER_DEFAULT_S, retry_after_max_s: float = RETRY_AFTER_MAX_S,
                 session: requests.Session | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"~cloud_url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.jpeg_quality = jpeg_quality
        self.retry_after_default_s = retry_after_default_s
        self.retry_after_max_s = retry_after_max_s
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
            raise self._status_error(f"{method} {path}", response)
        try:
            return response.json()
        except ValueError as exc:
            raise CloudRejectedError(f"{method} {path}: answer is not JSON ({exc})") from exc


    def _status_error(self, what: str, response: requests.Response) -> CloudError:
        """The error an answer's status stands for (see the module's docstring)."""
        status = response.status_code
        text = f"{what}: HTTP {status} {response.text[:200]}"
        header = response.headers.get("Retry-After")
        if status in (429, 504) or (status == 503 and header is not None):
            hold_s = parse_retry_after(header, time.time(), self.retry_after_default_s, self.retry_after_max_s)
            return CloudOverloadedError(f"{text} (server overloaded: holding off {hold_s:.3g} s)", hold_s)
        if status in (401, 403):
            return CloudAuthError(f"{text}: the server refuses our token; check ~cloud_token_file "
                                  f"(robot and server must hold the same token)", status)
        if 400 <= status < 500 and status != 408:
            return CloudClientError(f"{text} (this client's request is at fault, not the server)", status)
        return CloudRejectedError(text)


class CloudPolicy:
    """The cloud as a policy source: `infer({"rgb", "instruction", "deadline_s"}) -> {"actions",
    "inference_ms", "model_version", "latency_ms"}` (openpi's infer(obs) -> dict), with the robot's
    policy spec (its action limits apply to cloud chunks too: wrap with policy.finite_and_clamped).

    Each request runs on one of `max_in_flight` threads and is waited for at most `deadline_s` on the
    injected clock: a late answer is abandoned (its thread ends within the client's timeouts) and counts
    as a failure. While the breaker is open nothing is sent; a due /health probe runs in the background.
    An overload answer holds the breaker open for its Retry-After, even when it comes after the deadline;
    the client's own faults (CloudClientError) leave the breaker as it is.
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
            if self.breaker.overloaded:
                remaining_s = self.breaker.hold_remaining_s()
                wait = (f"holding off another {remaining_s:.3g} s as it asked (Retry-After)" if remaining_s > 0
                        else "its hold-off is over, waiting for a /health probe")
                raise CloudOverloadedError(f"cloud server overloaded: {wait}", remaining_s)
            raise CloudUnavailableError(f"cloud breaker {self.breaker.state.value}: server failed recently")
        if not self._slots.acquire(blocking=False):
            self.breaker.record_failure()
            raise CloudUnavailableError("every cloud connection is still busy with an earlier request")
        done = threading.Event()
        try:
            future = self._pool.submit(self._request, obs["rgb"], obs["instruction"])
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
        except (CloudOverloadedError, CloudClientError):  # the breaker knows already, or need not know
            raise
        except CloudError:
            self.breaker.record_failure()
            raise
        except ValueError as exc:  # the frame could not be encoded: not the server's fault
            raise CloudRejectedError(f"frame not sent: {exc}") from exc
        self.breaker.record_success()
        return {"actions": answer.actions, "inference_ms": answer.server_inference_ms,
                "model_version": answer.model_version, "latency_ms": answer.latency_ms,
                "jpeg_bytes": answer.jpeg_bytes}

    def _request(self, rgb: np.ndarray, instruction: str) -> CloudAnswer:
        """On a request thread: an overload answer holds the breaker open whether or not anyone still waits."""
        try:
            return self.client.infer(rgb, instruction)
        except CloudOverloadedError as exc:
            self.breaker.hold_off(exc.retry_after_s)
            raise

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
        except CloudOverloadedError as exc:  # alive but busy: the next probe after its Retry-After
            self.breaker.hold_off(exc.retry_after_s)
            return
        except CloudError as exc:
            LOG.info("cloud /health probe failed: %s", exc)
            self.breaker.record_failure()
            return
        LOG.info("cloud /health probe: %s", info)
        self.breaker.record_success()
