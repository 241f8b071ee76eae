"""WebhookSink against a real loopback HTTP server (http.server in a thread): retries with exponential
backoff and a limit, 4xx not retried, a bounded queue that drops its oldest, submit never blocks."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vla_monitoring.webhook import WebhookError, WebhookSink, post_json
from vla_msgs.launching import free_port
from vla_msgs.waiting import wait_until


class Receiver:
    """A loopback server answering `codes` in turn (then 200), recording every body it was sent."""

    def __init__(self, codes=(), hold: threading.Event | None = None):
        self.codes = list(codes)
        self.bodies: list[dict] = []
        self.attempts = 0
        self.hold = hold
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.hold is not None:
                    receiver.hold.wait(10.0)
                receiver.attempts += 1
                code = receiver.codes.pop(0) if receiver.codes else 200
                if code == 200:
                    assert self.headers["Content-Type"] == "application/json"
                    receiver.bodies.append(json.loads(body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


class RecordedWaits:
    """The sink's retry waits, recorded instead of slept (the delays are what is under test)."""

    def __init__(self):
        self.delays: list[float] = []

    def __call__(self, delay_s: float) -> bool:
        self.delays.append(delay_s)
        return False


def test_retries_with_exponential_backoff_until_delivered(receiver_factory):
    receiver = receiver_factory(codes=[503, 500, 429])
    waits = RecordedWaits()
    sink = WebhookSink(receiver.url, max_attempts=5, backoff_s=0.25, backoff_max_s=10.0, wait=waits)
    sink.submit(json.dumps({"type": "high_cpu", "state": "firing"}))
    wait_until(lambda: sink.sent == 1, 10.0, "the event delivered")
    assert receiver.attempts == 4 and receiver.bodies == [{"type": "high_cpu", "state": "firing"}]
    assert waits.delays == [0.25, 0.5, 1.0]
    assert (sink.retries, sink.failed, sink.dropped) == (3, 0, 0)
    sink.close()


def test_gives_up_after_max_attempts_with_capped_backoff(receiver_factory):
    receiver = receiver_factory(codes=[503] * 10)
    waits = RecordedWaits()
    sink = WebhookSink(receiver.url, max_attempts=4, backoff_s=1.0, backoff_max_s=3.0, wait=waits)
    sink.submit("{}")
    wait_until(lambda: sink.failed == 1, 10.0, "the event given up")
    assert receiver.attempts == 4 and waits.delays == [1.0, 2.0, 3.0]
    assert sink.sent == 0 and "HTTP 503" in sink.last_error
    sink.close()


def test_a_refused_event_is_not_retried_and_the_next_goes_out(receiver_factory):
    receiver = receiver_factory(codes=[400])
    waits = RecordedWaits()
    sink = WebhookSink(receiver.url, max_attempts=5, wait=waits)
    sink.submit('{"n": 1}')
    sink.submit('{"n": 2}')
    wait_until(lambda: sink.sent == 1 and sink.failed == 1, 10.0, "one refused, one delivered")
    assert receiver.bodies == [{"n": 2}] and waits.delays == []


def test_unreachable_receiver_is_retried_then_given_up():
    waits = RecordedWaits()
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", timeout_s=1.0, max_attempts=3, backoff_s=0.1,
                       wait=waits)
    sink.submit("{}")
    wait_until(lambda: sink.failed == 1, 10.0, "the event given up")
    assert waits.delays == [0.1, 0.2] and "Connection" in sink.last_error


def test_full_queue_drops_the_oldest_and_submit_never_blocks(receiver_factory):
    hold = threading.Event()
    receiver = receiver_factory(hold=hold)   # the server holds the first POST until released
    sink = WebhookSink(receiver.url, queue_size=3, timeout_s=10.0)
    sink.submit('{"n": 0}')
    wait_until(lambda: sink.queued == 0 and not sink.idle(), 10.0, "the first event in flight")
    for n in range(1, 8):
        sink.submit(json.dumps({"n": n}))    # returns at once although the receiver hangs
    assert sink.queued == 3 and sink.dropped == 4
    hold.set()
    wait_until(lambda: sink.idle() and sink.sent == 4, 10.0, "the queue sent")
    assert [b["n"] for b in receiver.bodies] == [0, 5, 6, 7]
    sink.close()


def test_close_interrupts_a_backoff_and_counts_what_is_left(receiver_factory):
    receiver = receiver_factory(codes=[503] * 10)
    sink = WebhookSink(receiver.url, max_attempts=10, backoff_s=600.0, backoff_max_s=600.0)
    sink.submit("{}")
    sink.submit("{}")
    wait_until(lambda: sink.retries == 1, 10.0, "the first retry wait")
    sink.close(timeout_s=5.0)
    assert not sink._thread.is_alive()
    assert (sink.dropped, sink.sent) == (2, 0)
    sink.submit("{}")
    assert sink.dropped == 3


def test_post_json_errors_say_whether_to_retry(receiver_factory):
    receiver = receiver_factory(codes=[404, 502])
    with pytest.raises(WebhookError, match="HTTP 404") as info:
        post_json(receiver.url, b"{}", 2.0)
    assert not info.value.retry
    with pytest.raises(WebhookError, match="HTTP 502") as info:
        post_json(receiver.url, b"{}", 2.0)
    assert info.value.retry
    post_json(receiver.url, b"{}", 2.0)
    with pytest.raises(WebhookError, match="invalid URL") as info:
        post_json("http://127.0.0.1:port/x", b"{}", 2.0)
    assert not info.value.retry
