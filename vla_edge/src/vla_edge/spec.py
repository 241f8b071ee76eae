"""The policy sidecar (`<model>.json`): parsing, checksum and the checks a model must pass.

Model contract in INTERFACES.md ("Policy model contract"). One spelling per field, every field a
model's behaviour depends on is required, and a missing or malformed one is refused with the
field's name: a sidecar that is silent about the action limits never gets limits made up for it.

    {"name", "version", "sha256", "chunk_length",
     "format": "torchscript" | "onnx"    (optional: the file's suffix decides, .onnx is ONNX),
     "input": {"form": "image_language" | "features"   (optional: inferred from the keys below),
               "image": {"shape": [3, H, W], "mean": [3], "std": [3]}       (image form; mean/std optional),
               "vision_features": {...}                                      (feature form),
               "language": {"encoder": NAME, "dim": D}                       (dim: image form only),
               "lidar": {"sectors": N}                                       (optional)},
     "action": {"names": [6 names], "limits": [[lo, hi] x 6]}}
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_msgs.names import ACTION_DIM, ACTION_NAMES

FEATURE_DIM = 512  # the seed's feature form: vision_features [B, 512], language_features [B, 512]
FORM_IMAGE = "image_language"
FORM_FEATURES = "features"
HASH_ENCODER = "hash"
FORMAT_TORCHSCRIPT = "torchscript"
FORMAT_ONNX = "onnx"
MODEL_FORMATS = (FORMAT_TORCHSCRIPT, FORMAT_ONNX)
MAX_SIDECAR_BYTES = 1 << 20


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
    model_format: str = FORMAT_TORCHSCRIPT  # FORMAT_TORCHSCRIPT or FORMAT_ONNX: which runtime loads the file


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def _required(doc: dict, key: str, where: str) -> Any:
    if not isinstance(doc, dict) or key not in doc:
        raise SpecError(f"field {where}{key} is missing")
    return doc[key]


def _object(doc: dict, key: str, where: str = "", required: bool = True) -> dict:
    value = _required(doc, key, where) if required else doc.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"field {where}{key} must be an object")
    return value


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"field {field} must be an integer, got {value!r:.40}")
    return value


def _floats(value: Any, field: str, length: int) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise SpecError(f"field {field} must be a list of {length} numbers")
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise SpecError(f"field {field} holds {x!r:.40}, not a finite number")
        out.append(float(x))
    return tuple(out)


def _limits(action: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    raw = _required(action, "limits", "action.")
    if not isinstance(raw, list) or len(raw) != ACTION_DIM:
        raise SpecError(f"field action.limits must hold {ACTION_DIM} [low, high] pairs, one per axis "
                        f"({', '.join(ACTION_NAMES)})")
    low, high = [], []
    for name, pair in zip(ACTION_NAMES, raw, strict=True):
        lo, hi = _floats(pair, f"action.limits[{name}]", 2)
        if lo > hi:
            raise SpecError(f"action limit of {name} [{lo}, {hi}] is not a finite ordered pair")
        low.append(lo)
        high.append(hi)
    return tuple(low), tuple(high)


def _form(inp: dict) -> str:
    form = inp.get("form")
    if form is None:
        if "vision_features" in inp:
            return FORM_FEATURES
        if "image" in inp:
            return FORM_IMAGE
        raise SpecError("field input.form is missing and input has neither image nor vision_features")
    if form not in (FORM_IMAGE, FORM_FEATURES):
        raise SpecError(f"input form {form!r} is not {FORM_IMAGE} or {FORM_FEATURES}")
    return form


def _model_format(doc: dict, suffix: str) -> str:
    fmt = doc.get("format")
    by_suffix = FORMAT_ONNX if suffix.lower() == ".onnx" else FORMAT_TORCHSCRIPT
    if fmt is None:
        return by_suffix
    if fmt not in MODEL_FORMATS:
        raise SpecError(f"field format {fmt!r:.40} is not one of {', '.join(MODEL_FORMATS)}")
    if suffix and fmt != by_suffix:
        raise SpecError(f"field format says {fmt} but the model file ends {suffix!r}")
    return fmt


def parse_spec(doc: dict, suffix: str = "") -> PolicySpec:
    """Turns a sidecar document into a PolicySpec; raises SpecError naming the offending field.

    `suffix` is the model file's (".pt", ".onnx"): without a `format` field it decides the format."""
    if not isinstance(doc, dict):
        raise SpecError("sidecar is not a JSON object")
    sha = str(_required(doc, "sha256", "")).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise SpecError("field sha256 is not 64 hex digits")
    name, version = str(_required(doc, "name", "")), str(_required(doc, "version", ""))
    chunk = _int(_required(doc, "chunk_length", ""), "chunk_length")
    inp = _object(doc, "input")
    action = _object(doc, "action")
    form = _form(inp)
    lang = _object(inp, "language", "input.")
    encoder = _required(lang, "encoder", "input.language.")
    if not isinstance(encoder, str) or not encoder:
        raise SpecError("field input.language.encoder must name the encoder")
    image = _object(inp, "image", "input.", required=form == FORM_IMAGE)
    if form == FORM_IMAGE:
        shape = _required(image, "shape", "input.image.")
        if not isinstance(shape, list) or len(shape) != 3 or _int(shape[0], "input.image.shape[0]") != 3:
            raise SpecError(f"field input.image.shape must be [3, H, W], got {shape!r:.60}")
        height, width = _int(shape[1], "input.image.shape[1]"), _int(shape[2], "input.image.shape[2]")
        language_dim = _int(_required(lang, "dim", "input.language."), "input.language.dim")
    else:
        height, width = 96, 96  # the feature form pools whatever frame comes to 8x8 itself
        language_dim = FEATURE_DIM
    mean = _floats(image.get("mean", [0.0] * 3), "input.image.mean", 3)
    std = _floats(image.get("std", [1.0] * 3), "input.image.std", 3)
    lidar_sectors = _int(_object(inp, "lidar", "input.", required=False).get("sectors", 0), "input.lidar.sectors")
    names = _required(action, "names", "action.")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SpecError("field action.names must be a list of strings")
    low, high = _limits(action)
    spec = PolicySpec(
        name=name, version=version, sha256=sha, form=form, image_size=(height, width), image_mean=mean,
        image_std=std, language_dim=language_dim, language_encoder=encoder, lidar_sectors=lidar_sectors,
        chunk_length=chunk, action_names=tuple(names), action_low=low, action_high=high,
        model_format=_model_format(doc, suffix),
    )
    _validate(spec)
    return spec


def _validate(spec: PolicySpec) -> None:
    if spec.action_names != ACTION_NAMES:
        raise SpecError(f"action names {list(spec.action_names)} differ from the contract {list(ACTION_NAMES)}")
    h, w = spec.image_size
    if not (8 <= h <= 1024 and 8 <= w <= 1024):
        raise SpecError(f"input image size {h}x{w} outside 8..1024")
    if min(spec.image_std) <= 0:
        raise SpecError("input.image.std must be positive")
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
        spec = parse_spec(doc, model_path.suffix)
    except SpecError as exc:
        raise SpecError(f"sidecar {side}: {exc}") from exc
    actual = sha256_file(model_path)
    if actual != spec.sha256:
        raise SpecError(f"sha256 mismatch for {model_path}: file {actual[:12]}…, sidecar {spec.sha256[:12]}…")
    return spec
