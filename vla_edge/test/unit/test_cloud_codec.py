"""The msgpack-numpy codec against openpi-client's own, and the token check."""

from __future__ import annotations

import numpy as np
import pytest
from openpi_client import msgpack_numpy

from vla_edge.cloud import codec
from vla_edge.cloud.auth import TokenAuth, TokenError, load_token


def test_round_trip_with_openpi_client():
    obs = {"observation/image": np.arange(12, dtype=np.uint8).reshape(2, 2, 3), "prompt": "go",
           "scalar": np.float32(1.5), "nested": {"x": np.ones((2, 6), np.float32)}}
    back = codec.unpackb(msgpack_numpy.packb(obs))
    np.testing.assert_array_equal(back["observation/image"], obs["observation/image"])
    assert back["scalar"] == np.float32(1.5) and back["scalar"].dtype == np.float32
    theirs = msgpack_numpy.unpackb(codec.packb({"actions": np.zeros((8, 6), np.float32)}))
    assert theirs["actions"].dtype == np.float32 and theirs["actions"].shape == (8, 6)


@pytest.mark.parametrize("payload, reason", [
    ({b"__ndarray__": True, b"data": b"\0" * 3, b"dtype": "<f4", b"shape": [1]}, "needs 4"),
    ({b"__ndarray__": True, b"data": b"", b"dtype": "|O", b"shape": [0]}, "not allowed"),
    ({b"__ndarray__": True, b"data": b"", b"dtype": "<c8", b"shape": [0]}, "not allowed"),
    ({b"__ndarray__": True, b"data": b"", b"dtype": "nonsense", b"shape": [0]}, "unknown dtype"),
    ({b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [-1]}, "shape"),
    ({b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [1 << 40, 1 << 40]}, "needs"),
    ({b"__npgeneric__": True, b"data": "x", b"dtype": "<f4"}, "scalar"),
])
def test_bad_arrays_are_protocol_errors(payload, reason):
    with pytest.raises(codec.ProtocolError, match=reason):
        codec.unpackb(codec.packb({"a": payload}))


def test_garbage_and_oversize_are_protocol_errors():
    with pytest.raises(codec.ProtocolError):
        codec.unpackb(b"\xc1")
    with pytest.raises(codec.ProtocolError, match="limit"):
        codec.unpackb(b"\0" * 100, max_bytes=10)


def test_token_schemes(tmp_path):
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    auth = TokenAuth(load_token(path))
    assert auth.allows("Bearer s3cret") and auth.allows("Api-Key s3cret") and auth.allows("bearer  s3cret")
    assert not auth.allows(None) and not auth.allows("Bearer s3cre") and not auth.allows("Basic s3cret")
    assert TokenAuth().allows(None)
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(TokenError, match="empty"):
        load_token(tmp_path / "empty")
