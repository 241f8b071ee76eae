"""The dashboard's web side, without ROS: a Starlette app (the page, its assets, a JSON snapshot and a
server-sent event stream) served by uvicorn in a thread of the node.

Routes: `/` the page; `/static/...` its script and style (package files); `/vendor/chart.min.js`
Chart.js from the system (Debian libjs-chart.js), so nothing is fetched from the internet;
`/api/snapshot` the whole state as JSON; `/api/events` server-sent events, one `snapshot` event per
push (the first whole, then the latest values with only new series points); `/healthz`.

A change of the state wakes every stream at once (`Broadcaster.notify`, safe from any thread); a stream
pushes at most once per `min_push_interval_s` and at least once per `update_period_s`. Push pacing is
wall time on purpose: it is how often a browser is refreshed, not robot time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vla_monitoring.dashboard import DashboardConfig, DashboardState

LOG = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
_NO_CACHE = {"Cache-Control": "no-cache"}
# How long a stopping server waits for open streams before it cancels them [s].
_GRACEFUL_STOP_S = 1.0


class Broadcaster:
    """Wakes the open event streams (each an asyncio.Event on the server's loop) when the state changes."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: set[asyncio.Event] = set()
        self._pending = False  # a wake-up is already queued on the loop: one per loop turn is enough
        self.closing = False

    @property
    def clients(self) -> int:
        return len(self._events)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def add(self, event: asyncio.Event) -> None:
        self._events.add(event)

    def discard(self, event: asyncio.Event) -> None:
        self._events.discard(event)

    def notify(self) -> None:
        """Safe from any thread: every stream pushes soon."""
        loop = self._loop
        if loop is None or self._pending or loop.is_closed():
            return
        self._pending = True
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop closed between the check and the call: the server is stopping
            self._pending = False

    def close(self) -> None:
        """Ends every stream (they see `closing` when woken)."""
        self.closing = True
        self.notify()

    def _wake(self) -> None:
        self._pending = False
        for event in self._events:
            event.set()


def make_app(state: DashboardState, clock: Callable[[], float], broadcaster: Broadcaster) -> Starlette:
    """The dashboard's ASGI app over `state`; `clock` gives the time snapshots are taken at (ROS time)."""
    config: DashboardConfig = state.config
    chart_js = Path(config.chart_js)
    if not chart_js.is_file():
        raise FileNotFoundError(f"Chart.js not found at {chart_js} (Debian package libjs-chart.js)")
    pushes = {"count": 0}

    async def index(_request: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html", headers=_NO_CACHE)

    async def chart(_request: Request) -> Response:
        return FileResponse(chart_js, media_type="text/javascript", headers=_NO_CACHE)

    async def snapshot(_request: Request) -> Response:
        return JSONResponse(state.snapshot(clock()), headers=_NO_CACHE)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "clients": broadcaster.clients, "pushes": pushes["count"]})

    async def events(_request: Request) -> Response:
        if broadcaster.clients >= config.max_clients:
            return JSONResponse({"error": f"at most {config.max_clients} pages at once"}, status_code=503)
        return StreamingResponse(_stream(), media_type="text/event-stream",
                                 headers={**_NO_CACHE, "X-Accel-Buffering": "no"})

    async def _stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        broadcaster.attach(loop)
        wake = asyncio.Event()
        broadcaster.add(wake)
        try:
            yield "retry: 1000\n\n"  # a dropped stream is reopened after 1 s; it then starts whole again
            since = 0
            while not broadcaster.closing:
                wake.clear()  # before the snapshot: a change after it wakes the next round
                snap = state.snapshot(clock(), since)
                since = snap["seq"]
                pushed_at = loop.time()
                pushes["count"] += 1
                yield f"id: {since}\nevent: snapshot\ndata: {json.dumps(snap, separators=(',', ':'))}\n\n"
                with contextlib.suppress(TimeoutError):  # nothing changed: push anyway (ages go on)
                    await asyncio.wait_for(wake.wait(), config.update_period_s)
                rest = config.min_push_interval_s - (loop.time() - pushed_at)
                if rest > 0:
                    await asyncio.sleep(rest)
        finally:
            broadcaster.discard(wake)

    app = Starlette(routes=[
        Route("/", index),
        Route("/vendor/chart.min.js", chart),
        Route("/api/snapshot", snapshot),
        Route("/api/events", events),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
    ])
    app.state.pushes = pushes
    return app


class WebServer:
    """uvicorn serving `app` from a thread; the socket is bound at construction, so a port in use is an
    OSError here, not a silent thread death."""

    def __init__(self, app: Starlette, host: str, port: int, broadcaster: Broadcaster):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self._sock.listen(64)
        self._broadcaster = broadcaster
        self.port = self._sock.getsockname()[1]
        self.host = host
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=_GRACEFUL_STOP_S)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="dashboard-web", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._server.started

    @property
    def clients(self) -> int:
        return self._broadcaster.clients

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._broadcaster.close()
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException:  # uvicorn exits by SystemExit on a start-up failure: say why before the thread ends
            LOG.exception("dashboard web server stopped")
            raise
