"""`export`: the same network as frozen TorchScript or as ONNX for onnxruntime (and, through it, TensorRT),
each checked against the input model's outputs within a tolerance.

The reference of every check is the input model as the runtime runs it, fed the calibration set when
one is given, else random spec-shaped inputs. Scripting and tracing start from an eager network, which
a contract file does not hold: for the reference policy `python -m vla_sim.export --mode scripted|traced`
does it from `VlaPolicyNet`, checked against the eager outputs, through this package's writer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from vla_edge.optimize.inputs import Observations, check_inputs
from vla_edge.optimize.lineage import OptimizeError, Source, check_output, derived_sidecar, read_source, write_model
from vla_edge.optimize.measure import agreement, forward_p50_ms
from vla_edge.policy import load_policy
from vla_edge.spec import FORM_FEATURES, FORMAT_ONNX, FORMAT_TORCHSCRIPT

ONNX_OPSET = 17
ONNX_TOLERANCE = 1e-4  # action units (m/s, rad/s); float32 reassociation differs by ~1e-6
TORCHSCRIPT_TOLERANCE = 1e-5
TORCHSCRIPT_MODES = ("frozen", "traced")


def input_names(source: Source) -> tuple[str, str]:
    return ("vision_features", "language_features") if source.spec.form == FORM_FEATURES else ("image", "language")


def torch_module(source: Source) -> torch.jit.ScriptModule:
    if source.spec.model_format != FORMAT_TORCHSCRIPT:
        raise OptimizeError(f"{source.path}: this command needs a TorchScript input, the sidecar says "
                            f"{source.spec.model_format}")
    return torch.jit.load(str(source.path), map_location="cpu").eval()


def _example(obs: Observations) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(obs.vision[:1].copy()), torch.from_numpy(obs.language[:1].copy())


def checked(source: Source, tolerance: float, obs: Observations,
            metric: str = "max_abs_diff") -> Callable[[Path], dict]:
    """A `verify` for write_model: agreement of the written model with its source on `obs`, refused when
    `metric` (max_abs_diff for exports, mean_abs_diff for int8) is beyond `tolerance`."""

    def verify(path: Path) -> dict:
        reference = load_policy(source.path, "cpu", warmup_runs=1)
        candidate = load_policy(path, "cpu", warmup_runs=1)
        agree = agreement(reference, candidate, obs)
        if not agree[metric] <= tolerance:
            raise OptimizeError(f"{path.name} differs from {source.path.name}: {metric} {agree[metric]:.3g} > "
                                f"tolerance {tolerance:g}; nothing written")
        return {**agree, "tolerance": {metric: tolerance},
                "forward_batch1_p50_ms": forward_p50_ms(candidate, obs)}

    return verify


def write_onnx(module: torch.jit.ScriptModule, names: tuple[str, str], obs: Observations, path: Path,
               opset: int = ONNX_OPSET) -> None:
    """The module as ONNX with a dynamic batch axis, checked by onnx's full checker."""
    import onnx

    with warnings.catch_warnings():
        # the TorchScript exporter (dynamo=False: its successor needs onnxscript, not installed) warns of its
        # deprecation and of the missing Python signature of a loaded module; neither changes the graph
        warnings.simplefilter("ignore")
        torch.onnx.export(module, _example(obs), str(path), input_names=list(names), output_names=["actions"],
                          dynamic_axes={names[0]: {0: "batch"}, names[1]: {0: "batch"}, "actions": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def export_torchscript(model: str | Path, output: str | Path, mode: str = "frozen",
                       calibration: str | Path | None = None) -> dict:
    """Frozen TorchScript (parameters and attributes inlined as constants). Returns the sidecar."""
    if mode == "traced":
        raise OptimizeError("torch.jit.trace of a TorchScript file only wraps the scripted module: a trace starts "
                            "from the eager network (for the reference policy: python -m vla_sim.export --mode traced)")
    if mode not in TORCHSCRIPT_MODES:
        raise OptimizeError(f"torchscript mode {mode!r} is not one of {', '.join(TORCHSCRIPT_MODES)}")
    source = read_source(model)
    out = check_output(output, FORMAT_TORCHSCRIPT, source)
    obs = check_inputs(source.spec, calibration)
    module = torch_module(source)

    def write(path: Path) -> None:
        with torch.inference_mode():
            built = torch.jit.freeze(module)
        built.save(str(path))

    def sidecar(sha: str, measured: dict) -> dict:
        return derived_sidecar(source, out, sha, FORMAT_TORCHSCRIPT, f"torchscript-{mode}",
                               {"tool": f"torch {torch.__version__}"}, measured)

    return write_model(out, write, sidecar, checked(source, TORCHSCRIPT_TOLERANCE, obs))


def export_onnx(model: str | Path, output: str | Path, opset: int = ONNX_OPSET, tolerance: float = ONNX_TOLERANCE,
                calibration: str | Path | None = None) -> dict:
    """ONNX (opset `opset`, dynamic batch) through torch.onnx's TorchScript exporter, checked by onnx's
    checker and run by onnxruntime against the source within `tolerance`. Returns the sidecar."""
    source = read_source(model)
    out = check_output(output, FORMAT_ONNX, source)
    obs = check_inputs(source.spec, calibration)
    module = torch_module(source)
    names = input_names(source)

    def write(path: Path) -> None:
        write_onnx(module, names, obs, path, opset)

    def sidecar(sha: str, measured: dict) -> dict:
        return derived_sidecar(source, out, sha, FORMAT_ONNX, "onnx-fp32",
                               {"opset": opset, "tool": f"torch.onnx (TorchScript exporter) {torch.__version__}",
                                "runtime": "onnxruntime"}, measured)

    return write_model(out, write, sidecar, checked(source, tolerance, obs))
