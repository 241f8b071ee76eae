"""The cloud client under the server's overload signals and its own faults: Retry-After parsing, the breaker's
hold-off, the real cloud server shedding load (its queue filled by held batches) and the control loop in hybrid
and cloud modes meanwhile; 4xx answers that must not open the breaker. Deadlines and hold-offs run on the
manual clock: no test sleeps or asserts on wall time."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import threading
import time

import numpy as np
import pytest
import requests
from cloud_support import ScriptedCloud, cloud_controller, running_server

from vla_edge.cloud_client import (
    RETRY_AFTER_DEFAULT_S,
    RETRY_AFTER_MAX_S,
    BreakerState,
    CircuitBreaker,
    CloudAuthError,
    CloudClient,
    CloudClientError,
    CloudError,
    CloudOverloadedError,
    CloudPolicy,
    CloudRejectedError,
    parse_retry_after,
)
from vla_edge.config import InferenceConfig
from vla_edge.controller import ErrorType, Frame, InferenceController, StepOutcome
from vla_monitoring.config import ConfigError, build_config
from vla_msgs.tasks import parse_task_command
from vla_msgs.waiting import wait_until

NOW = 1_700_000_000.0  # wall-clock epoch seconds the HTTP-date cases are read against


def _rgb() -> np.ndarray:
    img = np.zeros((96, 96, 3), np.uint8)
    img[32:64, 32:64, 2] = 200
    return img


def _obs(deadline_s: float = 5.0) -> dict:
    return {"rgb": _rgb(), "instruction": "go", "deadline_s": deadline_s}


def _breaker(clock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(threshold, 0.5, 2.0, clock.now)


# ---- Retry-After ----
@pytest.mark.parametrize(("header", "expected"), [
    ("3", 3.0), (" 2.5 ", 2.5), ("0", 0.0),
    ("3600", RETRY_AFTER_MAX_S),                                           # capped
    (email.utils.formatdate(NOW + 7, usegmt=True), 7.0),                   # HTTP-date (IMF-fixdate)
    (email.utils.formatdate(NOW + 7).replace("-0000", "+0000"), 7.0),      # numeric zone
    (email.utils.formatdate(NOW + 7), 7.0),                                # "-0000": UTC
    (email.utils.formatdate(NOW + 86400, usegmt=True), RETRY_AFTER_MAX_S),
    (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),                  # already past: no wait
    (None, RETRY_AFTER_DEFAULT_S), ("", RETRY_AFTER_DEFAULT_S), ("soon", RETRY_AFTER_DEFAULT_S),
    ("-4", RETRY_AFTER_DEFAULT_S), ("nan", RETRY_AFTER_DEFAULT_S), ("inf", RETRY_AFTER_DEFAULT_S),
    ("Mon, 99 Foo 2023 25:61:00 GMT", RETRY_AFTER_DEFAULT_S),
])
def test_retry_after_is_seconds_or_a_date_capped_and_garbage_is_the_default(header, expected):
    assert parse_retry_after(header, NOW) == pytest.approx(expected)


def test_retry_after_default_and_cap_are_the_callers():
    assert parse_retry_after("junk", NOW, default_s=2.0, max_s=10.0) == 2.0
    assert parse_retry_after("45", NOW, default_s=2.0, max_s=10.0) == 10.0
    assert parse_retry_after(None, NOW, default_s=20.0, max_s=10.0) == 10.0
    with pytest.raises(ConfigError, match="cloud_retry_after_default"):
        build_config(InferenceConfig, {"model_path": "x", "cloud_retry_after_default": 40.0})


# ---- the breaker's hold-off ----
def test_hold_off_opens_at_once_probes_only_after_it_and_logs_once(clock, caplog):
    breaker = _breaker(clock, threshold=3)
    caplog.set_level(logging.INFO, logger="vla_edge.cloud_client")
    breaker.hold_off(2.0)
    assert breaker.state is BreakerState.OPEN and breaker.overloaded, "one overload answer did not open it"
    clock.advance(1.0)
    breaker.hold_off(1.5)  # a second shed request of the same episode: later end, no second log line
    breaker.record_success()  # an answer sent before the overload: the hold-off still holds
    assert breaker.state is BreakerState.OPEN
    clock.advance(1.49)
    assert not breaker.claim_probe(), "probe before the hold-off ended"
    assert breaker.hold_remaining_s() == pytest.approx(0.01)
    clock.advance(0.01)
    assert breaker.claim_probe() and breaker.state is BreakerState.HALF_OPEN
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and not breaker.overloaded
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "overloaded" in warnings[0].getMessage()
    assert any("again after its overload (2 overload answers)" in r.getMessage() for r in caplog.records)


def test_a_failed_probe_after_an_overload_is_an_outage(clock):
    breaker = _breaker(clock)
    breaker.hold_off(1.0)
    clock.advance(1.0)
    assert breaker.claim_probe()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.overloaded


# ---- overload answers and client faults, as a scripted server gives them ----
@pytest.fixture
def cloud():
    server = ScriptedCloud()
    yield server
    server.close()


@pytest.mark.parametrize(("status", "header", "hold_s"), [
    (503, "2", 2.0), (429, "4", 4.0), (503, "whenever", RETRY_AFTER_DEFAULT_S), (504, None, RETRY_AFTER_DEFAULT_S),
    (429, None, RETRY_AFTER_DEFAULT_S), (503, "100000", 5.0),  # the client's cap (retry_after_max_s below)
])
def test_an_overload_answer_holds_off_for_its_retry_after(cloud, clock, status, header, hold_s):
    cloud.status, cloud.headers = status, ({"Retry-After": header} if header is not None else {})
    client = CloudClient(cloud.url, retry_after_max_s=5.0)
    policy = CloudPolicy(client, _breaker(clock, threshold=3), clock)
    with pytest.raises(CloudOverloadedError, match=f"HTTP {status}") as info:
        policy.infer(_obs())
    assert info.value.retry_after_s == pytest.approx(hold_s) and info.value.kind == "cloud_overloaded"
    assert policy.breaker.state is BreakerState.OPEN and policy.breaker.overloaded
    for _ in range(3):
        with pytest.raises(CloudOverloadedError, match="holding off"):
            policy.infer(_obs())
    clock.advance(hold_s - 0.01)
    with pytest.raises(CloudOverloadedError):
        policy.infer(_obs())
    assert [r["path"] for r in cloud.requests] == ["/infer"], "requests or probes went out during the hold-off"
    cloud.status = None
    clock.advance(0.01)
    with pytest.raises(CloudError):  # the probe starts in the background; this request is refused
        policy.infer(_obs())
    wait_until(lambda: policy.breaker.state is BreakerState.CLOSED, 10.0, "the /health probe after the hold-off")
    assert cloud.requests[-1]["path"] == "/health"
    assert policy.infer(_obs())["model_version"] == "cloud-1"
    policy.close()


def test_a_probe_answered_by_an_overload_holds_off_again(cloud, clock, caplog):
    caplog.set_level(logging.WARNING, logger="vla_edge.cloud_client")
    cloud.status, cloud.headers = 503, {"Retry-After": "2"}
    policy = CloudPolicy(CloudClient(cloud.url), _breaker(clock), clock)
    with pytest.raises(CloudOverloadedError):
        policy.infer(_obs())
    clock.advance(2.0)
    with pytest.raises(CloudError):  # starts the probe, which the still overloaded server sheds too
        policy.infer(_obs())
    wait_until(lambda: policy.breaker.state is BreakerState.OPEN, 10.0, "the probe's answer")
    assert [r["path"] for r in cloud.requests] == ["/infer", "/health"] and policy.breaker.overloaded
    cloud.status = None
    clock.advance(1.99)
    with pytest.raises(CloudOverloadedError):
        policy.infer(_obs())
    assert len(cloud.requests) == 2, "probed again before the probe's own Retry-After ended"
    clock.advance(0.01)
    with pytest.raises(CloudError):
        policy.infer(_obs())
    wait_until(lambda: policy.breaker.state is BreakerState.CLOSED, 10.0, "the second probe")
    assert len(caplog.records) == 1, "one overload episode logged more than once"
    policy.close()


def test_an_http_date_retry_after_from_the_server(cloud, clock):
    cloud.status, cloud.headers = 503, {"Retry-After": email.utils.formatdate(time.time() + 8, usegmt=True)}
    policy = CloudPolicy(CloudClient(cloud.url), _breaker(clock), clock)
    with pytest.raises(CloudOverloadedError) as info:
        policy.infer(_obs())
    assert 6.0 <= info.value.retry_after_s <= 8.0  # whole seconds on the wire, read a moment later
    policy.close()


def test_a_503_without_retry_after_is_an_ordinary_failure(cloud, clock):
    cloud.status = 503
    policy = CloudPolicy(CloudClient(cloud.url), _breaker(clock, threshold=3), clock)
    for _ in range(2):
        with pytest.raises(CloudRejectedError, match="503"):
            policy.infer(_obs())
    assert policy.breaker.state is BreakerState.CLOSED and not policy.breaker.overloaded
    policy.close()


@pytest.mark.parametrize(("status", "error", "kind"), [
    (400, CloudClientError, "cloud_client_error"), (401, CloudAuthError, "cloud_unauthorized"),
    (403, CloudAuthError, "cloud_unauthorized"), (413, CloudClientError, "cloud_client_error"),
    (422, CloudClientError, "cloud_client_error"),
])
def test_a_client_fault_never_opens_the_breaker(cloud, clock, status, error, kind):
    cloud.status = status
    policy = CloudPolicy(CloudClient(cloud.url), _breaker(clock, threshold=3), clock)
    for _ in range(6):  # twice the failure threshold
        with pytest.raises(error, match=f"HTTP {status}") as info:
            policy.infer(_obs())
        assert info.value.kind == kind and info.value.status == status
    assert policy.breaker.state is BreakerState.CLOSED and cloud.infer_count() == 6
    if status == 401:
        assert "~cloud_token_file" in str(info.value)
    policy.close()


# ---- the real cloud server shedding load ----
@pytest.fixture(scope="module")
def served_image_policy(tmp_path_factory):
    from vla_edge.cloud.runtime import ServedPolicy
    from vla_edge.testing import write_policy

    return ServedPolicy.load(write_policy("image", tmp_path_factory.mktemp("served"), chunk=5), "cpu", warmup_runs=1)


class HeldBatches:
    """Holds the real server's forward passes until released, as a slow model under load would: with
    --max-batch-size 1 and --queue-limit 1, one request in the forward pass and one waiting fill it.
    (The only change to the server: its batcher's run_batch waits on an event before the real one.)"""

    def __init__(self, batcher):
        self.entered = threading.Event()
        self.release = threading.Event()
        self._run = batcher.run_batch
        batcher.run_batch = self._held

    def _held(self, items: list) -> list:
        self.entered.set()
        self.release.wait(30.0)
        return self._run(items)


def _send_quietly(client: CloudClient) -> None:
    with contextlib.suppress(CloudError):  # the filler's own outcome (a late 504, say) is not under test
        client.infer(_rgb(), "fill the queue")


@pytest.fixture
def overloaded(served_image_policy):
    """A real cloud server whose queue is full: every further /infer is shed with 503 + Retry-After."""
    with running_server(served_image_policy, queue_limit=1, max_batch_size=1) as server:
        held = HeldBatches(server.service.batcher)
        filler = CloudClient(server.http, read_timeout_s=30.0)
        threads = [threading.Thread(target=_send_quietly, args=(filler,), daemon=True) for _ in range(2)]
        try:
            threads[0].start()
            wait_until(held.entered.is_set, 30.0, "the first request in the (held) forward pass")
            threads[1].start()
            wait_until(lambda: server.service.batcher.depth == 1, 30.0, "the second request in the queue")
            yield server, held
        finally:
            held.release.set()
            for thread in threads:
                thread.join(30.0)
            filler.close()


def test_real_server_shedding_load_holds_the_breaker_for_its_retry_after(overloaded, clock, caplog):
    server, held = overloaded
    caplog.set_level(logging.WARNING, logger="vla_edge.cloud_client")
    sent: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *_args, **_kwargs: sent.append(response.request.path_url))
    policy = CloudPolicy(CloudClient(server.http, read_timeout_s=30.0, session=session), _breaker(clock, 3), clock)
    with pytest.raises(CloudOverloadedError, match="HTTP 503") as info:
        policy.infer(_obs())
    assert info.value.retry_after_s == 1.0  # the server's Retry-After: 1
    assert policy.breaker.state is BreakerState.OPEN, "one 503 + Retry-After did not open the breaker"
    for _ in range(5):
        with pytest.raises(CloudOverloadedError, match="Retry-After"):
            policy.infer(_obs())
    clock.advance(0.99)
    with pytest.raises(CloudOverloadedError):
        policy.infer(_obs())
    assert sent == ["/infer"], "requests or /health probes went to the overloaded server"
    assert server.service.batcher.stats.rejected == 1
    assert len(caplog.records) == 1, "the overload was logged more than once"
    held.release.set()  # the server catches up
    clock.advance(0.01)
    with pytest.raises(CloudError):  # starts the probe; this request is still refused
        policy.infer(_obs())
    wait_until(lambda: policy.breaker.state is BreakerState.CLOSED, 30.0, "the /health probe after the hold-off")
    assert sent[-1] == "/health" and not policy.breaker.overloaded
    assert policy.infer(_obs())["actions"].shape == (5, 6)
    policy.close()


# ---- the control loop meanwhile ----
def _frame(stamp: float) -> Frame:
    img = _rgb()
    return Frame(stamp, stamp, lambda: img)


def _run(ctl: InferenceController, clock, t: float):
    clock.set(t)
    result = ctl.step()
    if result.outcome is StepOutcome.ACTION:
        ctl.finish_step(result, 0.1)
    return result


@pytest.fixture
def make_controller(make_policy, clock):
    made = []

    def _make(url: str, mode: str, reports: list, errors: list, token: str = "") -> InferenceController:
        ctl, cloud_policy = cloud_controller(make_policy("image", chunk=4), url, mode, clock, _breaker(clock), reports,
                                             errors, token=token, read_timeout_s=30.0, prefetch_lead=0.0)
        made.append((ctl, cloud_policy))
        return ctl

    yield _make
    for ctl, cloud_policy in made:
        ctl.shutdown()
        cloud_policy.close()


@pytest.mark.parametrize("mode", ["hybrid", "cloud"])
def test_real_server_overload_in_the_control_loop(overloaded, make_controller, clock, mode):
    server, _held = overloaded
    reports, errors = [], []
    ctl = make_controller(server.http, mode, reports, errors)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go to the red cube"))
    first = _run(ctl, clock, 100.01)
    assert reports[0].error_type == "cloud_overloaded" and reports[0].retry_after_s == 1.0
    if mode == "hybrid":  # the edge model serves the shed request in the same control period
        assert first.outcome is StepOutcome.ACTION and first.action.chunk.source == "edge"
        assert reports[0].served_by == "edge"
    else:  # as when the server is gone: one zero command, then nothing
        assert first.outcome is StepOutcome.STOP and reports[0].served_by == "none"
    wait_until(lambda: not ctl.worker_busy, 10.0, "the worker")
    ctl.set_task(parse_task_command("go to the blue ball"))  # a new task needs a new chunk at once
    ctl.submit_frame(_frame(100.1))
    second = _run(ctl, clock, 100.11)
    if mode == "hybrid":
        assert second.outcome is StepOutcome.ACTION and second.action.chunk.source == "edge"
    else:
        assert second.outcome is StepOutcome.WAITING and errors.count(ErrorType.CLOUD_LOST) == 1
    wait_until(lambda: not ctl.worker_busy, 10.0, "the worker")
    assert all(r.error_type == "cloud_overloaded" for r in reports)
    c = ctl.counters
    assert c.cloud_overloaded == c.cloud_errors == len(reports) >= 2 and c.cloud_client_errors == 0
    assert c.cloud_fallbacks == (c.cloud_errors if mode == "hybrid" else 0)
    assert server.service.batcher.stats.rejected == 1, "the client kept sending to the overloaded server"


@pytest.mark.parametrize("mode", ["hybrid", "cloud"])
def test_a_wrong_token_on_the_real_server_in_the_control_loop(served_image_policy, make_controller, clock, mode):
    reports, errors = [], []
    with running_server(served_image_policy, token="the-token") as server:
        ctl = make_controller(server.http, mode, reports, errors, token="not-the-token")
        ctl.submit_frame(_frame(100.0))
        ctl.set_task(parse_task_command("go"))
        t = 100.0
        outcomes = []
        for _ in range(5):  # each step a new task: a new cloud request every step
            t += 0.1
            ctl.set_task(parse_task_command(f"go {t:.1f}"))
            ctl.submit_frame(_frame(t - 0.01))
            outcomes.append(_run(ctl, clock, t).outcome)
            wait_until(lambda: not ctl.worker_busy, 10.0, "the worker")
        breaker = ctl.runtime.cloud.policy.policy.breaker  # under the clamp and finite guard
        assert breaker.state is BreakerState.CLOSED, "a wrong token opened the breaker as if the server were down"
    assert reports and all(r.error_type == "cloud_unauthorized" for r in reports)
    assert "~cloud_token_file" in reports[0].error
    c = ctl.counters
    assert c.cloud_client_errors == c.cloud_errors == len(reports) and c.cloud_overloaded == 0
    if mode == "hybrid":
        assert set(outcomes) == {StepOutcome.ACTION} and c.edge_actions >= 5 and c.cloud_actions == 0
    else:
        assert outcomes[0] is StepOutcome.STOP and c.edge_actions == 0 and c.cloud_actions == 0
