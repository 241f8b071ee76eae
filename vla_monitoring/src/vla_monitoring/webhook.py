"""The alert webhook: each event POSTed as JSON from a thread of its own, so the node never waits on it.

Bounded everywhere: a queue of `queue_size` events (a full queue drops its oldest, counted), a
timeout per POST, retries with exponential backoff up to `max_attempts`, after which the event is
given up (counted). Connection errors, timeouts, 429 and 5xx answers are retried; any other 4xx is
the receiver refusing the event and is not. Time here is wall time: it paces a network peer.
"""

from __future__ import annotations

import http.client
import logging
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable

LOG = logging.getLogger(__name__)


class WebhookError(Exception):
    """One POST that did not succeed; `retry` says whether another attempt may."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


def post_json(url: str, body: bytes, timeout_s: float) -> None:
    """POSTs `body` (JSON) to `url`; raises WebhookError unless the answer is 2xx."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "vla-alert-node"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # an http(s) URL: AlertConfig checks
            response.read(65536)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise WebhookError(f"HTTP {exc.code} {exc.reason}", retry=exc.code == 429 or exc.code >= 500) from None
    except (http.client.InvalidURL, ValueError) as exc:  # no attempt can succeed
        raise WebhookError(f"invalid URL: {exc}", retry=False) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, unreachable, timed out
        reason = getattr(exc, "reason", exc)
        raise WebhookError(f"{type(exc).__name__}: {reason}", retry=True) from None


class WebhookSink:
    """`submit(body)` returns at once; the sink's thread sends the bodies in order."""

    def __init__(self, url: str, *, timeout_s: float = 2.0, max_attempts: int = 5, backoff_s: float = 0.5,
                 backoff_max_s: float = 30.0, queue_size: int = 100,
                 post: Callable[[str, bytes, float], None] = post_json,
                 wait: Callable[[float], bool] | None = None):
        """`post(url, body, timeout_s)` sends one body; `wait(delay_s)` waits before a retry and returns
        True when the sink is closing (default: an interruptible wait on the sink's stop event)."""
        self.url = url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._post = post
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._queue: deque[bytes] = deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._busy = False
        self.sent = 0       # delivered events
        self.failed = 0     # given up after max_attempts, or refused by the receiver
        self.dropped = 0    # pushed out of a full queue, or still queued when the sink closed
        self.retries = 0    # attempts after the first
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="alert_webhook", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, body: str | bytes) -> None:
        data = body.encode() if isinstance(body, str) else body
        with self._cond:
            if self._stop.is_set():
                self.dropped += 1
                return
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1  # deque(maxlen) drops the oldest on append
            self._queue.append(data)
            self._cond.notify()

    def idle(self) -> bool:
        """Nothing queued and nothing being sent."""
        with self._cond:
            return not self._queue and not self._busy

    def close(self, timeout_s: float = 2.0) -> None:
        """Stops the thread (a retry wait ends at once); what is still queued is dropped and counted."""
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        self._thread.join(timeout_s)
        with self._cond:
            self.dropped += len(self._queue)
            self._queue.clear()

    def delay_s(self, retry: int) -> float:
        """Wait before retry number `retry` (1, 2, ...): backoff_s doubled each time, at most backoff_max_s."""
        return min(self.backoff_s * 2.0 ** (retry - 1), self.backoff_max_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                body = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(body)
            except Exception:  # a bug in `post` must not end the thread: count the event, keep sending
                self.failed += 1
                LOG.exception("alert webhook %s: sending an event failed", self.url)
            finally:
                with self._cond:
                    self._busy = False

    def _deliver(self, body: bytes) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                self._post(self.url, body, self.timeout_s)
            except WebhookError as exc:
                self.last_error = str(exc)
                if not exc.retry or attempt == self.max_attempts:
                    self.failed += 1
                    LOG.warning("alert webhook %s: event given up after %d attempt(s): %s", self.url, attempt, exc)
                    return
                self.retries += 1
                if self._wait(self.delay_s(attempt)):
                    self.dropped += 1  # closing: the event is not sent
                    return
            else:
                self.sent += 1
                return
