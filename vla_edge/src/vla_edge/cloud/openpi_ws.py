"""The openpi WebSocket protocol over a CloudService, for both transports: `OpenpiSession` turns one
received frame into the frame to send back (used by the ASGI route under Ray Serve), and `serve_openpi`
runs it on the `websockets` library's own server (the `--ws-port` of the single-process server, as
openpi's WebsocketPolicyServer does), with `/healthz` and the token checked at the handshake.
"""

from __future__ import annotations

import asyncio
import http
import logging
import ssl
import time

from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from vla_edge.cloud import codec
from vla_edge.cloud.protocol import RequestError, parse_ws_request
from vla_edge.cloud.service import CloudService, outcome_of

LOG = logging.getLogger(__name__)
MAX_FRAME_BYTES = codec.MAX_MESSAGE_BYTES


class OpenpiSession:
    """One connection's state (openpi reports the previous request's total time)."""

    def __init__(self, service: CloudService):
        self.service = service
        self.prev_total_ms: float | None = None

    def metadata(self) -> bytes:
        return codec.packb(self.service.metadata)

    async def handle(self, frame: bytes | str) -> bytes | str:
        """A request frame → the reply: msgpack actions + server_timing, or `error <status>: <reason>`."""
        start = time.perf_counter()
        try:
            if not isinstance(frame, bytes):
                raise RequestError("requests are binary msgpack frames")
            result = await self.service.infer(parse_ws_request(codec.unpackb(frame)))
        except Exception as exc:  # openpi's way: the reason as a text frame; the connection stays open
            outcome, status = outcome_of(exc)
            self.service.count("ws", outcome, time.perf_counter() - start)
            return f"error {status}: {exc}"
        timing = {"infer_ms": result["inference_ms"], "batch_size": result["batch_size"],
                  "total_ms": (time.perf_counter() - start) * 1000.0}
        if self.prev_total_ms is not None:
            timing["prev_total_ms"] = self.prev_total_ms
        reply = codec.packb({"actions": result["actions"], "server_timing": timing})
        self.prev_total_ms = (time.perf_counter() - start) * 1000.0
        self.service.count("ws", "ok", self.prev_total_ms / 1000.0)
        return reply


async def serve_openpi(service: CloudService, host: str, port: int, stop: asyncio.Event,
                       ssl_context: ssl.SSLContext | None = None, started: asyncio.Event | None = None) -> None:
    """Serves the protocol on `websockets`' server until `stop` is set."""

    def check(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if request.path != "/":
            return connection.respond(http.HTTPStatus.NOT_FOUND, "the openpi policy server is at /\n")
        if not service.auth.allows(request.headers.get("Authorization")):
            service.count("ws", "unauthorized")
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        return None

    async def handler(connection: ServerConnection) -> None:
        session = OpenpiSession(service)
        try:
            await connection.send(session.metadata())
            async for frame in connection:
                await connection.send(await session.handle(frame))
        except ConnectionClosed:
            return

    async with serve(handler, host, port, compression=None, max_size=MAX_FRAME_BYTES, ping_interval=None,
                     process_request=check, ssl=ssl_context):
        if started is not None:
            started.set()
        await stop.wait()
