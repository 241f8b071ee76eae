"""The server's guards over real sockets: 401 without the token (nothing computed), a full queue
answered 503 with Retry-After while the model is still busy, a request past its deadline not computed,
TLS. A small test policy (hash encoder) keeps start-up short."""

from __future__ import annotations

import concurrent.futures
import ssl
import subprocess
import time

import numpy as np
import pytest
import requests
import websockets.exceptions
import websockets.sync.client
from cloud_support import running_server
from openpi_client import msgpack_numpy
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from vla_edge.cloud.protocol import infer_request
from vla_edge.cloud.runtime import ServedPolicy
from vla_edge.testing import write_policy
from vla_msgs.waiting import wait_until

TIMEOUT_S = 30.0
TOKEN = "correct horse battery staple"


def body(seed: int = 0) -> dict:
    rgb = (np.random.default_rng(seed).random((64, 64, 3)) * 255).astype(np.uint8)
    return infer_request(rgb, "go to the red cube", 1.0)


@pytest.fixture(scope="module")
def image_policy(tmp_path_factory) -> ServedPolicy:
    return ServedPolicy.load(write_policy("image", tmp_path_factory.mktemp("image")), "cpu", warmup_runs=1)


def test_token_required_on_http_and_websocket(image_policy):
    with running_server(image_policy, token=TOKEN) as server:
        computed = server.service.batcher.stats
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            reply = requests.post(server.http + "/infer", json=body(), headers=headers, timeout=TIMEOUT_S)
            assert reply.status_code == 401, reply.text
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert requests.post(server.http + "/batch_infer", json={"requests": [body()]},
                             timeout=TIMEOUT_S).status_code == 401
        assert computed.items == 0
        with pytest.raises(websockets.exceptions.InvalidStatus, match="401"):
            WebsocketClientPolicy(server.ws_host, server.ws_port)
        with pytest.raises(websockets.exceptions.InvalidStatus, match="401"):
            WebsocketClientPolicy(server.ws_host, server.ws_port, api_key="wrong")
        assert computed.items == 0
        assert requests.get(server.http + "/health", timeout=TIMEOUT_S).status_code == 200
        ok = requests.post(server.http + "/infer", json=body(), headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=TIMEOUT_S)
        assert ok.status_code == 200, ok.text
        client = WebsocketClientPolicy(server.ws_host, server.ws_port, api_key=TOKEN)
        rgb = np.zeros((64, 64, 3), np.uint8)
        assert client.infer({"observation/image": rgb, "prompt": "go"})["actions"].shape == (5, 6)
        metrics = requests.get(server.http + "/metrics", timeout=TIMEOUT_S).text
        assert 'vla_cloud_requests_total{outcome="unauthorized",transport="http"} 4.0' in metrics
        assert 'vla_cloud_requests_total{outcome="unauthorized",transport="ws"} 2.0' in metrics


def test_full_queue_gets_503_while_busy_and_late_request_is_not_computed(image_policy):
    with running_server(image_policy, max_batch_size=1, queue_limit=1, deadline_ms=50.0) as server:
        batcher = server.service.batcher
        stats = batcher.stats
        url = server.http + "/infer"
        # the worker is held inside its batch by the real text encoder's lock (taken here), so "busy" is a
        # state the test controls rather than a race against a slow model
        encoder_lock = image_policy.encoder._lock
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            with encoder_lock:
                busy = pool.submit(requests.post, url, json=body(1), timeout=120)
                wait_until(lambda: batcher.in_flight == 1, TIMEOUT_S, "first request in the worker")
                queued = pool.submit(requests.post, url, json=body(2), timeout=120)
                wait_until(lambda: batcher.depth == 1, TIMEOUT_S, "second request queued")
                refused = requests.post(url, json=body(3), timeout=TIMEOUT_S)
                assert refused.status_code == 503, refused.text
                assert int(refused.headers["Retry-After"]) >= 1
                assert "queue full" in refused.json()["error"]
                ws_client = WebsocketClientPolicy(server.ws_host, server.ws_port)
                with pytest.raises(RuntimeError, match="error 503: queue full"):
                    ws_client.infer({"observation/image": np.zeros((64, 64, 3), np.uint8), "prompt": "go"})
                assert stats.batches == 0  # answered while the model was still busy
                queued_at = time.monotonic()
                wait_until(lambda: time.monotonic() - queued_at > 0.2, TIMEOUT_S, "second request's deadline")
            assert busy.result().status_code == 200
            late = queued.result()
        assert late.status_code == 504, late.text
        assert "not computed" in late.json()["error"]
        assert stats.items == 1 and stats.expired == 1
        text = requests.get(server.http + "/metrics", timeout=TIMEOUT_S).text
        assert 'vla_cloud_requests_total{outcome="overloaded",transport="http"} 1.0' in text
        assert 'vla_cloud_requests_total{outcome="overloaded",transport="ws"} 1.0' in text
        assert 'vla_cloud_requests_total{outcome="deadline",transport="http"} 1.0' in text


def test_tls_when_given_a_certificate(image_policy, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    with running_server(image_policy, certfile=str(cert), keyfile=str(key)) as server:
        https = server.http.replace("http://", "https://")
        assert requests.get(https + "/health", verify=str(cert), timeout=TIMEOUT_S).json()["status"] == "ok"
        reply = requests.post(https + "/infer", json=body(), verify=str(cert), timeout=TIMEOUT_S)
        assert reply.status_code == 200
        context = ssl.create_default_context(cafile=str(cert))
        with websockets.sync.client.connect(server.ws.replace("ws://", "wss://"), ssl=context,
                                            open_timeout=TIMEOUT_S) as ws:
            assert msgpack_numpy.unpackb(ws.recv(timeout=TIMEOUT_S))["model_version"] == "test-1"
            ws.send(msgpack_numpy.packb({"observation/image": np.zeros((64, 64, 3), np.uint8), "prompt": "go"}))
            assert msgpack_numpy.unpackb(ws.recv(timeout=TIMEOUT_S))["actions"].shape == (5, 6)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(server.http + "/health", timeout=TIMEOUT_S)  # plain HTTP is not served


def test_seed_feature_form_over_http_and_websocket(tmp_path):
    served = ServedPolicy.load(write_policy("features", tmp_path), "cpu", warmup_runs=1)
    rng = np.random.default_rng(0)
    vision, language = rng.random(512).astype(np.float32), rng.random(512).astype(np.float32)
    with running_server(served) as server:
        reply = requests.post(server.http + "/infer", timeout=TIMEOUT_S, json={
            "vision_features": vision.tolist(), "language_features": language.tolist(), "timestamp": 1.0})
        assert reply.status_code == 200, reply.text
        actions = np.asarray(reply.json()["actions"], np.float32)
        assert actions.shape == (1, 6)
        image = requests.post(server.http + "/infer", json=body(), timeout=TIMEOUT_S)
        assert image.status_code == 422 and "vision_features" in image.json()["error"]
        client = WebsocketClientPolicy(server.ws_host, server.ws_port)
        out = client.infer({"vision_features": vision, "language_features": language})
        np.testing.assert_allclose(out["actions"], actions, atol=1e-5)


def test_batch_cap_halves_under_memory_pressure_and_says_so(image_policy, caplog):
    # a 1 MB budget: the process's real RSS is far above 90 % of it, so every probe halves the cap
    with running_server(image_policy, memory_limit_mb=1.0) as server:
        def cap_after_a_request() -> int:
            requests.post(server.http + "/infer", json=body(), timeout=TIMEOUT_S).raise_for_status()
            return requests.get(server.http + "/health", timeout=TIMEOUT_S).json()["batch_cap"]

        wait_until(lambda: cap_after_a_request() == 1, TIMEOUT_S, "batch cap down to 1")
        text = requests.get(server.http + "/metrics", timeout=TIMEOUT_S).text
        assert "vla_cloud_batch_cap 1.0" in text
        assert "vla_cloud_batch_cap_changes_total 4.0" in text  # 16 -> 8 -> 4 -> 2 -> 1
        assert sum("batch cap" in r.getMessage() for r in caplog.records) == 4


def test_client_deadline_shortens_the_servers(image_policy):
    with running_server(image_policy, deadline_ms=60000.0) as server:
        batcher = server.service.batcher
        url = server.http + "/infer"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            with image_policy.encoder._lock:  # the worker held in its first batch, as above
                busy = pool.submit(requests.post, url, json=body(1), timeout=120)
                wait_until(lambda: batcher.in_flight == 1, TIMEOUT_S, "first request in the worker")
                hurried = pool.submit(requests.post, url, json={**body(2), "deadline_ms": 20}, timeout=120)
                wait_until(lambda: batcher.depth == 1, TIMEOUT_S, "second request queued")
                queued_at = time.monotonic()
                wait_until(lambda: time.monotonic() - queued_at > 0.1, TIMEOUT_S, "its 20 ms deadline")
            assert busy.result().status_code == 200
            assert hurried.result().status_code == 504
        assert batcher.stats.items == 1
        bad = requests.post(url, json={**body(3), "deadline_ms": -1}, timeout=TIMEOUT_S)
        assert bad.status_code == 400 and "deadline_ms" in bad.json()["error"]
