"""ProbeRunner runs probes concurrently off the caller's thread with deadlines; check_cloud's strict answer."""

import http.server
import json
import threading
import time
from typing import ClassVar

import pytest

from vla_monitoring.probes import Probe, ProbeRunner, check_cloud
from vla_msgs.waiting import wait_until


class FakeClock:
    def __init__(self, t=0.0):
        self.t = t

    def __call__(self):
        return self.t


def wait_for(cond, timeout_s=5.0):
    return wait_until(cond, timeout_s, "the probes' threads", poll_s=0.005)


def test_a_hung_probe_neither_blocks_poll_nor_delays_the_others():
    clock = FakeClock()
    release = threading.Event()
    calls = {"fast": 0, "hung": 0}

    def fast():
        calls["fast"] += 1
        return True, ""

    def hung():
        calls["hung"] += 1
        release.wait(10)
        return True, ""

    runner = ProbeRunner([Probe("hung", hung, 0.5), Probe("fast", fast, 0.5)], clock=clock)
    try:
        t0 = time.monotonic()
        assert runner.poll() == {}  # both started, none answered yet, poll returned at once
        assert time.monotonic() - t0 < 0.5
        wait_for(lambda: "fast" in runner.poll())
        assert runner.poll()["fast"].healthy and "hung" not in runner.poll()
        clock.t = 0.6
        result = runner.poll()["hung"]
        assert not result.healthy and result.reason == "no answer in 0.5 s"
        assert "hung" in runner.running() and calls["hung"] == 1  # never started twice while running
        wait_for(lambda: bool(runner.poll()) and calls["fast"] >= 3)  # the fast one keeps being re-run
        clock.t = 2.9
        release.set()  # it answers, 2.4 s past its deadline: still unhealthy, so it does not flap
        wait_for(lambda: "hung" not in runner.running())
        result = runner.poll()["hung"]
        assert not result.healthy and result.reason == "answered after 2.90 s, over its 0.5 s"
    finally:
        release.set()
        runner.close()


def test_a_probe_that_raises_reads_unhealthy():
    def broken():
        raise KeyError("boom")

    runner = ProbeRunner([Probe("broken", broken, 1.0)], clock=FakeClock())
    try:
        runner.poll()
        wait_for(lambda: "broken" in runner.poll())
        result = runner.poll()["broken"]
        assert not result.healthy and result.reason == "probe failed: KeyError: 'boom'"
    finally:
        runner.close()


def test_the_pool_is_bounded():
    release = threading.Event()
    active, peak = [0], [0]
    lock = threading.Lock()

    def slow():
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        release.wait(5)
        with lock:
            active[0] -= 1
        return True, ""

    runner = ProbeRunner([Probe(f"p{i}", slow, 1.0) for i in range(6)], clock=FakeClock(), max_workers=2)
    try:
        runner.poll()
        wait_for(lambda: active[0] == 2)
        time.sleep(0.05)
        assert peak[0] == 2
    finally:
        release.set()
        runner.close()


def test_a_closed_runner_starts_nothing():
    calls = []
    runner = ProbeRunner([Probe("a", lambda: calls.append(1) or (True, ""), 1.0)], clock=FakeClock())
    runner.close()
    assert runner.poll() == {} and runner.runs == 0 and calls == []


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        ProbeRunner([Probe("a", lambda: (True, ""), 1.0)] * 2)


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[dict] = {}

    def do_GET(self):
        status, body = self.answers[self.path]
        if status == "hang":
            time.sleep(1.0)
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body if isinstance(body, bytes) else body.encode())

    def log_message(self, *_args):
        pass


@pytest.fixture(scope="module")
def server():
    _Handler.answers = {
        "/ok": (200, json.dumps({"status": "ok", "model_version": "2.0.0"})),
        "/no_status": (200, json.dumps({"model_version": "2.0.0"})),
        "/degraded": (200, json.dumps({"status": "degraded"})),
        "/list": (200, json.dumps(["ok"])),
        "/text": (200, "fine"),
        "/created": (201, json.dumps({"status": "ok"})),
        "/down": (503, json.dumps({"status": "ok"})),
        "/big": (200, b'{"status": "ok", "pad": "' + b"x" * 70000 + b'"}'),
        "/slow": ("hang", json.dumps({"status": "ok"})),
    }
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_cloud_healthy_only_on_200_and_status_ok(server):
    assert check_cloud(server + "/ok", 2.0) == (True, "")


@pytest.mark.parametrize("path,says", [
    ("/no_status", "expected {\"status\": \"ok\"}"),
    ("/degraded", '"status": "degraded"'),
    ("/list", "expected {\"status\": \"ok\"}"),
    ("/text", "answered no JSON"),
    ("/created", "answered HTTP 201, expected 200"),
    ("/down", "answered HTTP 503"),
    ("/big", "more than 65536 bytes"),
    ("/slow", "unreachable"),
])
def test_cloud_anything_else_is_unhealthy(server, path, says):
    healthy, reason = check_cloud(server + path, 0.3)
    assert not healthy and says in reason, reason


def test_cloud_unreachable():
    healthy, reason = check_cloud("http://127.0.0.1:9/health", 0.5)
    assert not healthy and "unreachable" in reason
