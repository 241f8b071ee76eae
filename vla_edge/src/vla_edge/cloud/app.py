"""The ASGI application (FastAPI): the HTTP JSON API, `/metrics`, `/healthz` and the openpi WebSocket
protocol at `/` (through `openpi_ws.OpenpiSession`), all over one CloudService. The same app runs under
uvicorn on `--http-port` and as Ray Serve's ingress.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from vla_edge.cloud.batching import OverloadedError
from vla_edge.cloud.openpi_ws import OpenpiSession
from vla_edge.cloud.protocol import (
    MAX_BATCH_REQUESTS,
    MAX_IMAGE_BYTES,
    RequestError,
    infer_response,
    parse_infer_request,
)
from vla_edge.cloud.service import CloudService, outcome_of

LOG = logging.getLogger(__name__)
MAX_BODY_BYTES = 2 * MAX_IMAGE_BYTES
_GUARDED = ("/infer", "/batch_infer")


def _error(status: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))} if retry_after_s is not None else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="vla_cloud"'}
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _parse_json(body: bytes) -> object:
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(f"body larger than {MAX_BODY_BYTES} bytes", 413)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"body is not valid JSON: {exc}") from exc


def _answer(result: dict, version: str) -> dict:
    out = infer_response(result["actions"], version, result["inference_ms"])
    out["batch_size"] = result["batch_size"]
    return out


def create_app(service: CloudService) -> FastAPI:
    app = FastAPI(title="vla cloud inference", docs_url=None, redoc_url=None, openapi_url=None)
    version = service.metadata["model_version"]

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        # checked before the body is read: an unauthorised request costs no parsing and no compute
        if request.url.path in _GUARDED and not service.auth.allows(request.headers.get("authorization")):
            service.count("http", "unauthorized")
            return _error(401, "missing or wrong token (Authorization: Bearer <token> or Api-Key <token>)")
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return service.health()

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("OK\n")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/infer")
    async def infer(request: Request) -> JSONResponse:
        start = time.perf_counter()
        try:
            doc = _parse_json(await request.body())
            obs = await run_in_threadpool(parse_infer_request, doc)
            # HTTP keeps the batch worker: its parsing hops to a thread anyway, and a forward pass held on
            # the loop would hold /health, /metrics and the 503s of every HTTP client with it
            result = await service.infer(obs, inline=False)
        except Exception as exc:  # every failure becomes an answer with its reason
            return _failure(exc, start)
        service.count("http", "ok", time.perf_counter() - start)
        return JSONResponse(_answer(result, version))

    def _failure(exc: Exception, start: float) -> JSONResponse:
        outcome, status = outcome_of(exc)
        service.count("http", outcome, time.perf_counter() - start)
        if outcome == "error":
            LOG.error("request failed: %s", exc)
        return _error(status, str(exc), exc.retry_after_s if isinstance(exc, OverloadedError) else None)

    @app.post("/batch_infer")
    async def batch_infer(request: Request) -> JSONResponse:
        start = time.perf_counter()
        try:
            doc = _parse_json(await request.body())
            if not isinstance(doc, dict) or not isinstance(doc.get("requests"), list):
                raise RequestError('body must be {"requests": [...]}')
            if not 0 < len(doc["requests"]) <= MAX_BATCH_REQUESTS:
                raise RequestError(f"requests must hold 1..{MAX_BATCH_REQUESTS} items", 413)
        except RequestError as exc:
            return _failure(exc, start)
        results = await asyncio.gather(*(_one(item) for item in doc["requests"]))
        return JSONResponse({"results": list(results)})

    async def _one(item: object) -> dict:
        start = time.perf_counter()
        try:
            obs = await run_in_threadpool(parse_infer_request, item)
            result = await service.infer(obs, inline=False)
        except Exception as exc:  # one bad item gets its error; the others are answered
            outcome, status = outcome_of(exc)
            service.count("http", outcome, time.perf_counter() - start)
            return {"error": str(exc), "status": status}
        service.count("http", "ok", time.perf_counter() - start)
        return _answer(result, version)

    @app.websocket("/")
    async def openpi(websocket: WebSocket) -> None:
        if not service.auth.allows(websocket.headers.get("authorization")):
            service.count("ws", "unauthorized")
            await websocket.send_denial_response(_error(401, "missing or wrong token"))
            return
        await websocket.accept()
        session = OpenpiSession(service)
        await websocket.send_bytes(session.metadata())
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                frame = message["bytes"] if message.get("bytes") is not None else message.get("text", "")
                reply = await session.handle(frame)
                if isinstance(reply, bytes):
                    await websocket.send_bytes(reply)
                else:
                    await websocket.send_text(reply)
        except WebSocketDisconnect:
            return

    return app
