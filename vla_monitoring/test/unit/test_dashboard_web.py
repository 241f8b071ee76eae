"""The dashboard's web side on a real uvicorn server on loopback: the page and its assets (Chart.js from
the system, nothing from the internet), the JSON snapshot, and the event stream (whole, then deltas
pushed when the state changes), a bound on connected pages, and a clean stop."""

import http.client
import json
import urllib.error
import urllib.request

import pytest

from vla_monitoring.config import build_config
from vla_monitoring.dashboard import DashboardConfig, DashboardState
from vla_monitoring.dashboard_web import WEB_DIR, Broadcaster, WebServer, make_app
from vla_msgs import json_forms
from vla_msgs.waiting import wait_until

TIMEOUT_S = 20.0


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def served():
    config = build_config(DashboardConfig, {"update_period_s": 1.0, "min_push_interval_s": 0.0, "max_clients": 2})
    state = DashboardState(config)
    broadcaster = Broadcaster()
    state.on_change = broadcaster.notify
    clock = Clock()
    server = WebServer(make_app(state, clock, broadcaster), "127.0.0.1", 0, broadcaster)
    server.start()
    wait_until(lambda: server.started, TIMEOUT_S, "uvicorn started")
    yield state, clock, server
    server.stop()


def get(server, path):
    with urllib.request.urlopen(server.url + path.lstrip("/"), timeout=TIMEOUT_S) as resp:
        return resp.status, resp.headers, resp.read()


class Events:
    """A server-sent event stream read line by line."""

    def __init__(self, server):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT_S)
        self.conn.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()

    def next(self) -> dict:
        event, data = None, []
        while True:
            line = self.resp.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif not line and event:
                assert event == "snapshot"
                return json.loads("\n".join(data))

    def close(self):
        self.conn.close()


def resources(cpu):
    return json_forms.RESOURCES.build(timestamp=0.0, cpu_percent=cpu, memory_percent=10.0, disk_percent=None,
                                      gpu_percent=None, gpu_memory_percent=None, nodes={})


def test_page_and_assets_are_served_from_the_package_and_the_system(served):
    _state, _clock, server = served
    status, headers, body = get(server, "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    for asset in ("vendor/chart.min.js", "static/dashboard.js", "static/dashboard.css"):
        assert f'"{asset}"' in page
    assert "http://" not in page and "https://" not in page  # nothing from the internet
    _, _, chart = get(server, "/vendor/chart.min.js")
    assert b"Chart.js v" in chart[:200]
    _, _, script = get(server, "/static/dashboard.js")
    assert script == (WEB_DIR / "dashboard.js").read_bytes() and b"EventSource" in script
    _, headers, _ = get(server, "/static/dashboard.css")
    assert headers["Content-Type"].startswith("text/css")
    with pytest.raises(urllib.error.HTTPError) as err:
        get(server, "/static/../dashboard.py")
    assert err.value.code == 404


def test_snapshot_endpoint_is_the_state(served):
    state, clock, server = served
    state.resources("robot_1", resources(42.0), 99.0)
    _, headers, body = get(server, "/api/snapshot")
    snap = json.loads(body)
    assert headers["Content-Type"] == "application/json"
    assert snap["now"] == clock.now and snap["robots"]["robot_1"]["resources"]["cpu_percent"] == 42.0


def test_event_stream_starts_whole_then_pushes_each_change_as_a_delta(served):
    state, clock, server = served
    state.resources("robot_1", resources(10.0), 99.0)
    events = Events(server)
    try:
        assert events.resp.status == 200 and events.resp.headers["Content-Type"].startswith("text/event-stream")
        first = events.next()
        assert first["full"] and first["robots"]["robot_1"]["series"]["cpu_percent"] == [[99.0, 10.0]]
        clock.now = 101.0
        state.resources("robot_1", resources(20.0), 101.0)
        snap = events.next()
        while snap["robots"]["robot_1"]["resources"]["cpu_percent"] != 20.0:  # a periodic push may come first
            snap = events.next()
        assert not snap["full"] and snap["robots"]["robot_1"]["series"]["cpu_percent"] == [[101.0, 20.0]]
        wait_until(lambda: json.loads(get(server, "/healthz")[2])["clients"] == 1, TIMEOUT_S, "one client")
    finally:
        events.close()


def test_connected_pages_are_bounded(served):
    _state, _clock, server = served
    streams = [Events(server), Events(server)]
    try:
        for s in streams:
            s.next()
        with pytest.raises(urllib.error.HTTPError) as err:
            get(server, "/api/events")
        assert err.value.code == 503
    finally:
        for s in streams:
            s.close()


def test_stop_ends_open_streams(served):
    _state, _clock, server = served
    events = Events(server)
    events.next()
    server.stop()
    assert not server.alive
    events.close()


def test_a_port_in_use_is_an_error_at_construction(served):
    state, clock, server = served
    with pytest.raises(OSError):
        WebServer(make_app(state, clock, Broadcaster()), "127.0.0.1", server.port, Broadcaster())


def test_missing_chart_js_is_named():
    config = build_config(DashboardConfig, {"chart_js": "/nonexistent/chart.min.js"})
    with pytest.raises(FileNotFoundError, match=r"libjs-chart\.js"):
        make_app(DashboardState(config), Clock(), Broadcaster())
