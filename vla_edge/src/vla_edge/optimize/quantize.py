"""`quantize`: post-training int8, in torch (TorchScript) and in onnxruntime (ONNX); fp16 where CUDA is.

- `torch-dynamic`: linear layers int8 (weights quantised ahead, activations per call), quantize_dynamic_jit.
- `torch-static`: convolutions int8, activation ranges calibrated on recorded observations, quantize_jit.
- `onnx-dynamic`: MatMul/Gemm int8 by onnxruntime.quantization.quantize_dynamic.
- `onnx-static`: Conv int8 (QDQ, per-channel weights), calibrated on recorded observations.
- `onnx-fp16`: weights and compute in float16 with float32 inputs and outputs; only where CUDA is present.

Each result is checked against its source on the calibration set (or random inputs) within a
mean absolute difference in action units; the success rate in the simulator is the benchmark's to measure.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from vla_edge.optimize.export import ONNX_OPSET, checked, input_names, torch_module, write_onnx
from vla_edge.optimize.inputs import Observations, check_inputs, load_calibration
from vla_edge.optimize.lineage import OptimizeError, check_output, derived_sidecar, read_source, write_model
from vla_edge.spec import FORMAT_ONNX, FORMAT_TORCHSCRIPT, sha256_file

METHODS = ("torch-dynamic", "torch-static", "onnx-dynamic", "onnx-static", "onnx-fp16")
# Mean |difference| in action units (limits 0.4..1.0): int8 moves an action by ~0.004 on average, but a
# frame at a decision boundary (turn left or right) may flip, so the maximum is reported, not bounded.
INT8_TOLERANCE = 0.02
FP16_TOLERANCE = 0.005
_NEEDS_CALIBRATION = ("torch-static", "onnx-static")
_CALIBRATION_BATCH = 8


def _conv_names(module: torch.jit.ScriptModule) -> list[str]:
    return [name for name, sub in module.named_modules() if name and getattr(sub, "original_name", "") == "Conv2d"]


def _torch_dynamic(module: torch.jit.ScriptModule, path: Path) -> dict:
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic_jit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager-mode quantisation warns of its deprecation on every call
        quantized = quantize_dynamic_jit(module, {"": default_dynamic_qconfig})
    quantized.save(str(path))
    return {"layers": "Linear", "weights": "int8 per tensor", "activations": "int8, ranges per call",
            "tool": f"torch.ao.quantization.quantize_dynamic_jit {torch.__version__}"}


def _torch_static(module: torch.jit.ScriptModule, path: Path, calibration: Observations) -> dict:
    from torch.ao.quantization import get_default_qconfig, quantize_jit

    convs = _conv_names(module)
    if not convs:
        raise OptimizeError("torch-static quantises convolutions and the model has none")
    batches = [(torch.from_numpy(v.copy()), torch.from_numpy(lang.copy()))
               for v, lang in calibration.batches(_CALIBRATION_BATCH)]

    def run(model: torch.jit.ScriptModule, data: list) -> None:
        with torch.no_grad():
            for vision, language in data:
                model(vision, language)

    qconfig = get_default_qconfig("x86")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_jit(module, dict.fromkeys(convs, qconfig), run, [batches])
    quantized.save(str(path))
    return {"layers": f"Conv2d ({', '.join(convs)})", "weights": "int8 per channel (x86 qconfig)",
            "activations": "uint8, ranges from the calibration set", "calibration_frames": len(calibration),
            "tool": f"torch.ao.quantization.quantize_jit {torch.__version__}"}


class _Reader:
    """onnxruntime's CalibrationDataReader over recorded observations."""

    def __init__(self, names: tuple[str, str], calibration: Observations):
        self._batches = iter([{names[0]: v, names[1]: lang} for v, lang in calibration.batches(_CALIBRATION_BATCH)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def _onnx_dynamic(onnx_in: Path, path: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(onnx_in), str(path), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)
    return {"layers": "MatMul, Gemm", "weights": "int8 per tensor", "activations": "uint8, ranges per call",
            "tool": "onnxruntime.quantization.quantize_dynamic"}


def _onnx_static(onnx_in: Path, names: tuple[str, str], path: Path, calibration: Observations) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(str(onnx_in), str(path), _Reader(names, calibration),
                    quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return {"layers": "Conv", "weights": "int8 per channel", "activations": "uint8, MinMax over the calibration set",
            "format": "QDQ", "calibration_frames": len(calibration),
            "tool": "onnxruntime.quantization.quantize_static"}


def _cuda_present() -> bool:
    import onnxruntime

    return torch.cuda.is_available() or "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _onnx_fp16(onnx_in: Path, path: Path) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(onnx_in)), keep_io_types=True)
    onnx.save(model, str(path))
    return {"weights": "float16", "inputs_outputs": "float32", "tool": "onnxruntime.transformers.float16"}


def quantize(model: str | Path, output: str | Path, method: str, calibration: str | Path | None = None,
             tolerance: float | None = None) -> dict:
    """Writes the quantised model and its sidecar; returns the sidecar."""
    if method not in METHODS:
        raise OptimizeError(f"quantize method {method!r} is not one of {', '.join(METHODS)}")
    source = read_source(model)
    onnx_method = method.startswith("onnx")
    fmt = FORMAT_ONNX if onnx_method else FORMAT_TORCHSCRIPT
    if not onnx_method and source.spec.model_format != FORMAT_TORCHSCRIPT:
        raise OptimizeError(f"{method} needs a TorchScript input, {source.path.name} is {source.spec.model_format}")
    out = check_output(output, fmt, source)
    if method == "onnx-fp16" and not _cuda_present():
        raise OptimizeError("onnx-fp16 runs only where CUDA is present; this machine has no CUDA")
    if method in _NEEDS_CALIBRATION and calibration is None:
        raise OptimizeError(f"{method} needs --calibration FILE.npz (observations recorded from the simulator: "
                            "python -m vla_sim.observations)")
    calib = load_calibration(calibration, source.spec) if calibration is not None else None
    obs = check_inputs(source.spec, calibration)
    if tolerance is None:
        tolerance = FP16_TOLERANCE if method == "onnx-fp16" else INT8_TOLERANCE
    details: dict = {}
    if calib is not None:
        details["calibration"] = {"file": Path(calibration).name, "sha256": sha256_file(Path(calibration)),
                                  "frames": len(calib)}

    def onnx_input(path: Path) -> Path:
        """The ONNX graph to quantise: the input itself, or its export when the input is TorchScript."""
        if source.spec.model_format == FORMAT_ONNX:
            return source.path
        exported = path.with_name(path.stem + ".fp32.onnx")
        write_onnx(torch_module(source), input_names(source), obs, exported)
        details["exported"] = f"ONNX opset {ONNX_OPSET} by torch.onnx, then quantised"
        return exported

    def write(path: Path) -> None:
        if method == "torch-dynamic":
            details.update(_torch_dynamic(torch_module(source), path))
        elif method == "torch-static":
            details.update(_torch_static(torch_module(source), path, calib))
        elif method == "onnx-dynamic":
            details.update(_onnx_dynamic(onnx_input(path), path))
        elif method == "onnx-static":
            details.update(_onnx_static(onnx_input(path), input_names(source), path, calib))
        else:
            details.update(_onnx_fp16(onnx_input(path), path))

    def sidecar(sha: str, measured: dict) -> dict:
        return derived_sidecar(source, out, sha, fmt, f"{method}-int8" if method != "onnx-fp16" else method,
                               details, measured)

    return write_model(out, write, sidecar, checked(source, tolerance, obs, metric="mean_abs_diff"))

