"""The cloud server over real sockets: HTTP with requests, the openpi WebSocket protocol with the
unmodified PyPI openpi-client, malformed input of every kind. The policy is a test image policy whose
sidecar names the reference policy's sentence encoder (the reference policy itself is vla_sim's, which
this package must not reach; bench/cloud_server_bench.py serves it)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import requests
import websockets.sync.client
from cloud_support import running_server, sentence_policy
from openpi_client import msgpack_numpy
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from vla_edge.cloud import codec
from vla_edge.cloud.batching import INLINE_AFTER
from vla_edge.cloud.protocol import decode_image, encode_image, infer_request
from vla_edge.cloud.runtime import ServedPolicy
from vla_edge.encoders import CachedTextEncoder, ImagePreprocessor, make_text_encoder
from vla_edge.policy import finite_and_clamped, load_policy
from vla_msgs.waiting import wait_until

TIMEOUT_S = 30.0
INSTRUCTION = "go to the red cube"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return sentence_policy(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def served(model) -> ServedPolicy:
    return ServedPolicy.load(model, "cpu", warmup_runs=1)


@pytest.fixture(scope="module")
def server(served):
    with running_server(served, max_wait_ms=2.0) as running:
        yield running


def frame(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((96, 96, 3)) * 255).astype(np.uint8)


def edge_actions(model, rgb: np.ndarray, instruction: str) -> np.ndarray:
    """What the edge runtime computes for the same frame: load_policy, preprocessing, encoder, clamp."""
    policy = load_policy(model, "cpu", warmup_runs=1)
    encoder = CachedTextEncoder(make_text_encoder(policy.spec, "cpu"))
    obs = {"image": ImagePreprocessor(policy.spec)(rgb), "language": encoder.encode(instruction)}
    return finite_and_clamped(policy).infer(obs)["actions"]


def test_health_names_the_model(server):
    doc = requests.get(server.http + "/health", timeout=TIMEOUT_S).json()
    assert doc["status"] == "ok"
    assert doc["model_version"] == "cloud-1"
    assert doc["model_name"] == "test-image"
    assert requests.get(server.http.replace(str(server.server.config.http_port), str(server.ws_port))
                        + "/healthz", timeout=TIMEOUT_S).status_code == 200


def test_infer_image_matches_the_edge_runtime(server, model):
    rgb = frame(1)
    body = infer_request(rgb, INSTRUCTION, time.time(), quality=95)
    reply = requests.post(server.http + "/infer", json=body, timeout=TIMEOUT_S)
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    actions = np.asarray(doc["actions"], dtype=np.float32)
    assert actions.shape == (8, 6)
    assert doc["model_version"] == "cloud-1"
    assert doc["inference_ms"] > 0
    # the server decodes the JPEG; the edge runtime on that same decoded frame gives the same chunk
    expected = edge_actions(model, decode_image(body["image"]), INSTRUCTION)
    np.testing.assert_allclose(actions, expected, atol=1e-4)


def test_png_and_feature_form_refused_for_the_wrong_policy(server):
    png = {"image": encode_image(frame(2), "png"), "instruction": INSTRUCTION}
    assert requests.post(server.http + "/infer", json=png, timeout=TIMEOUT_S).status_code == 200
    features = {"vision_features": [0.0] * 512, "language_features": [0.0] * 512, "timestamp": 1.0}
    reply = requests.post(server.http + "/infer", json=features, timeout=TIMEOUT_S)
    assert reply.status_code == 422
    assert "image + an instruction" in reply.json()["error"]


def test_batch_infer_answers_in_request_order(server):
    frames = [frame(10 + i) for i in range(5)]
    prompts = ["go to the red cube", "go to the blue ball", "find the green cylinder", "go to the yellow cone",
               "go to the red cube"]
    singles = [requests.post(server.http + "/infer", json=infer_request(f, p, 1.0), timeout=TIMEOUT_S).json()
               for f, p in zip(frames, prompts, strict=True)]
    body = {"requests": [infer_request(f, p, 1.0) for f, p in zip(frames, prompts, strict=True)]}
    body["requests"].insert(2, {"image": "not base64!", "instruction": "x"})
    reply = requests.post(server.http + "/batch_infer", json=body, timeout=TIMEOUT_S)
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert len(results) == 6
    assert results[2]["status"] == 400 and "base64" in results[2]["error"]
    for single, batched in zip(singles, results[:2] + results[3:], strict=True):
        np.testing.assert_allclose(batched["actions"], single["actions"], atol=1e-4)


@pytest.mark.parametrize("body, status, reason", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"instruction": "go"}', 400, "image + instruction"),
    (b'{"image": "aGVsbG8=", "instruction": "go"}', 400, "neither a JPEG nor a PNG"),
    (b'{"image": "/9j/4AAQ", "instruction": "go"}', 400, "could not be decoded"),
    (b'{"vision_features": [1, 2], "language_features": []}', 422, "512"),
    (b'{"requests": 5}', 400, "requests"),
])
def test_malformed_http_gets_4xx_with_the_reason(server, body, status, reason):
    path = "/batch_infer" if b"requests" in body else "/infer"
    reply = requests.post(server.http + path, data=body, timeout=TIMEOUT_S,
                          headers={"Content-Type": "application/json"})
    assert reply.status_code == status, reply.text
    assert reason in reply.json()["error"]


def test_openpi_client_gets_metadata_actions_and_timing(server, model):
    client = WebsocketClientPolicy(server.ws_host, server.ws_port)
    meta = client.get_server_metadata()
    assert meta["model_version"] == "cloud-1" and meta["chunk_length"] == 8 and meta["action_dim"] == 6
    out = client.infer({"observation/image": frame(3), "prompt": INSTRUCTION})
    assert out["actions"].dtype == np.float32 and out["actions"].shape == (8, 6)
    np.testing.assert_allclose(out["actions"], edge_actions(model, frame(3), INSTRUCTION), atol=1e-4)
    assert out["server_timing"]["infer_ms"] > 0
    second = client.infer({"observation/image": frame(3), "prompt": INSTRUCTION})
    assert "prev_total_ms" in second["server_timing"]


def test_openpi_error_frame_then_served_again(server):
    client = WebsocketClientPolicy(server.ws_host, server.ws_port)
    with pytest.raises(RuntimeError, match="uint8 HxWx3"):
        client.infer({"observation/image": frame(4).astype(np.float32), "prompt": INSTRUCTION})
    with pytest.raises(RuntimeError, match="prompt"):
        client.infer({"observation/image": frame(4)})
    assert client.infer({"observation/image": frame(4), "prompt": INSTRUCTION})["actions"].shape == (8, 6)


def test_raw_garbage_frames_get_error_frames(server):
    with websockets.sync.client.connect(server.ws, open_timeout=TIMEOUT_S) as ws:
        assert msgpack_numpy.unpackb(ws.recv(timeout=TIMEOUT_S))["model_version"] == "cloud-1"
        bad_array = codec.packb({"observation/image": {b"__ndarray__": True, b"data": b"\0" * 10,
                                                       b"dtype": "|u1", b"shape": [96, 96, 3]}})
        for message in (b"\xc1\xff garbage", "a text frame", bad_array,
                        codec.packb({"observation/image": {b"__ndarray__": True, b"data": b"", b"dtype": "|O",
                                                           b"shape": [0]}, "prompt": "x"})):
            ws.send(message)
            reply = ws.recv(timeout=TIMEOUT_S)
            assert isinstance(reply, str) and reply.startswith("error 400"), reply
        ws.send(msgpack_numpy.packb({"observation/image": frame(5), "prompt": INSTRUCTION}))
        assert msgpack_numpy.unpackb(ws.recv(timeout=TIMEOUT_S))["actions"].shape == (8, 6)


def test_metrics_in_prometheus_text(server):
    requests.post(server.http + "/infer", json=infer_request(frame(6), INSTRUCTION, 1.0), timeout=TIMEOUT_S)
    text = requests.get(server.http + "/metrics", timeout=TIMEOUT_S).text
    assert 'vla_cloud_requests_total{outcome="ok",transport="http"}' in text
    assert "vla_cloud_batch_cap 16.0" in text
    assert "vla_cloud_batch_size_count" in text
    assert 'vla_cloud_model_info{name="test-image",version="cloud-1"} 1.0' in text


def _metric(text: str, name: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_lone_openpi_client_runs_inline_and_concurrent_clients_batch(server):
    """A lone WebSocket client's requests run at once on the event loop (the inline counter, batches of
    one); clients sending at the same time still share forward passes (a batch above one is seen)."""
    stats = server.service.batcher.stats
    client = WebsocketClientPolicy(server.ws_host, server.ws_port)
    for seed in range(INLINE_AFTER):  # forward passes of one in a row: nobody else is around
        client.infer({"observation/image": frame(seed), "prompt": INSTRUCTION})
    inline_before = stats.inline
    for seed in range(5):
        assert client.infer({"observation/image": frame(seed), "prompt": INSTRUCTION})["actions"].shape == (8, 6)
    assert stats.inline - inline_before == 5
    text = requests.get(server.http + "/metrics", timeout=TIMEOUT_S).text
    assert _metric(text, "vla_cloud_inline_requests_total") == stats.inline

    clients = [WebsocketClientPolicy(server.ws_host, server.ws_port) for _ in range(8)]
    batched = threading.Event()
    failures: list[BaseException] = []

    def send(c: WebsocketClientPolicy, seed: int) -> None:
        try:
            while not batched.is_set():
                c.infer({"observation/image": frame(seed), "prompt": INSTRUCTION})
        except Exception as exc:  # reported by the assert below
            failures.append(exc)
            batched.set()

    def batches_above_one() -> float:
        text = requests.get(server.http + "/metrics", timeout=TIMEOUT_S).text
        return _metric(text, "vla_cloud_batch_size_count") - _metric(text, 'vla_cloud_batch_size_bucket{le="1.0"}')

    before = batches_above_one()  # /batch_infer earlier in this module may have batched
    threads = [threading.Thread(target=send, args=(c, i), daemon=True) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: batches_above_one() > before or bool(failures), 60.0,
                   "a forward pass of more than one request")
    finally:
        batched.set()
        for thread in threads:
            thread.join(TIMEOUT_S)
    assert not failures, failures
