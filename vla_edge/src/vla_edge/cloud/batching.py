"""Dynamic batching: requests from every connection gathered into one forward pass, with a bounded
queue, per-request deadlines and the seed's adaptive batch cap. Plain threads; no server framework.

A worker thread takes what waits, up to the current cap; when fewer wait than the previous batch held
(other clients are active), it first waits at most `max_wait_s` from the oldest's arrival for more.
Requests past their deadline are answered DeadlineExceededError without being computed; a full queue
refuses new ones at once (OverloadedError), so latency cannot grow without bound.

Threads submit with `submit` (a concurrent future each); an event loop submits with `submit_async` (an
asyncio future each), and the worker answers all of a batch's asyncio waiters of one loop with one
`call_soon_threadsafe`, not one wake-up of the loop per request.

A lone client's request runs at once on its event loop with `infer_async`, as openpi's server does,
without the two thread switches to the worker and back: when the last `inline_after` forward passes each
held one request (nobody else around) and the batcher is idle (no batch running, nothing queued), it
claims the batcher, yields once so that the loop's other ready requests submit first, and runs alone only
if none did; otherwise it joins them in the queue, at its head. The loop waits during that forward pass,
so with other clients around (a batch above one resets the count) requests go to the worker, whose
forward pass overlaps the loop's work. One forward pass at a time: the worker does not start a batch
while an inline run or a claim is pending, and an inline run starts only while the worker is idle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger(__name__)
# forward passes of one request in a row before a request may run inline: at 4 clients, inline runs that
# hold the loop cost more than the thread switches they save (docs/benchmarks.md, "cloud")
INLINE_AFTER = 8


class OverloadedError(RuntimeError):
    """The queue is full: the request was not taken. `retry_after_s` is a hint for the client."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceededError(RuntimeError):
    """The request waited past its deadline and was not computed."""


class BatcherClosedError(RuntimeError):
    """The batcher stopped before the request was computed."""


class AdaptiveCap:
    """The batch cap follows memory pressure: above `high` it halves, below `low` it doubles up to
    `max_batch_size` (the seed's 90 %/60 % rule). `memory_fraction()` reads GPU memory on a GPU and the
    process's share of its memory budget on a CPU. Every change is logged and counted."""

    def __init__(self, max_batch_size: int, memory_fraction: Callable[[], float], high: float = 0.9,
                 low: float = 0.6, probe_interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic):
        if not 0.0 < low < high:
            raise ValueError(f"adaptive cap thresholds must satisfy 0 < low < high, got {low}, {high}")
        self.max_batch_size = max_batch_size
        self.cap = max_batch_size
        self.high, self.low = high, low
        self.memory_fraction = memory_fraction
        self.probe_interval_s = probe_interval_s
        self.clock = clock
        self.changes = 0
        self.last_fraction = math.nan
        self._next_probe = -math.inf

    def update(self) -> int:
        """Probes memory (at most every probe_interval_s) and returns the cap in force."""
        now = self.clock()
        if now < self._next_probe:
            return self.cap
        self._next_probe = now + self.probe_interval_s
        fraction = float(self.memory_fraction())
        self.last_fraction = fraction
        old = self.cap
        if fraction > self.high and self.cap > 1:
            self.cap = max(1, self.cap // 2)
        elif fraction < self.low and self.cap < self.max_batch_size:
            self.cap = min(self.max_batch_size, self.cap * 2)
        if self.cap != old:
            self.changes += 1
            LOG.warning("batch cap %d -> %d (memory at %.0f %%, thresholds %.0f/%.0f %%)", old, self.cap,
                        fraction * 100, self.low * 100, self.high * 100)
        return self.cap


@dataclass
class _Pending:
    item: Any
    enqueued: float
    deadline: float
    future: concurrent.futures.Future | asyncio.Future
    loop: asyncio.AbstractEventLoop | None = None  # set for an asyncio future: the loop that owns it


def _settle(answers: list[tuple[asyncio.Future, Any]]) -> None:
    """Runs on the waiters' loop: one call answers all of a batch's asyncio futures."""
    for future, answer in answers:
        if future.done():  # its waiter gave up (cancelled)
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    expired: int = 0
    rejected: int = 0
    last_batch_size: int = 0
    inline: int = 0  # requests run at once on the caller's event loop (counted in batches and items too)
    lone_streak: int = 0  # forward passes of one request in a row, up to now


class DynamicBatcher:
    """Gathers submitted items into batches for `run_batch(items) -> [result or Exception per item]`."""

    def __init__(self, run_batch: Callable[[list], Sequence[Any]], max_batch_size: int = 16,
                 max_wait_s: float = 0.005, queue_limit: int = 256, cap: AdaptiveCap | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_batch: Callable[[int, float], None] | None = None, inline_after: int = INLINE_AFTER):
        if max_batch_size < 1 or queue_limit < 1 or max_wait_s < 0 or inline_after < 0:
            raise ValueError("max_batch_size and queue_limit must be >= 1, max_wait_s and inline_after >= 0")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_limit = queue_limit
        self.cap = cap
        self.clock = clock
        self.on_batch = on_batch
        self.inline_after = inline_after
        self.stats = BatchStats()
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False  # a forward pass is running (the worker's batch or an inline run)
        self._claimed = False  # an event loop's request holds the idle batcher while its loop runs once
        self.in_flight = 0  # items taken by the worker (or run inline) and not answered yet
        self._batch_s = 0.01  # running mean of a batch's duration, for Retry-After
        self._thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def current_cap(self) -> int:
        return self.cap.cap if self.cap else self.max_batch_size

    def submit(self, item: Any, timeout_s: float) -> concurrent.futures.Future:
        """Queues an item; the future holds its result or raises. Raises OverloadedError when full."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._enqueue(item, timeout_s, future, None)
        return future

    def submit_async(self, item: Any, timeout_s: float) -> asyncio.Future:
        """`submit` from a coroutine: an asyncio future of the running loop, answered together with the
        batch's other waiters of that loop. Raises OverloadedError when full."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(item, timeout_s, future, loop)
        return future

    async def infer_async(self, item: Any, timeout_s: float, grace_s: float, inline: bool = True) -> Any:
        """One item's result from a coroutine: a lone client's run at once on this loop (when `inline`),
        others batched by the worker and waited for at most `timeout_s + grace_s`. Raises OverloadedError,
        DeadlineExceededError, BatcherClosedError or the item's own error."""
        # the streak read without the lock first: under load (no streak) a request pays one lock, not two
        if inline and self.stats.lone_streak >= self.inline_after and self._claim():
            arrived = self.clock()
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            try:
                # the loop's other ready requests (read in the same pass over the sockets) submit during
                # this yield: then this one batches with them instead of running alone before them
                await asyncio.sleep(0)
            except BaseException:  # cancelled: the claim must not hold the worker
                with self._cond:
                    self._claimed = False
                    self._cond.notify()
                raise
            if self._settle_claim(item, arrived, timeout_s, future, loop):
                return self._run_inline(item)
        else:
            future = self.submit_async(item, timeout_s)
        try:
            return await asyncio.wait_for(future, timeout_s + grace_s)
        except TimeoutError as exc:
            raise DeadlineExceededError("the forward pass did not finish in time") from exc

    def _idle(self) -> bool:
        return not (self._busy or self._queue or self._claimed or self._closed)

    def _claim(self) -> bool:
        with self._cond:
            if self.stats.lone_streak < self.inline_after or not self._idle():
                return False
            self._claimed = True
            return True

    def _settle_claim(self, item: Any, arrived: float, timeout_s: float, future: asyncio.Future,
                      loop: asyncio.AbstractEventLoop) -> bool:
        """Ends the claim: True when still idle (the caller runs the item now; the batcher is busy until
        it is done), else the item is queued at the head (it came before all that wait) for the worker."""
        with self._cond:
            self._claimed = False
            if self._idle():
                self._busy = True
                self.in_flight = 1
                if self.cap:
                    self.cap.update()  # the memory probe keeps running when a lone client never batches
                return True
            try:
                if self._closed:
                    raise BatcherClosedError("server is shutting down")
                self._check_room()
                self._queue.appendleft(_Pending(item, arrived, arrived + timeout_s, future, loop))
            finally:
                self._cond.notify()  # the worker waits while a claim is pending
            return False

    def _run_inline(self, item: Any) -> Any:
        start = time.perf_counter()
        try:
            try:
                results = list(self.run_batch([item]))
                if len(results) != 1:
                    raise RuntimeError(f"batch of 1 gave {len(results)} results")
            except Exception:
                LOG.exception("inline batch of 1 failed")
                raise
            elapsed = time.perf_counter() - start
            self._batch_s = 0.8 * self._batch_s + 0.2 * elapsed
            self.stats.batches += 1
            self.stats.items += 1
            self.stats.inline += 1
            self._count_size(1)
        finally:
            with self._cond:
                self._busy = False
                self.in_flight = 0
                self._cond.notify()
        if self.on_batch:
            self.on_batch(1, elapsed)
        if isinstance(results[0], BaseException):
            raise results[0]
        return results[0]

    def _count_size(self, size: int) -> None:
        self.stats.last_batch_size = size
        self.stats.lone_streak = self.stats.lone_streak + 1 if size == 1 else 0

    def _check_room(self) -> None:
        """Raises OverloadedError when the queue is full (called with the lock held)."""
        if len(self._queue) >= self.queue_limit:
            self.stats.rejected += 1
            batches_ahead = math.ceil(len(self._queue) / max(1, self.current_cap))
            raise OverloadedError(f"queue full ({self.queue_limit} requests waiting)",
                                  retry_after_s=max(0.1, batches_ahead * self._batch_s))

    def _enqueue(self, item: Any, timeout_s: float, future: concurrent.futures.Future | asyncio.Future,
                 loop: asyncio.AbstractEventLoop | None) -> None:
        now = self.clock()
        with self._cond:
            if self._closed:
                raise BatcherClosedError("server is shutting down")
            self._check_room()
            self._queue.append(_Pending(item, now, now + timeout_s, future, loop))
            self._cond.notify()

    @staticmethod
    def _answer(answers: list[tuple[_Pending, Any]]) -> None:
        """Each pending gets its result or exception: concurrent futures at once, asyncio futures in one
        call per loop (a loop already closed has nobody left waiting)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
        for p, answer in answers:
            if p.loop is not None:
                by_loop.setdefault(p.loop, []).append((p.future, answer))
            elif isinstance(answer, BaseException):
                p.future.set_exception(answer)
            else:
                p.future.set_result(answer)
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, pairs)
            except RuntimeError:
                LOG.debug("event loop closed before %d answers", len(pairs))

    def close(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        self._answer([(p, BatcherClosedError("server is shutting down")) for p in left])

    def _take(self) -> list[_Pending] | None:
        """Blocks until a batch is due: the cap is reached or the oldest waited max_wait_s."""
        with self._cond:
            # an inline run or a pending claim holds the model: one forward pass at a time
            while (not self._queue or self._busy or self._claimed) and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                return None
            cap = self.cap.update() if self.cap else self.max_batch_size
            # wait for more only when the previous batch was bigger than what waits now: then other
            # clients are active and their requests are on the way; a lone client never waits
            while len(self._queue) < min(cap, self.stats.last_batch_size) and not self._closed:
                remaining = self._queue[0].enqueued + self.max_wait_s - self.clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._queue.popleft() for _ in range(min(cap, len(self._queue)))]
            self._busy = True
        now = self.clock()
        live, expired = [], []
        for p in batch:
            if now > p.deadline:
                self.stats.expired += 1
                expired.append((p, DeadlineExceededError(
                    f"request waited {1000 * (now - p.enqueued):.0f} ms, past its deadline; not computed")))
            elif p.loop is not None:
                # a benign cross-thread read: a waiter cancelled just after is skipped by _settle
                if not p.future.cancelled():
                    live.append(p)
            elif p.future.set_running_or_notify_cancel():
                live.append(p)
        self._answer(expired)
        return live

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False

    def _run(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        start = time.perf_counter()
        self.in_flight = len(batch)
        try:
            results = list(self.run_batch([p.item for p in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
        except Exception as exc:  # every waiter must get an answer, the loop must live on
            LOG.exception("batch of %d failed", len(batch))
            results = [exc] * len(batch)
        elapsed = time.perf_counter() - start
        self._batch_s = 0.8 * self._batch_s + 0.2 * elapsed
        self.stats.batches += 1
        self.stats.items += len(batch)
        self._count_size(len(batch))
        with self._cond:  # idle before the answers go out: a lone client's next request may run inline
            self._busy = False
            self.in_flight = 0
        self._answer(list(zip(batch, results, strict=True)))
        if self.on_batch:
            self.on_batch(len(batch), elapsed)
