"""The policy runtime: loads a verified TorchScript or ONNX policy and runs it; small wrappers compose on it.

Every policy follows openpi's shape, `infer(obs) -> dict`: obs holds `image` float32 [3, H, W]
in 0..1 (or `vision_features` [512]) and `language` float32 [D]; the result holds `actions`
float32 [T, 6] and `inference_ms`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from vla_edge.spec import FEATURE_DIM, FORM_FEATURES, FORMAT_ONNX, PolicySpec, SpecError, load_spec
from vla_msgs.names import ACTION_DIM

LOG = logging.getLogger(__name__)
MAX_MODEL_BYTES = 2 << 30
_IMAGE_ARGS = ("image", "language")
_FEATURE_ARGS = ("vision_features", "language_features")


class PolicyLoadError(RuntimeError):
    """The policy cannot be used: missing, corrupt, checksum mismatch or incompatible spec."""


class NonFiniteActionError(ValueError):
    """The model produced NaN or inf; the chunk must never reach the robot."""


class BasePolicy(Protocol):
    spec: PolicySpec

    def infer(self, obs: dict) -> dict: ...


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or asked for), the CPU otherwise."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise PolicyLoadError("device cuda requested but CUDA is not available")
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def configure_threads(requested: int = 0) -> int:
    """Sets torch's intra-op threads; 0 picks one core less than the machine has (the other
    nodes of the robot need one), at least 1 and at most 4 (small models gain nothing more)."""
    threads = requested or max(1, min(4, (os.cpu_count() or 2) - 1))
    torch.set_num_threads(threads)
    # only settable once per process, before any parallel work; a hot swap lands in the suppress
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return threads


@dataclass
class TorchScriptPolicy:
    """A TorchScript policy checked against its sidecar. Build it with `load_policy`."""

    spec: PolicySpec
    module: torch.jit.ScriptModule
    device: torch.device
    path: str

    def _inputs(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        vision = obs["vision_features"] if self.spec.form == FORM_FEATURES else obs["image"]
        vis = torch.from_numpy(np.ascontiguousarray(vision, dtype=np.float32)).unsqueeze(0).to(self.device)
        # the cached embedding is read-only: copy its few hundred floats rather than alias it
        lang = torch.from_numpy(np.array(obs["language"], dtype=np.float32)).unsqueeze(0).to(self.device)
        return vis, lang

    def forward_batch(self, vision: np.ndarray, language: np.ndarray) -> np.ndarray:
        """A batch through the model: vision [B, 3, H, W] (or [B, 512]), language [B, D] → float32 [B, T, 6]."""
        # copies: a cached embedding is read-only, and torch must not alias the caller's arrays
        vis = torch.from_numpy(np.array(vision, dtype=np.float32)).to(self.device)
        lang = torch.from_numpy(np.array(language, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            out = self.module(vis, lang)
        if not isinstance(out, torch.Tensor):
            raise PolicyLoadError(f"model returned {type(out).__name__}, expected a tensor")
        return _chunks(out.detach().to("cpu", torch.float32).numpy(), vis.shape[0])

    def infer(self, obs: dict) -> dict:
        vis, lang = self._inputs(obs)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.module(vis, lang)
        if not isinstance(out, torch.Tensor):
            raise PolicyLoadError(f"model returned {type(out).__name__}, expected a tensor")
        actions = out.detach().to("cpu", torch.float32).numpy()
        inference_ms = (time.perf_counter() - start) * 1000.0
        if actions.ndim == 2:
            actions = actions[:, None, :]
        if actions.ndim != 3 or actions.shape[0] != 1 or actions.shape[2] != ACTION_DIM:
            raise PolicyLoadError(f"model output shape {tuple(out.shape)} is not [1, {ACTION_DIM}] or [1, T, 6]")
        return {"actions": actions[0], "inference_ms": inference_ms}


def _chunks(actions: np.ndarray, batch: int) -> np.ndarray:
    """[B, 6] or [B, T, 6] → [B, T, 6]; anything else breaks the contract."""
    if actions.ndim == 2:
        actions = actions[:, None, :]
    if actions.ndim != 3 or actions.shape[0] != batch or actions.shape[2] != ACTION_DIM:
        raise PolicyLoadError(f"model output shape {actions.shape} is not [{batch}, {ACTION_DIM}] or "
                              f"[{batch}, T, {ACTION_DIM}]")
    return actions


@dataclass
class OnnxPolicy:
    """An ONNX policy checked against its sidecar, run by onnxruntime. Build it with `load_policy`.

    The graph's two inputs carry the contract's names (`image`, `language` or the feature form's
    `vision_features`, `language_features`); its first output is the action chunk."""

    spec: PolicySpec
    session: object  # onnxruntime.InferenceSession (imported lazily: TorchScript users never load it)
    device: torch.device
    path: str
    providers: tuple[str, ...] = ()

    def forward_batch(self, vision: np.ndarray, language: np.ndarray) -> np.ndarray:
        """A batch through the model: vision [B, 3, H, W] (or [B, 512]), language [B, D] → float32 [B, T, 6]."""
        names = _FEATURE_ARGS if self.spec.form == FORM_FEATURES else _IMAGE_ARGS
        feed = {names[0]: np.ascontiguousarray(vision, dtype=np.float32),
                names[1]: np.ascontiguousarray(language, dtype=np.float32)}
        try:
            out = self.session.run(None, feed)[0]
        except Exception as exc:  # onnxruntime's errors derive from Exception only; re-raised as the runtime's
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeError(f"onnxruntime: {first}") from exc
        return _chunks(np.asarray(out, dtype=np.float32), feed[names[0]].shape[0])

    def infer(self, obs: dict) -> dict:
        vision = obs["vision_features"] if self.spec.form == FORM_FEATURES else obs["image"]
        start = time.perf_counter()
        actions = self.forward_batch(np.asarray(vision)[None], np.asarray(obs["language"])[None])
        return {"actions": actions[0], "inference_ms": (time.perf_counter() - start) * 1000.0}


def onnx_providers(device: torch.device) -> list[str]:
    """onnxruntime's execution providers for a device: TensorRT then CUDA where the build has them, the CPU last."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if device.type == "cuda" else []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


def _load_onnx(path: Path, spec: PolicySpec, dev: torch.device) -> OnnxPolicy:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same budget configure_threads gave torch
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = onnx_providers(dev)
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Exception subclasses (InvalidProtobuf, Fail, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyLoadError(f"{path} is not a loadable ONNX model: {first}") from exc
    args = tuple(i.name for i in session.get_inputs())
    expected = _FEATURE_ARGS if spec.form == FORM_FEATURES else _IMAGE_ARGS
    if args != expected:
        raise PolicyLoadError(f"{path}: graph inputs {list(args)} do not match the sidecar's {spec.form} form "
                              f"{list(expected)}")
    return OnnxPolicy(spec=spec, session=session, device=dev, path=str(path),
                      providers=tuple(session.get_providers()))


def example_obs(spec: PolicySpec, rng: np.random.Generator | None = None) -> dict:
    """An observation of the right shapes, for warm-up and tests."""
    rng = rng or np.random.default_rng(0)
    h, w = spec.image_size
    obs = {"language": rng.standard_normal(spec.language_dim).astype(np.float32)}
    if spec.form == FORM_FEATURES:
        obs["vision_features"] = rng.random(FEATURE_DIM, dtype=np.float32)
    else:
        obs["image"] = rng.random((3, h, w), dtype=np.float32)
    return obs


def _check_signature(module: torch.jit.ScriptModule, spec: PolicySpec, path: Path) -> None:
    try:
        args = tuple(a.name for a in module.forward.schema.arguments)[1:]
    except (AttributeError, RuntimeError):
        return  # not every scripted module exposes a schema; warm-up still checks shapes
    if len(args) != 2:
        raise PolicyLoadError(f"{path}: forward takes {list(args)}, expected two inputs")
    expected = _FEATURE_ARGS if spec.form == FORM_FEATURES else _IMAGE_ARGS
    other = _IMAGE_ARGS if spec.form == FORM_FEATURES else _FEATURE_ARGS
    if args == other:
        raise PolicyLoadError(f"{path}: forward{args} does not match the sidecar's {spec.form} form {expected}")


def load_policy(model_path: str | Path, device: str = "auto",
                warmup_runs: int = 3) -> TorchScriptPolicy | OnnxPolicy:
    """Verifies, loads and warms a policy; raises PolicyLoadError with one line saying what and where.

    TorchScript by default; ONNX (onnxruntime) when the sidecar's `format` is onnx or the file ends .onnx."""
    path = Path(model_path).expanduser()
    try:
        spec = load_spec(path)
    except SpecError as exc:
        raise PolicyLoadError(str(exc)) from exc
    except OSError as exc:
        raise PolicyLoadError(f"cannot read {path}: {exc}") from exc
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise PolicyLoadError(f"{path}: model file larger than {MAX_MODEL_BYTES} bytes")
    dev = pick_device(device)
    if spec.model_format == FORMAT_ONNX:
        policy = _load_onnx(path, spec, dev)
        warm_up(policy, max(1, warmup_runs))
        LOG.info("ONNX policy %s %s loaded from %s on %s (providers %s, chunk %d)", spec.name, spec.version, path,
                 dev, ",".join(policy.providers), spec.chunk_length)
        return policy
    try:
        # TorchScript only: torch.jit.load never unpickles arbitrary Python objects.
        module = torch.jit.load(str(path), map_location=dev)
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise PolicyLoadError(f"{path} is not a loadable TorchScript model: {first}") from exc
    module.eval()
    _check_signature(module, spec, path)
    policy = TorchScriptPolicy(spec=spec, module=module, device=dev, path=str(path))
    warm_up(policy, max(1, warmup_runs))
    LOG.info("policy %s %s loaded from %s on %s (form %s, chunk %d)", spec.name, spec.version, path, dev,
             spec.form, spec.chunk_length)
    return policy


def warm_up(policy: BasePolicy, runs: int) -> float:
    """Runs the model on example inputs; checks the output shape; returns the last forward time [ms]."""
    obs = example_obs(policy.spec)
    ms = math.nan
    for _ in range(runs):
        try:
            result = policy.infer(obs)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PolicyLoadError(f"{getattr(policy, 'path', '?')}: forward failed on a spec-shaped input: "
                                  f"{first}") from exc
        ms = result["inference_ms"]
        t = result["actions"].shape[0]
        if t != policy.spec.chunk_length:
            raise PolicyLoadError(f"{getattr(policy, 'path', '?')}: model returns chunks of {t} steps, "
                                  f"sidecar says chunk_length {policy.spec.chunk_length}")
    return ms


class FiniteGuard:
    """Rejects any chunk holding NaN or inf, so it can never be published."""

    def __init__(self, policy: BasePolicy):
        self.policy = policy
        self.spec = policy.spec

    def infer(self, obs: dict) -> dict:
        result = self.policy.infer(obs)
        if not np.all(np.isfinite(result["actions"])):
            raise NonFiniteActionError(f"model {self.spec.name} {self.spec.version} returned NaN or inf actions")
        return result


class ClampedPolicy:
    """Clamps every action to the sidecar's limits; the unclamped chunk stays in `raw_actions`."""

    def __init__(self, policy: BasePolicy):
        self.policy = policy
        self.spec = policy.spec
        self._low = np.asarray(policy.spec.action_low, dtype=np.float32)
        self._high = np.asarray(policy.spec.action_high, dtype=np.float32)

    def infer(self, obs: dict) -> dict:
        result = dict(self.policy.infer(obs))
        result["raw_actions"] = result["actions"]
        result["actions"] = np.clip(result["actions"], self._low, self._high)
        return result


def finite_and_clamped(policy: BasePolicy) -> BasePolicy:
    """The stack every published action goes through: NaN/inf rejected first, then clamped to the limits."""
    return ClampedPolicy(FiniteGuard(policy))
