"""`--ray-replicas 2`: the same app as a Ray Serve deployment on a local Ray instance, one entry point
for HTTP and the openpi WebSocket, driven by the PyPI openpi-client; both replicas answer. The server
runs as `python -m vla_edge.cloud` in a process group of its own, always stopped."""

from __future__ import annotations

import sys

import numpy as np
import requests
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from vla_edge.cloud.protocol import infer_request
from vla_edge.testing import write_policy
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.waiting import wait_until

START_S = 240.0  # Ray's processes and two replicas loading torch, on a loaded two-core machine


def _health(url: str) -> dict | None:
    try:
        return requests.get(url + "/health", timeout=5).json()
    except (requests.RequestException, ValueError):
        return None


def test_two_ray_replicas_behind_one_entry_point(tmp_path):
    model = write_policy("image", tmp_path / "model")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "vla_edge.cloud", "--model", str(model), "--host", "127.0.0.1",
           "--http-port", str(port), "--ray-replicas", "2", "--max-wait-ms", "1", "--torch-threads", "1"]
    with ProcessGroup(cmd, tmp_path / "server.log") as group:
        wait_until(lambda: not group.alive() or "cloud_server ready" in group.log.read_text(errors="replace"),
                   START_S, "Ray Serve deployment ready")
        assert group.alive(), group.tail()
        workers: set[str] = set()
        wait_until(lambda: workers.add((_health(url) or {}).get("worker")) or len(workers - {None}) == 2,
                   60.0, "both replicas answering /health")
        rgb = np.zeros((64, 64, 3), np.uint8)
        clients = [WebsocketClientPolicy("127.0.0.1", port) for _ in range(4)]
        assert clients[0].get_server_metadata()["model_version"] == "test-1"
        for client in clients:
            out = client.infer({"observation/image": rgb, "prompt": "go to the red cube"})
            assert out["actions"].dtype == np.float32 and out["actions"].shape == (5, 6)
            assert out["server_timing"]["batch_size"] >= 1
        reply = requests.post(url + "/infer", json=infer_request(rgb, "go", 1.0), timeout=30)
        assert reply.status_code == 200 and len(reply.json()["actions"]) == 5
        assert requests.post(url + "/infer", data=b"{oops", timeout=30).status_code == 400
        assert group.alive()
