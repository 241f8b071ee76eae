"""The dynamic batcher and the adaptive cap, without a server: real threads, a batch function the
test holds with an event, memory readings the test chooses."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from vla_edge.cloud import batching
from vla_edge.cloud.batching import (
    AdaptiveCap,
    BatcherClosedError,
    DeadlineExceededError,
    DynamicBatcher,
    OverloadedError,
)
from vla_msgs.waiting import wait_until

WAIT_S = 20.0


class HeldBatches:
    """run_batch that records each batch, the thread it ran on and how many ran at once, and blocks
    while `hold` is clear."""

    def __init__(self):
        self.hold = threading.Event()
        self.batches: list[list] = []
        self.threads: list[str] = []
        self.started = threading.Event()
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0

    def __call__(self, items: list) -> list:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.batches.append(list(items))
            self.threads.append(threading.current_thread().name)
            self.started.set()
            assert self.hold.wait(WAIT_S)
            return [ValueError(f"bad {i}") if isinstance(i, str) else i * 10 for i in items]
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def held():
    run = HeldBatches()
    yield run
    run.hold.set()


def make(run, **kwargs) -> DynamicBatcher:
    kwargs.setdefault("max_wait_s", 0.001)
    return DynamicBatcher(run, **kwargs)


def test_waiting_requests_go_in_one_batch_in_order(held):
    batcher = make(held, max_batch_size=16)
    first = batcher.submit(0, WAIT_S)
    wait_until(held.started.is_set, WAIT_S, "first batch running")
    futures = [batcher.submit(i, WAIT_S) for i in range(1, 6)]
    wait_until(lambda: batcher.depth == 5, WAIT_S, "five queued")
    held.hold.set()
    assert [f.result(WAIT_S) for f in [first, *futures]] == [0, 10, 20, 30, 40, 50]
    assert held.batches == [[0], [1, 2, 3, 4, 5]]
    batcher.close()


def test_cap_splits_batches(held):
    batcher = make(held, max_batch_size=4)
    batcher.submit(-1, WAIT_S)
    wait_until(held.started.is_set, WAIT_S, "first batch running")
    futures = [batcher.submit(i, WAIT_S) for i in range(10)]
    held.hold.set()
    assert [f.result(WAIT_S) for f in futures] == [i * 10 for i in range(10)]
    assert [len(b) for b in held.batches] == [1, 4, 4, 2]
    batcher.close()


def test_full_queue_refuses_at_once_with_a_retry_hint(held):
    batcher = make(held, max_batch_size=2, queue_limit=3)
    batcher.submit(0, WAIT_S)
    wait_until(held.started.is_set, WAIT_S, "first batch running")
    queued = [batcher.submit(i, WAIT_S) for i in range(1, 4)]
    with pytest.raises(OverloadedError) as info:
        batcher.submit(99, WAIT_S)
    assert info.value.retry_after_s > 0
    assert batcher.stats.rejected == 1
    held.hold.set()
    assert [f.result(WAIT_S) for f in queued] == [10, 20, 30]
    assert all(99 not in b for b in held.batches)
    batcher.close()


def test_request_past_its_deadline_is_not_computed(held):
    now = [0.0]
    batcher = make(held, max_batch_size=8, max_wait_s=0.0, clock=lambda: now[0])
    batcher.submit(0, WAIT_S)
    wait_until(held.started.is_set, WAIT_S, "first batch running")
    late = batcher.submit(1, timeout_s=0.5)
    on_time = batcher.submit(2, timeout_s=5.0)
    now[0] = 1.0  # past the first one's deadline, within the second's
    held.hold.set()
    with pytest.raises(DeadlineExceededError, match="not computed"):
        late.result(WAIT_S)
    assert on_time.result(WAIT_S) == 20
    assert held.batches == [[0], [2]]
    assert batcher.stats.expired == 1
    batcher.close()


def test_one_bad_item_fails_alone_and_a_failed_batch_fails_its_items_only():
    calls = []

    def run(items):
        calls.append(items)
        if items == [None]:
            raise RuntimeError("forward pass exploded")
        return [ValueError("bad") if isinstance(i, str) else i for i in items]

    batcher = DynamicBatcher(run, max_batch_size=1, max_wait_s=0.0)
    assert batcher.submit(3, WAIT_S).result(WAIT_S) == 3
    with pytest.raises(ValueError, match="bad"):
        batcher.submit("x", WAIT_S).result(WAIT_S)
    with pytest.raises(RuntimeError, match="exploded"):
        batcher.submit(None, WAIT_S).result(WAIT_S)
    assert batcher.submit(4, WAIT_S).result(WAIT_S) == 4  # the worker lives on
    batcher.close()


def test_adaptive_cap_halves_above_90_doubles_below_60(caplog):
    readings = iter([0.5, 0.95, 0.95, 0.95, 0.95, 0.95, 0.7, 0.3, 0.3, 0.3, 0.3, 0.3])
    cap = AdaptiveCap(16, lambda: next(readings), probe_interval_s=0.0)
    with caplog.at_level(logging.WARNING, logger="vla_edge.cloud.batching"):
        seen = [cap.update() for _ in range(12)]
    assert seen == [16, 8, 4, 2, 1, 1, 1, 2, 4, 8, 16, 16]
    assert cap.changes == 8
    assert sum("batch cap" in r.getMessage() for r in caplog.records) == 8
    assert cap.last_fraction == 0.3


def test_batcher_takes_no_more_than_the_adaptive_cap(held):
    cap = AdaptiveCap(8, lambda: 0.95, probe_interval_s=0.0)  # above 90 %: 8 -> 4 on the first batch
    batcher = make(held, max_batch_size=8, cap=cap)
    batcher.submit(-1, WAIT_S)
    wait_until(held.started.is_set, WAIT_S, "first batch running")
    futures = [batcher.submit(i, WAIT_S) for i in range(8)]
    held.hold.set()
    [f.result(WAIT_S) for f in futures]
    assert max(len(b) for b in held.batches[1:]) <= 2  # 4 then 2 as memory stays high
    assert batcher.current_cap < 8
    batcher.close()


def test_lone_client_never_waits_but_a_busy_server_gathers(held):
    # the clock stands still: a batcher that waits max_wait_s for company would never start the batch
    batcher = make(held, max_batch_size=8, max_wait_s=1.0, clock=lambda: 0.0)
    held.hold.set()
    assert batcher.submit(0, WAIT_S).result(WAIT_S) == 0  # nobody else around: no wait
    held.hold.clear()
    held.started.clear()
    batcher.submit(1, WAIT_S)
    wait_until(held.started.is_set, WAIT_S, "batch running")
    futures = [batcher.submit(i, WAIT_S) for i in (2, 3, 4)]
    wait_until(lambda: batcher.depth == 3, WAIT_S, "three queued")
    held.hold.set()
    [f.result(WAIT_S) for f in futures]
    assert held.batches[-1] == [2, 3, 4]
    first = batcher.submit(5, WAIT_S)  # the last batch held three: the worker waits for the others
    wait_until(lambda: batcher.depth == 1, WAIT_S, "one queued")
    rest = [batcher.submit(i, WAIT_S) for i in (6, 7)]
    assert [f.result(WAIT_S) for f in [first, *rest]] == [50, 60, 70]
    assert held.batches[-1] == [5, 6, 7]
    batcher.close()


def test_async_waiters_answered_once_per_batch_in_order_expired_and_closed(held):
    """An event loop's waiters: one call into the loop per batch answers them all (results, a failed item,
    a request past its deadline), and closing answers those still queued."""
    batcher = make(held, max_batch_size=16)

    async def scenario() -> tuple[list, list, list]:
        loop = asyncio.get_running_loop()
        settles = []
        plain = loop.call_soon_threadsafe

        def counted(callback, *args, **kwargs):
            if callback is batching._settle:
                settles.append(len(args[0]))
            return plain(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counted
        first = batcher.submit_async(0, WAIT_S)
        await loop.run_in_executor(None, wait_until, held.started.is_set, WAIT_S, "first batch running")
        late = batcher.submit_async(9, timeout_s=0.05)
        waiting = [batcher.submit_async(i, WAIT_S) for i in (1, "x", 2, 3)]
        await loop.run_in_executor(None, wait_until, lambda: batcher.clock() > batcher._queue[0].deadline,
                                   WAIT_S, "the hurried request past its deadline")
        held.hold.set()
        answers = await asyncio.wait_for(asyncio.gather(first, late, *waiting, return_exceptions=True), WAIT_S)
        held.hold.clear()
        busy = batcher.submit_async(4, WAIT_S)
        await loop.run_in_executor(None, wait_until, lambda: batcher.stats.batches == 2 and batcher.in_flight,
                                   WAIT_S, "third batch running")
        queued = batcher.submit_async(5, WAIT_S)
        closing = loop.run_in_executor(None, batcher.close, 1.0)
        closed = await asyncio.wait_for(asyncio.gather(queued, return_exceptions=True), WAIT_S)
        held.hold.set()
        await closing
        await asyncio.wait_for(asyncio.gather(busy, return_exceptions=True), WAIT_S)
        return answers, closed, settles

    answers, closed, settles = asyncio.run(scenario())
    assert answers[0] == 0 and [answers[i] for i in (2, 4, 5)] == [10, 20, 30]
    assert isinstance(answers[1], DeadlineExceededError) and isinstance(answers[3], ValueError)
    assert held.batches[:2] == [[0], [1, "x", 2, 3]]
    assert isinstance(closed[0], BatcherClosedError)
    # first batch, the expired one, the second batch (its four at once), the closing, the third batch
    assert settles[:3] == [1, 1, 4] and 1 in settles[3:]


def test_lone_async_request_runs_at_once_on_its_loop_after_a_streak_of_singles():
    # the clock stands still and max_wait_s is huge: a worker that waited for company would never answer
    run = HeldBatches()
    run.hold.set()
    batcher = make(run, max_batch_size=8, max_wait_s=1000.0, clock=lambda: 0.0, inline_after=3)

    async def lone() -> tuple[list, str]:
        answers = [await asyncio.wait_for(batcher.infer_async(i, WAIT_S, WAIT_S), WAIT_S) for i in range(6)]
        return answers, threading.current_thread().name

    answers, loop_thread = asyncio.run(lone())
    assert answers == [0, 10, 20, 30, 40, 50]
    # three singles through the worker, then the lone client's requests on its own loop
    assert run.threads == ["batcher"] * 3 + [loop_thread] * 3
    assert batcher.stats.inline == 3 and batcher.stats.batches == 6 and batcher.stats.items == 6
    assert batcher.stats.lone_streak == 6 and batcher.in_flight == 0
    batcher.close()


def test_a_batch_above_one_sends_requests_back_to_the_worker(held):
    batcher = make(held, max_batch_size=8, inline_after=1)
    held.hold.set()
    assert asyncio.run(batcher.infer_async(0, WAIT_S, WAIT_S)) == 0  # through the worker: no streak yet
    assert asyncio.run(batcher.infer_async(1, WAIT_S, WAIT_S)) == 10  # inline
    held.hold.clear()
    held.started.clear()
    batcher.submit(2, WAIT_S)
    wait_until(held.started.is_set, WAIT_S, "batch running")
    futures = [batcher.submit(i, WAIT_S) for i in (3, 4)]
    wait_until(lambda: batcher.depth == 2, WAIT_S, "two queued")
    held.hold.set()
    assert [f.result(WAIT_S) for f in futures] == [30, 40]
    assert batcher.stats.lone_streak == 0  # other clients are around
    assert asyncio.run(batcher.infer_async(5, WAIT_S, WAIT_S)) == 50
    assert held.threads[1] != "batcher" and held.threads[-1] == "batcher"
    assert held.batches[-2:] == [[3, 4], [5]] and batcher.stats.inline == 1
    batcher.close()


def test_requests_ready_together_on_one_loop_still_batch(held):
    """The first of five requests submitted in one pass of the loop claims the idle batcher, yields once,
    sees the others queued meanwhile and joins them at the head: one forward pass of five, in order."""
    held.hold.set()
    sizes = []
    batcher = make(held, max_batch_size=8, on_batch=lambda size, _s: sizes.append(size), inline_after=0)

    async def together() -> list:
        return await asyncio.wait_for(asyncio.gather(*(batcher.infer_async(i, WAIT_S, WAIT_S) for i in range(5)),
                                                     return_exceptions=True), WAIT_S)

    assert asyncio.run(together()) == [0, 10, 20, 30, 40]
    assert held.batches == [[0, 1, 2, 3, 4]] and held.threads == ["batcher"]
    assert batcher.stats.inline == 0 and sizes == [5]
    batcher.close()


def test_an_inline_run_holds_the_worker_one_forward_pass_at_a_time(held):
    batcher = make(held, max_batch_size=8, max_wait_s=0.0, inline_after=0)
    answer: list = []
    loop_thread = threading.Thread(target=lambda: answer.append(asyncio.run(batcher.infer_async(0, WAIT_S, WAIT_S))))
    loop_thread.start()
    wait_until(held.started.is_set, WAIT_S, "the inline run in its forward pass")
    assert held.threads == [loop_thread.name] and batcher.in_flight == 1
    futures = [batcher.submit(i, WAIT_S) for i in (1, 2)]
    # a worker that started a batch beside the inline run would take these at once
    wait_until(lambda: batcher.depth == 2, WAIT_S, "two requests queued behind the inline run")
    assert len(held.batches) == 1
    held.hold.set()
    loop_thread.join(WAIT_S)
    assert answer == [0]
    assert [f.result(WAIT_S) for f in futures] == [10, 20]
    assert held.batches == [[0], [1, 2]] and held.most_running == 1
    assert batcher.stats.inline == 1 and batcher.stats.batches == 2
    batcher.close()


def test_inline_errors_reach_their_caller_and_leave_the_batcher_idle():
    def run(items):
        if items == [None]:
            raise RuntimeError("forward pass exploded")
        return [ValueError("bad") if isinstance(i, str) else i for i in items]

    batcher = DynamicBatcher(run, max_batch_size=4, max_wait_s=0.0, inline_after=0)

    async def scenario() -> int:
        with pytest.raises(ValueError, match="bad"):
            await batcher.infer_async("x", WAIT_S, WAIT_S)
        with pytest.raises(RuntimeError, match="exploded"):
            await batcher.infer_async(None, WAIT_S, WAIT_S)
        return await batcher.infer_async(4, WAIT_S, WAIT_S)

    assert asyncio.run(scenario()) == 4
    assert batcher.stats.inline == 2 and batcher.in_flight == 0  # the exploded pass is not counted
    assert batcher.submit(5, WAIT_S).result(WAIT_S) == 5  # the worker is not held by a failed inline run
    batcher.close()
    with pytest.raises(BatcherClosedError):
        asyncio.run(batcher.infer_async(6, WAIT_S, WAIT_S))
