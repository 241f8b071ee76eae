"""The HTTP JSON schema of the cloud service, imported by the server and by the edge's cloud client.

`POST /infer` takes the seed's feature form (`vision_features`, `language_features`, `timestamp`) or
an image form (`image`: base64 JPEG or PNG, `instruction`); it answers `actions` [chunk][6],
`model_version`, `inference_ms`; an optional `deadline_ms` shortens the server's deadline for that
request. `POST /batch_infer` takes `{"requests": [...]}` and answers
`{"results": [...]}` in request order, each an answer or `{"error": reason, "status": code}`.
The WebSocket side speaks openpi's protocol (`observation/image`, `prompt`; see `codec`).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vla_edge.encoders import MAX_IMAGE_SIDE
from vla_edge.spec import FEATURE_DIM
from vla_msgs.names import ACTION_DIM

DEFAULT_HTTP_PORT = 8080
DEFAULT_WS_PORT = 8000
MAX_IMAGE_BYTES = 8 << 20
MAX_INSTRUCTION_CHARS = 1000
MAX_BATCH_REQUESTS = 256
WS_IMAGE_KEY = "observation/image"
WS_PROMPT_KEY = "prompt"
_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}


class RequestError(ValueError):
    """A request that cannot be served as sent (HTTP 400/422, or a WebSocket error frame)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Observation:
    """One request in plain arrays: an RGB frame and an instruction, or the seed's two feature vectors."""

    rgb: np.ndarray | None = None               # HxWx3 uint8 RGB
    instruction: str | None = None
    vision_features: np.ndarray | None = None   # [512] float32
    language_features: np.ndarray | None = None  # [512] float32
    deadline_ms: float | None = None            # the client's own deadline, if shorter than the server's

    @property
    def is_features(self) -> bool:
        return self.vision_features is not None


def decode_image(text: Any) -> np.ndarray:
    """A base64 JPEG or PNG → HxWx3 uint8 RGB; RequestError with the reason otherwise."""
    if not isinstance(text, str):
        raise RequestError("field image must be a base64 string of a JPEG or PNG")
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise RequestError(f"field image larger than {MAX_IMAGE_BYTES} bytes", 413)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"field image is not valid base64: {exc}") from exc
    if not any(raw.startswith(magic) for magic in _MAGIC):
        raise RequestError("field image is neither a JPEG nor a PNG")
    bgr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise RequestError("field image could not be decoded")
    if bgr.shape[0] > MAX_IMAGE_SIDE or bgr.shape[1] > MAX_IMAGE_SIDE:
        raise RequestError(f"image {bgr.shape[1]}x{bgr.shape[0]} larger than {MAX_IMAGE_SIDE} a side", 413)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def encode_image(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> str:
    """HxWx3 uint8 RGB → base64 JPEG (quality 1..100) or PNG, as `POST /infer` takes it."""
    bgr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[:, :, ::-1])
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr)
    else:
        raise ValueError(f"image format {fmt!r}: use jpeg or png")
    if not ok:
        raise ValueError("image could not be encoded")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def infer_request(rgb: np.ndarray, instruction: str, timestamp: float, quality: int = 90,
                  deadline_ms: float | None = None) -> dict:
    """The image form of a `POST /infer` body; with `deadline_ms` the server drops the request, uncomputed,
    once it has waited that long (the client has given up on it by then)."""
    body = {"image": encode_image(rgb, "jpeg", quality), "instruction": instruction, "timestamp": timestamp}
    if deadline_ms is not None:
        body["deadline_ms"] = deadline_ms
    return body


def _features(doc: dict, key: str) -> np.ndarray:
    value = doc.get(key)
    if not isinstance(value, list) or len(value) != FEATURE_DIM:
        raise RequestError(f"field {key} must be a list of {FEATURE_DIM} numbers", 422)
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"field {key} must hold numbers only", 422) from exc
    if arr.shape != (FEATURE_DIM,) or not np.all(np.isfinite(arr)):
        raise RequestError(f"field {key} must hold {FEATURE_DIM} finite numbers", 422)
    return arr


def check_instruction(value: Any, key: str = "instruction") -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"field {key} must be a non-empty string")
    if len(value) > MAX_INSTRUCTION_CHARS:
        raise RequestError(f"field {key} longer than {MAX_INSTRUCTION_CHARS} characters", 413)
    return value


def parse_infer_request(doc: Any) -> Observation:
    """A `POST /infer` body (already JSON-decoded) → Observation; RequestError names the bad field."""
    if not isinstance(doc, dict):
        raise RequestError("request body must be a JSON object")
    timestamp = doc.get("timestamp")
    if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, (int, float))
                                  or not math.isfinite(timestamp)):
        raise RequestError("field timestamp must be a number (Unix seconds)")
    deadline_ms = doc.get("deadline_ms")
    if deadline_ms is not None and (isinstance(deadline_ms, bool) or not isinstance(deadline_ms, (int, float))
                                    or not 0 < deadline_ms < math.inf):
        raise RequestError("field deadline_ms must be a positive number of milliseconds")
    if "image" in doc:
        return Observation(rgb=decode_image(doc["image"]), instruction=check_instruction(doc.get("instruction")),
                           deadline_ms=deadline_ms)
    if "vision_features" in doc or "language_features" in doc:
        return Observation(vision_features=_features(doc, "vision_features"),
                           language_features=_features(doc, "language_features"), deadline_ms=deadline_ms)
    raise RequestError("request needs image + instruction, or vision_features + language_features")


def parse_ws_request(obs: Any) -> Observation:
    """An openpi request map (`observation/image` uint8 HxWx3, `prompt`) → Observation."""
    if not isinstance(obs, dict):
        raise RequestError("request must be a map")
    image = obs.get(WS_IMAGE_KEY)
    if image is None and "vision_features" in obs:
        return Observation(vision_features=_ws_vector(obs, "vision_features"),
                           language_features=_ws_vector(obs, "language_features"))
    if not isinstance(image, np.ndarray):
        raise RequestError(f"{WS_IMAGE_KEY} must be a uint8 HxWx3 array")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise RequestError(f"{WS_IMAGE_KEY} must be uint8 HxWx3, got {image.dtype} {list(image.shape)}")
    if not (0 < image.shape[0] <= MAX_IMAGE_SIDE and 0 < image.shape[1] <= MAX_IMAGE_SIDE):
        raise RequestError(f"{WS_IMAGE_KEY} size {image.shape[1]}x{image.shape[0]} outside 1..{MAX_IMAGE_SIDE}")
    return Observation(rgb=image, instruction=check_instruction(obs.get(WS_PROMPT_KEY), WS_PROMPT_KEY))


def _ws_vector(obs: dict, key: str) -> np.ndarray:
    value = obs.get(key)
    if not isinstance(value, np.ndarray) or value.shape != (FEATURE_DIM,) or value.dtype.kind != "f":
        raise RequestError(f"{key} must be a float array of shape [{FEATURE_DIM}]")
    arr = value.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise RequestError(f"{key} must be finite")
    return arr


def infer_response(actions: np.ndarray, model_version: str, inference_ms: float) -> dict:
    """The `POST /infer` answer."""
    return {"actions": np.asarray(actions, dtype=np.float64).round(6).tolist(), "model_version": model_version,
            "inference_ms": round(float(inference_ms), 3)}


def parse_infer_response(doc: Any) -> tuple[np.ndarray, str, float]:
    """A `POST /infer` answer → (actions float32 [chunk, 6], model_version, inference_ms)."""
    if not isinstance(doc, dict) or "actions" not in doc:
        raise RequestError(f"answer without actions: {str(doc)[:200]}")
    try:
        actions = np.asarray(doc["actions"], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise RequestError("answer actions are not numbers") from exc
    if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or actions.shape[0] < 1:
        raise RequestError(f"answer actions of shape {list(actions.shape)}, expected [chunk, {ACTION_DIM}]")
    if not np.all(np.isfinite(actions)):
        raise RequestError("answer actions hold NaN or inf")
    return actions, str(doc.get("model_version", "")), float(doc.get("inference_ms", math.nan))
