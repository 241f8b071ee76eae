"""Observations the toolkit feeds models: calibration sets (recorded from the simulator by
`python -m vla_sim.record_observations`) checked against the sidecar, and probe batches for the
agreement checks of every command.

A calibration file is a `.npz` with `image` float32 [N, 3, H, W] in 0..1 (or `vision_features`
[N, 512] for the feature form) and `language` float32 [N, D], both with the sidecar's shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_edge.optimize.lineage import OptimizeError
from vla_edge.spec import FEATURE_DIM, FORM_FEATURES, PolicySpec

MAX_CALIBRATION = 100_000


@dataclass(frozen=True)
class Observations:
    """A batch of model inputs: vision [N, 3, H, W] (or [N, 512]) and language [N, D], float32."""

    vision: np.ndarray
    language: np.ndarray

    def __len__(self) -> int:
        return self.vision.shape[0]

    def batches(self, size: int):
        for start in range(0, len(self), size):
            yield self.vision[start:start + size], self.language[start:start + size]


def vision_shape(spec: PolicySpec) -> tuple[int, ...]:
    return (FEATURE_DIM,) if spec.form == FORM_FEATURES else (3, *spec.image_size)


def load_calibration(path: str | Path, spec: PolicySpec) -> Observations:
    """Reads and checks a calibration set; a missing key, a wrong shape or non-finite values are refused."""
    file = Path(path).expanduser()
    key = "vision_features" if spec.form == FORM_FEATURES else "image"
    try:
        with np.load(file, allow_pickle=False) as data:
            if key not in data or "language" not in data:
                raise OptimizeError(f"calibration {file}: needs arrays {key!r} and 'language', has {sorted(data)}")
            vision, language = data[key], data["language"]
    except (OSError, ValueError) as exc:
        raise OptimizeError(f"calibration {file} is not a readable .npz: {exc}") from exc
    want = vision_shape(spec)
    if vision.ndim != 1 + len(want) or tuple(vision.shape[1:]) != want:
        raise OptimizeError(f"calibration {file}: {key} has shape {list(vision.shape)}, the model wants "
                            f"[N, {', '.join(map(str, want))}]")
    if language.ndim != 2 or language.shape[1] != spec.language_dim:
        raise OptimizeError(f"calibration {file}: language has shape {list(language.shape)}, the model wants "
                            f"[N, {spec.language_dim}]")
    if vision.shape[0] != language.shape[0] or not 1 <= vision.shape[0] <= MAX_CALIBRATION:
        raise OptimizeError(f"calibration {file}: {vision.shape[0]} images and {language.shape[0]} instructions; "
                            f"needs the same number, 1..{MAX_CALIBRATION}")
    vision, language = vision.astype(np.float32), language.astype(np.float32)
    if not (np.all(np.isfinite(vision)) and np.all(np.isfinite(language))):
        raise OptimizeError(f"calibration {file} holds NaN or inf")
    if spec.form != FORM_FEATURES and (vision.min() < 0.0 or vision.max() > 1.0):
        raise OptimizeError(f"calibration {file}: images must be in 0..1 (float32 [N, 3, H, W]), "
                            f"found {vision.min():.3g}..{vision.max():.3g}")
    return Observations(vision, language)


def probe(spec: PolicySpec, count: int = 16, seed: int = 0) -> Observations:
    """Random spec-shaped inputs (uniform images, unit-norm language) for agreement checks without a calibration set."""
    rng = np.random.default_rng(seed)
    vision = rng.random((count, *vision_shape(spec)), dtype=np.float32)
    language = rng.standard_normal((count, spec.language_dim)).astype(np.float32)
    language /= np.linalg.norm(language, axis=1, keepdims=True)
    return Observations(vision, language)


def check_inputs(spec: PolicySpec, calibration: str | Path | None, count: int = 16) -> Observations:
    """The observations an agreement check runs on: the calibration set when given (the real
    distribution), else random ones."""
    if calibration is None:
        return probe(spec, count)
    obs = load_calibration(calibration, spec)
    return Observations(obs.vision[:count * 4], obs.language[:count * 4])
