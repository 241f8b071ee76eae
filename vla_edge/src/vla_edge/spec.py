"""The policy sidecar (`<model>.json`): parsing, checksum and the checks a model must pass.

Model contract in shared INTERFACES.md ("Policy model contract"). The parser accepts the few
spellings a sidecar may use for the same field and fills sane defaults where one is silent.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

ACTION_DIM = 6
ACTION_NAMES = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")
FEATURE_DIM = 512  # the seed's feature form: vision_features [B, 512], language_features [B, 512]
FORM_IMAGE = "image_language"
FORM_FEATURES = "features"
HASH_ENCODER = "hash"
MAX_SIDECAR_BYTES = 1 << 20
# Limits used when a sidecar gives none: the seed's safety envelope, never unbounded.
DEFAULT_LIMITS = ((-1.0, 1.0), (-1.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (-1.5, 1.5))


class SpecError(ValueError):
    """The sidecar is missing, unreadable or describes a model this runtime cannot run."""


@dataclass(frozen=True)
class PolicySpec:
    name: str
    version: str
    sha256: str
    form: str                      # FORM_IMAGE or FORM_FEATURES
    image_size: tuple[int, int]    # (height, width) the model expects
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    language_dim: int
    language_encoder: str          # sentence model name, or HASH_ENCODER
    lidar_sectors: int             # 0: the model takes no lidar features
    chunk_length: int
    action_names: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def _get(d: dict, *keys: str, default=None):
    for k in keys:
        if isinstance(d, dict) and k in d:
            return d[k]
    return default


def _limits(action: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    raw = _get(action, "limits", "bounds")
    if raw is None:
        pairs = DEFAULT_LIMITS
    elif isinstance(raw, dict) and ("low" in raw or "min" in raw):
        pairs = tuple(zip(_get(raw, "low", "min"), _get(raw, "high", "max"), strict=True))
    elif isinstance(raw, dict):  # {"linear.x": [lo, hi], ...}
        pairs = tuple(tuple(raw.get(n, (0.0, 0.0))) for n in ACTION_NAMES)
    else:  # [[lo, hi], ...]
        pairs = tuple(tuple(p) for p in raw)
    if len(pairs) != ACTION_DIM:
        raise SpecError(f"action limits have {len(pairs)} entries, expected {ACTION_DIM}")
    low, high = [], []
    for lo, hi in pairs:
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise SpecError(f"action limit [{lo}, {hi}] is not a finite ordered pair")
        low.append(lo)
        high.append(hi)
    return tuple(low), tuple(high)


def parse_spec(doc: dict) -> PolicySpec:
    """Turns a sidecar document into a PolicySpec; raises SpecError naming the offending field."""
    if not isinstance(doc, dict):
        raise SpecError("sidecar is not a JSON object")
    try:
        inp = _get(doc, "input", "inputs", "input_spec", default={}) or {}
        action = _get(doc, "action", "actions", "action_spec", default={}) or {}
        norm = _get(doc, "normalization", "normalisation", default={}) or {}
        sha = str(doc.get("sha256", "")).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise SpecError("field sha256 is missing or not 64 hex digits")
        form = _get(inp, "form", "type", default=None)
        if form is None:
            form = FORM_FEATURES if ("vision_features" in inp or "language_features" in inp) else FORM_IMAGE
        if form in ("features", "feature", "seed_features"):
            form = FORM_FEATURES
        elif form in ("image_language", "image+language", "image", "image_embedding"):
            form = FORM_IMAGE
        else:
            raise SpecError(f"input form {form!r} is not image_language or features")
        image = _get(inp, "image", "vision", default={}) or {}
        shape = _get(image, "shape", default=None)
        if shape is not None:
            shape = [int(s) for s in shape if int(s) > 0]
            height, width = int(shape[-2]), int(shape[-1])
        else:
            height = int(_get(image, "height", default=96))
            width = int(_get(image, "width", default=96))
        mean = tuple(float(x) for x in _get(image, "mean", default=_get(norm, "image_mean", default=(0.0,) * 3)))
        std = tuple(float(x) for x in _get(image, "std", default=_get(norm, "image_std", default=(1.0,) * 3)))
        lang = _get(inp, "language", "instruction", "text", default={}) or {}
        top_encoder = _get(doc, "language_encoder", "text_encoder", default=None)
        if isinstance(top_encoder, dict):
            top_encoder = _get(top_encoder, "name", "model", default=None)
        encoder = _get(lang, "encoder", "model", default=top_encoder)
        if isinstance(encoder, dict):
            encoder = _get(encoder, "name", "model", default=None)
        if form == FORM_FEATURES:
            lang_dim = FEATURE_DIM
            encoder = encoder or HASH_ENCODER
        else:
            lang_dim = int(_get(lang, "dim", "size", "embedding_dim", default=384))
            if not encoder:
                raise SpecError("input language encoder is not named")
        lidar = _get(inp, "lidar", "lidar_sectors", default=0)
        lidar_sectors = int(_get(lidar, "sectors", default=0) if isinstance(lidar, dict) else lidar or 0)
        chunk = int(_get(doc, "chunk_length", default=_get(action, "chunk_length", default=1)))
        names = tuple(_get(action, "names", default=ACTION_NAMES))
        low, high = _limits(action)
        spec = PolicySpec(
            name=str(doc.get("name", "unnamed")), version=str(doc.get("version", "unknown")), sha256=sha,
            form=form, image_size=(height, width), image_mean=mean, image_std=std, language_dim=lang_dim,
            language_encoder=str(encoder), lidar_sectors=lidar_sectors, chunk_length=chunk,
            action_names=names, action_low=low, action_high=high,
        )
    except SpecError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise SpecError(f"sidecar field malformed: {exc}") from exc
    _validate(spec)
    return spec


def _validate(spec: PolicySpec) -> None:
    if tuple(spec.action_names) != ACTION_NAMES:
        raise SpecError(f"action names {list(spec.action_names)} differ from the contract {list(ACTION_NAMES)}")
    h, w = spec.image_size
    if not (8 <= h <= 1024 and 8 <= w <= 1024):
        raise SpecError(f"input image size {h}x{w} outside 8..1024")
    if len(spec.image_mean) != 3 or len(spec.image_std) != 3 or min(spec.image_std) <= 0:
        raise SpecError("image normalization needs 3 means and 3 positive stds")
    if not 1 <= spec.language_dim <= 8192:
        raise SpecError(f"language dim {spec.language_dim} outside 1..8192")
    if not 1 <= spec.chunk_length <= 1000:
        raise SpecError(f"chunk_length {spec.chunk_length} outside 1..1000")
    if not 0 <= spec.lidar_sectors <= 360:
        raise SpecError(f"lidar sectors {spec.lidar_sectors} outside 0..360")


def load_spec(model_path: Path) -> PolicySpec:
    """Reads `<model>.json` beside the model and checks the model file against its sha256."""
    if not model_path.is_file():
        raise SpecError(f"model file not found: {model_path}")
    side = sidecar_path(model_path)
    if not side.is_file():
        raise SpecError(f"sidecar not found: {side}")
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise SpecError(f"sidecar too large: {side}")
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"sidecar {side} is not valid JSON: {exc}") from exc
    try:
        spec = parse_spec(doc)
    except SpecError as exc:
        raise SpecError(f"sidecar {side}: {exc}") from exc
    actual = sha256_file(model_path)
    if actual != spec.sha256:
        raise SpecError(f"sha256 mismatch for {model_path}: file {actual[:12]}…, sidecar {spec.sha256[:12]}…")
    return spec
