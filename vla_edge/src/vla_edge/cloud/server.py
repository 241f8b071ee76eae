"""The command line and the process: `python -m vla_edge.cloud --model PATH ...` (or `rosrun vla_edge
cloud_server`) loads the policy, then serves HTTP on `--http-port` (uvicorn) and the openpi WebSocket
on `--ws-port` (`websockets`), TLS with `--certfile/--keyfile`, or deploys on Ray Serve with
`--ray-replicas N`. Prints one `ready` line on stdout when both ports accept connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import re
import signal
import ssl
import sys
import threading
from collections.abc import Iterator, Sequence

import uvicorn

from vla_edge.cloud.app import create_app
from vla_edge.cloud.auth import TokenError
from vla_edge.cloud.config import CloudServerConfig
from vla_edge.cloud.openpi_ws import serve_openpi
from vla_edge.cloud.service import CloudService
from vla_edge.policy import PolicyLoadError
from vla_monitoring.config import CONFIG_EXIT_CODE, ConfigError, build_config, spec_of

LOG = logging.getLogger("vla_edge.cloud")
LOAD_EXIT_CODE = 3


def parse_args(argv: Sequence[str]) -> CloudServerConfig:
    """Flags are the config's fields; values are checked by the suite's config idiom (ConfigError)."""
    parser = argparse.ArgumentParser(prog="python -m vla_edge.cloud", description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(CloudServerConfig):
        default = f.default
        kind = type(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else str
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=default,
                            help=f"{spec_of(f).help} (default {default!r})")
    values = vars(parser.parse_args(list(argv)))
    try:
        return build_config(CloudServerConfig, values)
    except ConfigError as exc:  # name the flag the user typed, not the config field
        raise ConfigError(re.sub(r"~(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(exc))) from exc


def _uvicorn_config(app, config: CloudServerConfig, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=config.host, port=port, log_level="warning", access_log=False,
                          ws_max_size=64 << 20, ws_per_message_deflate=False, ws_ping_interval=None,
                          ssl_certfile=config.certfile or None, ssl_keyfile=config.keyfile or None,
                          timeout_graceful_shutdown=5)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its own signal handling: CloudServer stops both servers on one signal
    (uvicorn would re-raise the signal after its own shutdown, which ends the other server abruptly)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class CloudServer:
    """HTTP (uvicorn, the FastAPI app) on `http_port` and the openpi WebSocket (`websockets`' own server)
    on `ws_port`, over one service in one event loop. `run()` blocks; `start()` runs it in a thread
    (tests, benches) and returns once both ports listen; `stop()` shuts both down."""

    def __init__(self, service: CloudService, config: CloudServerConfig):
        self.service = service
        self.config = config
        self._http = _Uvicorn(_uvicorn_config(create_app(service), config, config.http_port))
        self._ws_listening = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self._http.started and self._ws_listening.is_set()

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.config.certfile:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.certfile, self.config.keyfile)
        return context

    async def serve(self, handle_signals: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self.stop_soon)
        started = asyncio.Event()

        async def mark_ws() -> None:
            await started.wait()
            self._ws_listening.set()

        try:
            await asyncio.gather(
                self._http.serve(),
                serve_openpi(self.service, self.config.host, self.config.ws_port, self._stop, self._ssl(), started),
                mark_ws())
        finally:
            self.service.close()

    def run(self) -> None:
        asyncio.run(self.serve())

    def start(self, timeout_s: float = 30.0) -> CloudServer:
        from vla_msgs.waiting import wait_until

        self._thread = threading.Thread(target=self.run, name="cloud_server", daemon=True)
        self._thread.start()
        wait_until(lambda: self.ready or not self._thread.is_alive(), timeout_s, "cloud server listening")
        if not self.ready:
            raise RuntimeError("cloud server did not start (port in use?)")
        return self

    def stop_soon(self) -> None:
        self._http.should_exit = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_soon()
        if self._thread is not None:
            self._thread.join(timeout_s)


def _scheme(config: CloudServerConfig) -> tuple[str, str]:
    return ("https", "wss") if config.certfile else ("http", "ws")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        sys.stderr.write(f"cloud_server: {exc}\n")
        return CONFIG_EXIT_CODE
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.ray_replicas:
        from vla_edge.cloud.serve_ray import run_ray

        return run_ray(config)
    try:
        service = CloudService.from_config(config)
    except (PolicyLoadError, TokenError) as exc:
        LOG.critical("cannot serve: %s", exc)
        return LOAD_EXIT_CODE
    server = CloudServer(service, config)

    async def announce() -> None:
        while not server.ready:
            await asyncio.sleep(0.05)
        http, ws = _scheme(config)
        meta = service.metadata
        line = (f"cloud_server ready: {http}://{config.host}:{config.http_port} {ws}://{config.host}:"
                f"{config.ws_port} model {meta['model_name']} {meta['model_version']}")
        LOG.info(line)
        print(line, flush=True)

    async def both() -> None:
        waiter = asyncio.ensure_future(announce())
        try:
            await server.serve(handle_signals=True)
        finally:
            waiter.cancel()

    asyncio.run(both())
    return 0
