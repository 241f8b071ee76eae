"""The cloud client against a real HTTP server on loopback (the standard library's, scripted per test), its
circuit breaker, and the control loop in cloud and hybrid modes. Deadlines run on the manual clock: no test
sleeps or asserts on wall time."""

from __future__ import annotations

import base64
import subprocess
import threading

import cv2
import numpy as np
import pytest
from cloud_support import CLOUD_VALUE, ScriptedCloud, cloud_controller

from vla_edge.cloud_client import (
    BreakerState,
    CircuitBreaker,
    CloudAuthError,
    CloudClient,
    CloudConnectionError,
    CloudPolicy,
    CloudRejectedError,
    CloudTimeoutError,
    CloudUnavailableError,
)
from vla_edge.config import InferenceConfig
from vla_edge.controller import ErrorType, Frame, StepOutcome
from vla_edge.modes import ModeSwitch
from vla_monitoring.config import build_config
from vla_msgs.launching import free_port
from vla_msgs.tasks import parse_task_command
from vla_msgs.waiting import wait_until

TOKEN = "s3cret-token"


@pytest.fixture
def cloud():
    server = ScriptedCloud()
    yield server
    server.close()


def _rgb(value: int = 128) -> np.ndarray:
    img = np.zeros((96, 96, 3), np.uint8)
    img[..., 0] = value            # red, so that a channel swap would show
    img[32:64, 32:64, 2] = 200
    return img


def _breaker(clock, threshold: int = 3, retry_s: float = 0.5, max_retry_s: float = 2.0) -> CircuitBreaker:
    return CircuitBreaker(threshold, retry_s, max_retry_s, clock.now)


# ---- the HTTP client ----
def test_client_sends_jpeg_instruction_and_token_over_one_connection(cloud):
    client = CloudClient(cloud.url, token=TOKEN, jpeg_quality=95)
    try:
        answers = [client.infer(_rgb(), "go to the red cube") for _ in range(5)]
    finally:
        client.close()
    assert len(cloud.peers) == 1, "the session did not keep its one connection alive"
    request = cloud.requests[0]
    assert request["path"] == "/infer" and request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["body"]["instruction"] == "go to the red cube"
    raw = base64.b64decode(request["body"]["image"])
    assert raw[:3] == b"\xff\xd8\xff", "the frame is not sent as JPEG"
    decoded = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(decoded.astype(int) - _rgb().astype(int)).mean() < 3.0, "colours or pixels changed on the way"
    answer = answers[-1]
    assert answer.actions.shape == (4, 6) and answer.actions.dtype == np.float32
    assert answer.actions[0, 0] == pytest.approx(CLOUD_VALUE) and answer.model_version == "cloud-1"
    assert answer.server_inference_ms == 1.5 and 0 < answer.jpeg_bytes < 96 * 96 * 3


def test_jpeg_quality_from_config_changes_the_size(cloud):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    sizes = {}
    for quality in (30, 95):
        client = CloudClient(cloud.url, jpeg_quality=quality)
        sizes[quality] = client.infer(noisy, "go").jpeg_bytes
        client.close()
    assert sizes[30] < sizes[95]


@pytest.mark.parametrize(("behaviour", "error", "reason"), [
    ("error", CloudRejectedError, "HTTP 500"),
    ("garbage", CloudRejectedError, "not JSON"),
    ("bad_shape", CloudRejectedError, "shape"),
    ("dead", CloudConnectionError, "POST /infer"),
])
def test_client_errors_are_typed(cloud, behaviour, error, reason):
    cloud.behaviour = behaviour
    client = CloudClient(cloud.url)
    with pytest.raises(error, match=reason):
        client.infer(_rgb(), "go")
    client.close()


def test_no_server_and_read_timeout():
    with pytest.raises(CloudConnectionError):
        CloudClient(f"http://127.0.0.1:{free_port()}").infer(_rgb(), "go")
    held = ScriptedCloud()
    held.behaviour = "hold"
    try:
        with pytest.raises(CloudTimeoutError):
            CloudClient(held.url, read_timeout_s=0.2).infer(_rgb(), "go")
    finally:
        held.close()


def test_bad_url_and_missing_ca_file_are_refused(tmp_path):
    with pytest.raises(ValueError, match="http"):
        CloudClient("ftp://example")
    with pytest.raises(ValueError, match="~cloud_ca_file"):
        CloudClient("https://127.0.0.1:1", ca_file=str(tmp_path / "missing.pem"))


# ---- the breaker ----
def test_breaker_opens_after_threshold_probes_with_backoff_and_closes(clock):
    breaker = _breaker(clock, threshold=3, retry_s=0.5, max_retry_s=1.5)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow_request()
    breaker.record_success()  # a success resets the count: failures must be in a row
    for _ in range(2):
        breaker.record_failure()
    assert breaker.allow_request()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow_request()
    assert not breaker.claim_probe()
    clock.advance(0.5)
    assert breaker.claim_probe() and breaker.state is BreakerState.HALF_OPEN
    assert not breaker.claim_probe(), "two probes at once"
    breaker.record_failure()  # failed probe: wait twice as long
    clock.advance(0.9)
    assert not breaker.claim_probe()
    clock.advance(0.1)
    assert breaker.claim_probe()
    breaker.record_failure()
    clock.advance(1.5)  # capped at max_retry_s, not 2.0
    assert breaker.claim_probe()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow_request()


# ---- the cloud policy: deadline and breaker together ----
def test_a_late_answer_misses_its_deadline_on_the_clock(cloud, clock):
    cloud.behaviour = "hold"
    policy = CloudPolicy(CloudClient(cloud.url), _breaker(clock), clock)
    result = {}

    def call():
        try:
            policy.infer({"rgb": _rgb(), "instruction": "go", "deadline_s": 0.04})
        except CloudTimeoutError as exc:
            result["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: clock.waiting > 0 and cloud.infer_count() == 1, 10.0, "the request to be in flight")
    assert "error" not in result
    clock.advance(0.04)
    caller.join(10.0)
    assert "40 ms" in str(result["error"])
    cloud.release.set()
    policy.close()


def test_a_dead_server_costs_threshold_requests_then_only_probes(cloud, clock):
    policy = CloudPolicy(CloudClient(cloud.url), _breaker(clock, threshold=3, retry_s=0.5), clock)
    obs = {"rgb": _rgb(), "instruction": "go", "deadline_s": 0.04}
    assert policy.infer(obs)["actions"].shape == (4, 6)
    cloud.behaviour = "error"
    errors = []
    for _ in range(10):  # ten control steps while the server fails
        with pytest.raises((CloudRejectedError, CloudUnavailableError)) as info:
            policy.infer(obs)
        errors.append(type(info.value))
    assert errors[:3] == [CloudRejectedError] * 3 and set(errors[3:]) == {CloudUnavailableError}
    assert cloud.infer_count() == 1 + 3, "requests were sent while the breaker was open"
    cloud.behaviour = "ok"
    clock.advance(0.5)  # the probe is due: the next request starts it in the background and is refused
    with pytest.raises(CloudUnavailableError):
        policy.infer(obs)
    wait_until(lambda: policy.breaker.state is BreakerState.CLOSED, 10.0, "the /health probe to close the breaker")
    assert [r["path"] for r in cloud.requests[4:]] == ["/health"]
    assert policy.infer(obs)["model_version"] == "cloud-1"
    policy.close()


# ---- the control loop in cloud and hybrid modes ----
def _frame(stamp: float) -> Frame:
    img = _rgb(100)
    return Frame(stamp, stamp, lambda: img)


@pytest.fixture
def make_cloud_controller(make_policy, clock, cloud):
    made = []

    def _make(mode: str, reports: list, errors: list | None = None, **params):
        ctl, cloud_policy = cloud_controller(make_policy("image", chunk=4), cloud.url, mode, clock, _breaker(clock),
                                             reports, errors, **params)
        made.append((ctl, cloud_policy))
        return ctl

    yield _make
    for ctl, cloud_policy in made:
        ctl.shutdown()
        cloud_policy.close()


def _run(ctl, clock, t):
    clock.set(t)
    result = ctl.step()
    if result.outcome is StepOutcome.ACTION:
        ctl.finish_step(result, 0.1)
    return result


def test_hybrid_serves_a_failed_cloud_request_from_the_edge_in_the_same_step(make_cloud_controller, clock, cloud):
    reports = []
    ctl = make_cloud_controller("hybrid", reports, prefetch_lead=0.0)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go to the red cube"))
    first = _run(ctl, clock, 100.01)
    assert first.outcome is StepOutcome.ACTION and first.action.chunk.source == "cloud"
    assert first.action.action[0] == pytest.approx(CLOUD_VALUE) and first.action.chunk.model_version == "cloud-1"
    assert reports[0].ok and reports[0].served_by == "cloud" and reports[0].actions.shape == (4, 6)
    ctl.set_task(parse_task_command("go to the blue ball"))  # a new task: its first step needs a new chunk now
    cloud.behaviour = "dead"
    ctl.submit_frame(_frame(100.1))
    second = _run(ctl, clock, 100.11)
    assert second.outcome is StepOutcome.ACTION, "the step whose cloud request failed published nothing"
    assert second.action.chunk.source == "edge" and second.action.chunk.model_version == "test-1"
    assert not reports[-1].ok and reports[-1].served_by == "edge" and reports[-1].error_type == "cloud_connection"
    wait_until(lambda: not ctl.worker_busy, 10.0, "the worker's prefetch")
    c = ctl.counters
    assert (c.cloud_actions, c.edge_actions) == (1, 1) and c.starved_steps == 0
    assert c.cloud_fallbacks == c.cloud_errors >= 1, "a failed hybrid request was not served by the edge"


def test_hybrid_back_to_cloud_after_the_breaker_closes(make_cloud_controller, clock, cloud):
    reports = []
    ctl = make_cloud_controller("hybrid", reports, prefetch_lead=0.0, chunk_refresh=3)
    cloud.behaviour = "error"
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    t = 100.0
    sources = []
    for _ in range(6):  # every step re-plans (chunk_refresh 3 of 4): three failures open the breaker
        t += 0.1
        ctl.submit_frame(_frame(t - 0.01))
        res = _run(ctl, clock, t)
        assert res.outcome is StepOutcome.ACTION
        sources.append(res.action.chunk.source)
        wait_until(lambda: not ctl.worker_busy, 10.0, "the worker")
    assert set(sources) == {"edge"} and cloud.infer_count() == 3
    cloud.behaviour = "ok"
    breaker = ctl.runtime.cloud.policy.policy.breaker  # under the clamp and finite guard
    for _ in range(10):  # past the retry interval: a probe closes the breaker, chunks come from the cloud again
        t += 0.1
        ctl.submit_frame(_frame(t - 0.01))
        res = _run(ctl, clock, t)
        assert res.outcome is StepOutcome.ACTION
        wait_until(lambda: not ctl.worker_busy, 10.0, "the worker")
        # the probe runs in the background, in wall time: let it answer before the next step
        wait_until(lambda: breaker.state is not BreakerState.HALF_OPEN, 10.0, "the /health probe")
        if res.action.chunk.source == "cloud":
            break
    assert res.action.chunk.source == "cloud", "hybrid mode never went back to the cloud"
    assert ctl.counters.starved_steps == 0


def test_cloud_mode_stops_the_robot_when_the_server_is_gone(make_cloud_controller, clock, cloud):
    reports, errors = [], []
    ctl = make_cloud_controller("cloud", reports, errors, prefetch_lead=0.0)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    assert _run(ctl, clock, 100.01).action.chunk.source == "cloud"
    ctl.set_task(parse_task_command("go there"))
    cloud.behaviour = "dead"
    ctl.submit_frame(_frame(100.1))
    assert _run(ctl, clock, 100.11).outcome is StepOutcome.STOP, "no zero command when the server went away"
    ctl.submit_frame(_frame(100.2))
    later = _run(ctl, clock, 100.21)
    assert later.outcome is StepOutcome.WAITING, "cloud mode acted without its server"
    assert ctl.counters.edge_actions == 0 and errors.count(ErrorType.CLOUD_LOST) == 1
    assert all(r.served_by == "none" for r in reports[1:])
    # the operator drives on the edge for a while, then asks for the (still dead) cloud again: stopped again
    assert ctl.modes.request("edge")[0]
    ctl.submit_frame(_frame(100.3))
    assert _run(ctl, clock, 100.31).action.chunk.source == "edge"
    assert ctl.modes.request("cloud")[0]
    ctl.set_task(parse_task_command("go back"))
    ctl.submit_frame(_frame(100.4))
    assert _run(ctl, clock, 100.41).outcome is StepOutcome.STOP, "no zero when the cloud was lost a second time"


def test_modes_need_a_cloud_url_and_deadline_caps():
    assert not ModeSwitch.for_cloud(False).request("hybrid")[0]
    switch = ModeSwitch.for_cloud(True)
    assert switch.request("hybrid") == (True, "mode hybrid", "hybrid") and switch.uses_cloud
    config = build_config(InferenceConfig, {"model_path": "x", "cloud_timeout": 0.5})
    assert config.cloud_deadline_s(hybrid=False) == pytest.approx(0.08)  # the step's wait (inference_timeout)
    assert config.cloud_deadline_s(hybrid=True) == pytest.approx(0.04)   # half of it: room for the edge model


# ---- against the real cloud server (vla_edge.cloud, in-process on loopback) ----
@pytest.fixture(scope="module")
def served_image_policy(tmp_path_factory):
    from vla_edge.cloud.runtime import ServedPolicy
    from vla_edge.testing import write_policy

    return ServedPolicy.load(write_policy("image", tmp_path_factory.mktemp("served"), chunk=5), "cpu", warmup_runs=1)


def test_real_server_over_tls_with_token_and_ca_file(served_image_policy, tmp_path):
    from cloud_support import running_server

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    with running_server(served_image_policy, token=TOKEN, certfile=str(cert), keyfile=str(key)) as server:
        url = server.http.replace("http://", "https://")
        client = CloudClient(url, token=TOKEN, ca_file=str(cert), read_timeout_s=30.0)
        assert client.health()["model_version"] == "test-1"
        answer = client.infer(_rgb(), "go to the red cube")
        assert answer.actions.shape == (5, 6) and answer.model_version == "test-1"
        assert np.isfinite(answer.server_inference_ms)
        client.close()
        wrong = CloudClient(url, token="not-the-token", ca_file=str(cert), read_timeout_s=30.0)
        with pytest.raises(CloudAuthError, match=r"401.*~cloud_token_file"):
            wrong.infer(_rgb(), "go")
        wrong.close()
        untrusted = CloudClient(url, token=TOKEN, read_timeout_s=30.0)  # the system CAs do not know this one
        with pytest.raises(CloudConnectionError, match=r"(?i)certificate"):
            untrusted.health()
        untrusted.close()
