"""`benchmark`: one side-by-side table for any set of models — file size, parameters, latency p50/p99 at
batch 1 and 8 (end to end per step: frame preprocessing, the cached instruction embedding, the
forward pass and the finite/limit guards; the forward alone beside it), on the CPU and on CUDA (with
TensorRT through onnxruntime for ONNX models) where present, and the success rate in the simulator on
the same held-out seeds with both phrasings.

The success rate comes from `python -m vla_sim.evaluate --model M` run as a subprocess: vla_sim
depends on vla_edge, never the reverse. Timings interleave the models in rounds, so a load that
comes and goes on a shared machine falls on all of them alike.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vla_edge.encoders import ImagePreprocessor, encoder_for, vision_features
from vla_edge.optimize.lineage import OptimizeError
from vla_edge.optimize.measure import percentiles, timings_ms
from vla_edge.policy import (
    OnnxPolicy,
    PolicyLoadError,
    TorchScriptPolicy,
    configure_threads,
    finite_and_clamped,
    load_policy,
)
from vla_edge.spec import FORM_FEATURES, FORMAT_ONNX, sha256_file

LOG = logging.getLogger(__name__)
INSTRUCTION = "go to the red cube"
EVAL_FIRST_SEED = 100_000  # vla_sim.evaluate's held-out seeds (>= 100000 are never trained on)
_ROUNDS = 5


@dataclass
class Row:
    model: Path
    device: str
    policy: TorchScriptPolicy | OnnxPolicy
    size_mb: float
    parameters: int
    times: dict = field(default_factory=lambda: {"e2e1": [], "fwd1": [], "e2e8": []})
    success: dict = field(default_factory=dict)


def _tensor_elements(value: object) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_tensor_elements(v) for v in value)
    return 0


def count_parameters(path: Path, policy: TorchScriptPolicy | OnnxPolicy) -> int:
    """Stored weights, wherever they live: ONNX initializers; a TorchScript module's state, the tensor
    constants a frozen graph inlined and the int8 weights packed into quantised modules' script objects."""
    if policy.spec.model_format == FORMAT_ONNX:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        return int(sum(int(np.prod(t.dims)) for t in graph.initializer))
    module = policy.module
    total = sum(_tensor_elements(v) for v in module.state_dict().values())
    for node in module.inlined_graph.nodes():
        if node.kind() == "prim::Constant" and node.outputsSize() == 1 and node.output().type().kind() == "TensorType":
            total += node.t("value").numel()
    for node in module.graph.nodes():
        if node.kind() == "prim::GetAttr" and "packed" in node.s("name"):
            packed = getattr(module, node.s("name"), None)
            if isinstance(packed, torch.ScriptObject):
                total += _tensor_elements(packed.__getstate__())
    return total


def _frame(spec) -> np.ndarray:
    h, w = spec.image_size
    return (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)


def _step_fns(row: Row, encoder) -> tuple:
    """Three callables: one end-to-end step at batch 1, the forward alone at batch 1, and a batch of 8 end to end."""
    spec = row.policy.spec
    guarded = finite_and_clamped(row.policy)
    frame = _frame(spec)
    frames = [frame.copy() for _ in range(8)]
    low, high = np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32)
    if spec.form == FORM_FEATURES:
        def vision(rgb: np.ndarray) -> np.ndarray:
            return vision_features(rgb)
        key = "vision_features"
    else:
        vision = ImagePreprocessor(spec)
        key = "image"

    def step() -> None:
        guarded.infer({key: vision(frame), "language": encoder.encode(INSTRUCTION)})

    lang1 = encoder.encode(INSTRUCTION)[None]
    vis1 = vision(frame)[None]

    def forward() -> None:
        row.policy.forward_batch(vis1, lang1)

    def batch8() -> None:
        language = np.repeat(encoder.encode(INSTRUCTION)[None], 8, axis=0)
        actions = row.policy.forward_batch(np.stack([vision(f) for f in frames]), language)
        if not np.all(np.isfinite(actions)):
            raise OptimizeError(f"{row.model.name} returned NaN or inf")
        np.clip(actions, low, high)

    return step, forward, batch8


def success_rate(model: Path, episodes: int, first_seed: int, paraphrases: bool) -> dict:
    """Runs vla_sim's evaluation on the model in a subprocess; its last stdout line is the summary."""
    cmd = [sys.executable, "-m", "vla_sim.evaluate", "--model", str(model), "--episodes", str(episodes),
           "--first-seed", str(first_seed)] + (["--paraphrases"] if paraphrases else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + 60 * episodes, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise OptimizeError(f"evaluation of {model.name} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    summary = json.loads(lines[-1])
    summary["command"] = " ".join(["python", *cmd[1:]])
    return summary


def benchmark(models: list[str | Path], calls: int = 300, threads: int = 1, episodes: int = 0,
              first_seed: int = EVAL_FIRST_SEED, devices: tuple[str, ...] | None = None) -> list[Row]:
    """Measures every model on every device; `episodes` > 0 adds the success rates (seen and unseen)."""
    configure_threads(threads)
    if devices is None:
        devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    rows: list[Row] = []
    encoder = None
    for model in models:
        path = Path(model).expanduser().resolve()
        for device in devices:
            try:
                policy = load_policy(path, device)
            except PolicyLoadError as exc:
                if device != "cpu":  # int8 torch kernels are CPU-only: that model has no CUDA row
                    LOG.warning("%s: no %s row: %s", path.name, device, exc)
                    continue
                raise OptimizeError(f"cannot benchmark {path}: {exc}") from exc
            encoder = encoder_for(policy.spec, "cpu", current=encoder)
            rows.append(Row(model=path, device=device, policy=policy, size_mb=path.stat().st_size / 1e6,
                            parameters=count_parameters(path, policy)))
    fns = [(row, _step_fns(row, encoder_for(row.policy.spec, "cpu", current=encoder))) for row in rows]
    per_round = max(1, calls // _ROUNDS)
    for _ in range(_ROUNDS):
        for row, (step, forward, batch8) in fns:
            row.times["e2e1"].extend(timings_ms(step, per_round))
            row.times["fwd1"].extend(timings_ms(forward, per_round))
            row.times["e2e8"].extend(timings_ms(batch8, max(1, per_round // 4)))
    if episodes > 0:
        for row in rows:
            if row.device == "cpu":
                row.success = {"seen": success_rate(row.model, episodes, first_seed, False),
                               "unseen": success_rate(row.model, episodes, first_seed, True)}
    return rows


def summary(row: Row) -> dict:
    """The per-model record of `--json` (and a row of the table)."""
    e2e1, fwd1, e2e8 = (percentiles(np.asarray(row.times[k])) for k in ("e2e1", "fwd1", "e2e8"))
    return {
        "model": str(row.model), "device": row.device, "providers": list(getattr(row.policy, "providers", ())),
        "version": row.policy.spec.version, "sha256": sha256_file(row.model),
        "size_mb": round(row.size_mb, 3), "parameters": row.parameters,
        "batch1_p50_ms": e2e1["p50_ms"], "batch1_p99_ms": e2e1["p99_ms"],
        "forward1_p50_ms": fwd1["p50_ms"], "forward1_p99_ms": fwd1["p99_ms"],
        "batch8_p50_ms": e2e8["p50_ms"], "batch8_p99_ms": e2e8["p99_ms"],
        "success_seen": row.success["seen"]["success_rate"] if row.success else None,
        "success_unseen": row.success["unseen"]["success_rate"] if row.success else None,
    }


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def table(records: list[dict]) -> str:
    """Markdown table; the speed-up column compares end-to-end batch-1 p50 with the first model on its device."""
    head = ("| model | device | size MB | params | step p50 ms | step p99 ms | fwd p50 ms | batch8 p50 ms "
            "| batch8 p99 ms | speed-up | success seen | success unseen |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    first = {}
    for r in records:
        first.setdefault(r["device"], r)
        base = first[r["device"]]["batch1_p50_ms"]

        lines.append(f"| {Path(r['model']).name} | {r['device']} | {r['size_mb']:.2f} | {r['parameters']:,} "
                     f"| {r['batch1_p50_ms']:.3f} | {r['batch1_p99_ms']:.3f} | {r['forward1_p50_ms']:.3f} "
                     f"| {r['batch8_p50_ms']:.3f} | {r['batch8_p99_ms']:.3f} | {base / r['batch1_p50_ms']:.2f}x "
                     f"| {_percent(r['success_seen'])} | {_percent(r['success_unseen'])} |")
    return "\n".join(lines)
