"""openpi's msgpack-numpy wire encoding, strict on input: the one home of the WebSocket format.

Arrays travel as maps with bytes keys `__ndarray__`, `data`, `dtype`, `shape` and numpy scalars as
`__npgeneric__`, `data`, `dtype` (openpi_client.msgpack_numpy). Packing is the same as openpi's;
unpacking checks what a remote peer sent (dtype kind, shape, buffer size, total size) and raises
ProtocolError with the reason instead of whatever numpy would raise.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

MAX_MESSAGE_BYTES = 64 << 20
MAX_ARRAY_DIMS = 8
_ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float: never object, void or complex


class ProtocolError(ValueError):
    """A message that does not follow the wire format; the reason goes back to the sender."""


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind not in _ALLOWED_KINDS:
        raise ProtocolError(f"unsupported dtype {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": np.ascontiguousarray(obj).tobytes(), b"dtype": obj.dtype.str,
                b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot pack {type(obj).__name__}")


def _dtype(value: Any) -> np.dtype:
    if not isinstance(value, (str, bytes)):
        raise ProtocolError(f"array dtype must be a string, got {type(value).__name__}")
    try:
        dtype = np.dtype(value if isinstance(value, str) else value.decode("ascii"))
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"unknown dtype {value!r:.40}") from exc
    if dtype.kind not in _ALLOWED_KINDS:
        raise ProtocolError(f"dtype {dtype} not allowed (bool, int, uint, float only)")
    return dtype


def _unpack_hook(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        shape, data = obj.get(b"shape"), obj.get(b"data")
        if not isinstance(shape, (list, tuple)) or len(shape) > MAX_ARRAY_DIMS or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise ProtocolError(f"array shape must be a list of at most {MAX_ARRAY_DIMS} non-negative ints")
        if not isinstance(data, bytes):
            raise ProtocolError("array data must be bytes")
        expected = math.prod(shape) * dtype.itemsize
        if len(data) != expected:
            raise ProtocolError(f"array data holds {len(data)} bytes, shape {list(shape)} {dtype} needs {expected}")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if b"__npgeneric__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        try:
            return dtype.type(obj.get(b"data"))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProtocolError(f"bad {dtype} scalar: {exc}") from exc
    return obj


def packb(obj: Any) -> bytes:
    """One message in openpi's encoding."""
    return msgpack.packb(obj, default=_pack_default)


def unpackb(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """One message from a peer; raises ProtocolError on anything that is not valid msgpack-numpy."""
    if len(data) > max_bytes:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        return msgpack.unpackb(data, object_hook=_unpack_hook, raw=False)
    except ProtocolError:
        raise
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
        raise ProtocolError(f"not a msgpack message: {exc}") from exc
