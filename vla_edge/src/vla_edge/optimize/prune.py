"""`prune`: magnitude pruning of a TorchScript policy, then a short fine-tune on demonstrations.

- `unstructured`: the smallest-magnitude weights of every convolution and linear layer (one global
  threshold) become zero and stay zero through the fine-tune; the file keeps its dense shapes, so a
  dense CPU kernel runs no faster (the benchmark shows it) — sparse kernels or compression gain from it.
- `channels`: the weakest output channels (L1 norm of their filters) of each convolution go, and the
  layers really shrink: the convolution's output, the next convolution's input, the FiLM rows
  (gamma and beta) that scale those channels and the columns of the linear layer that reads the last
  convolution's pooled map. The channel map is derived from the module's layer shapes and then proven:
  the shrunk model must equal the original with those channels silenced (else the architecture is refused).

The fine-tune fits the pruned model to the expert's chunks in a demonstrations file (`python -m
vla_sim.observations`: `image`, `language`, `actions` [N, T, 6]), mean squared error over each axis'
range, a few epochs of Adam. A file that also holds its paraphrase table (`target` [N], `paraphrases`
[P, D], `paraphrase_target` [P]: every training phrasing's embedding and the goal it names) has each
frame's instruction redrawn among the phrasings of the same goal at every step, plus a little embedding
noise, as the reference was trained: a few dozen episodes carry only a few dozen instructions, and
fitted on those alone the language pathway forgets how the unseen paraphrases map to their goals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vla_edge.optimize.export import checked, torch_module
from vla_edge.optimize.inputs import Observations, check_inputs, load_calibration
from vla_edge.optimize.lineage import OptimizeError, check_output, derived_sidecar, read_source, write_model
from vla_edge.spec import FORMAT_TORCHSCRIPT, PolicySpec, sha256_file

METHODS = ("unstructured", "channels")
# Pruned then fine-tuned models differ from their parent by design; the bound only catches a broken
# result (mean |difference| in action units), the success rate is the benchmark's to judge.
PRUNE_TOLERANCE = 0.1


@dataclass
class _Layer:
    name: str
    module: torch.jit.ScriptModule
    kind: str  # "Conv2d" or "Linear"


def _layers(module: torch.jit.ScriptModule) -> list[_Layer]:
    return [_Layer(n, m, m.original_name) for n, m in module.named_modules()
            if getattr(m, "original_name", "") in ("Conv2d", "Linear")]


def _set(layer: torch.jit.ScriptModule, name: str, value: torch.Tensor) -> None:
    setattr(layer, name, torch.nn.Parameter(value.detach().clone().contiguous()))


def _unstructured(module: torch.jit.ScriptModule, amount: float) -> dict[str, torch.Tensor]:
    """Zeroes the `amount` fraction of smallest |w| over all conv/linear weights; returns the keep masks."""
    layers = _layers(module)
    magnitudes = torch.cat([layer.module.weight.detach().abs().flatten() for layer in layers])
    k = int(amount * magnitudes.numel())
    threshold = torch.kthvalue(magnitudes, k).values if k > 0 else torch.tensor(-1.0)
    masks = {}
    with torch.no_grad():
        for layer in layers:
            mask = layer.module.weight.abs() > threshold
            layer.module.weight.mul_(mask)
            masks[layer.name] = mask
    return masks


def _pool_cells(module: torch.jit.ScriptModule) -> int:
    for _, sub in module.named_modules():
        if getattr(sub, "original_name", "") == "AdaptiveAvgPool2d":
            size = sub.output_size
            return int(np.prod(size)) if isinstance(size, (list, tuple)) else int(size) ** 2
    return 1


# One convolution's cut: its name, the channels kept, and the layers that read them: (name, how) with how
# "input" (the next convolution), "film" (rows gamma and beta of a FiLM linear) or "flat" (a linear's columns).
_Cut = tuple[str, torch.Tensor, list[tuple[str, str]]]


def _apply(module: torch.jit.ScriptModule, cuts: list[_Cut], cells: int, silence_only: bool) -> None:
    """Shrinks the layers (or, with silence_only, zeroes what would go: the proof's reference model)."""
    layers = dict(module.named_modules())
    with torch.no_grad():
        for conv_name, keep, consumers in cuts:
            conv = layers[conv_name]
            channels = conv.weight.shape[0]
            if silence_only:
                drop = torch.ones(channels, dtype=torch.bool)
                drop[keep] = False
                conv.weight[drop] = 0.0
                if conv.bias is not None:
                    conv.bias[drop] = 0.0
                for name, how in consumers:
                    if how == "film":  # the beta of a silenced channel would shift it off zero
                        layers[name].weight[channels:][drop] = 0.0
                        layers[name].bias[channels:][drop] = 0.0
                continue
            _set(conv, "weight", conv.weight[keep])
            if conv.bias is not None:
                _set(conv, "bias", conv.bias[keep])
            for name, how in consumers:
                layer = layers[name]
                if how == "input":
                    _set(layer, "weight", layer.weight[:, keep])
                elif how == "film":
                    rows = torch.cat([keep, keep + channels])
                    _set(layer, "weight", layer.weight[rows])
                    _set(layer, "bias", layer.bias[rows])
                else:
                    cols = (keep[:, None] * cells + torch.arange(cells)[None, :]).flatten()
                    rest = torch.arange(channels * cells, layer.weight.shape[1])
                    _set(layer, "weight", layer.weight[:, torch.cat([cols, rest])])


def _proven(source_path: Path, cuts: list[_Cut], cells: int, obs: Observations) -> bool:
    """True when shrinking by `cuts` gives exactly the original with those channels silenced."""
    shrunk = torch.jit.load(str(source_path), map_location="cpu").eval()
    silenced = torch.jit.load(str(source_path), map_location="cpu").eval()
    vision, language = torch.from_numpy(obs.vision[:8].copy()), torch.from_numpy(obs.language[:8].copy())
    try:
        _apply(silenced, cuts, cells, silence_only=True)
        _apply(shrunk, cuts, cells, silence_only=False)
        with torch.no_grad():
            gap = float((shrunk(vision, language) - silenced(vision, language)).abs().max())
    except (RuntimeError, IndexError):  # a wrong map breaks a shape somewhere downstream
        return False
    return gap <= 1e-4


def _channel_cuts(module: torch.jit.ScriptModule, source_path: Path, amount: float, obs: Observations) -> list[_Cut]:
    """The cut of every convolution: its weakest channels (L1 norm of the filters) go. Its readers are
    found from the layer shapes and each candidate is proven on the model (`_proven`), so a map the
    shapes suggest but the graph does not follow is never used."""
    layers = _layers(module)
    convs = [la for la in layers if la.kind == "Conv2d"]
    linears = [la for la in layers if la.kind == "Linear"]
    if not convs:
        raise OptimizeError("channel pruning needs convolutions and the model has none")
    cells = _pool_cells(module)
    cuts: list[_Cut] = []
    used: set[str] = set()
    for i, conv in enumerate(convs):
        weight = conv.module.weight.detach()
        channels = weight.shape[0]
        keep_count = max(1, round(channels * (1.0 - amount)))
        keep = torch.sort(torch.topk(weight.abs().sum(dim=(1, 2, 3)), keep_count).indices).values
        if i + 1 < len(convs):
            base = [(convs[i + 1].name, "input")]
            films = [la.name for la in linears if la.module.weight.shape[0] == 2 * channels and la.name not in used]
            options = [base] + [[*base, (f, "film")] for f in films]
        else:
            heads = [la.name for la in linears if la.module.weight.shape[1] >= channels * cells]
            options = [[(h, "flat")] for h in heads]
        chosen = next((o for o in options if _proven(source_path, [(conv.name, keep, o)], cells, obs)), None)
        if chosen is None:
            raise OptimizeError(f"channel pruning: no reader map of {conv.name}'s channels holds on this model "
                                "(supported: conv chains, FiLM linears, a linear head on the pooled map)")
        used.update(name for name, how in chosen if how == "film")
        cuts.append((conv.name, keep, chosen))
    if not _proven(source_path, cuts, cells, obs):
        raise OptimizeError("channel pruning: the cuts hold one by one but not together; this model is refused")
    return cuts


def _channels(module: torch.jit.ScriptModule, source_path: Path, amount: float, obs: Observations) -> dict:
    cuts = _channel_cuts(module, source_path, amount, obs)
    before = {name: int(dict(module.named_modules())[name].weight.shape[0]) for name, _, _ in cuts}
    _apply(module, cuts, _pool_cells(module), silence_only=False)
    return {name: {"channels": [before[name], len(keep)], "readers": [f"{n} ({how})" for n, how in readers]}
            for name, keep, readers in cuts}


# The reference's training noise on the (unit-norm) embedding: each instruction widens to a neighbourhood.
LANGUAGE_NOISE = 0.02
PARAPHRASE_KEYS = ("target", "paraphrases", "paraphrase_target")
# Redrawn phrasings make the fit harder than the recorded ones: 3 epochs at 3e-4 left the loss at 0.018
# and 72 % unseen success; 10 at 1e-3 reach 0.003 and 92 % (docs/benchmarks.md, optimisation).
FINE_TUNE_EPOCHS = 10
FINE_TUNE_LR = 1e-3


@dataclass(frozen=True)
class Paraphrases:
    """Every training phrasing's embedding [P, D] and the goal it names [P]; `target` [N]: each frame's goal."""

    target: np.ndarray
    embeddings: np.ndarray
    embedding_target: np.ndarray

    def draw(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each frame index, the embedding of a random phrasing of the same goal [len(frames), D]."""
        order = np.argsort(self.embedding_target, kind="stable")
        goals, start, count = np.unique(self.embedding_target[order], return_index=True, return_counts=True)
        slot = np.searchsorted(goals, self.target[frames])
        pick = start[slot] + (rng.random(len(frames)) * count[slot]).astype(np.int64)
        return self.embeddings[order[pick]]


@dataclass(frozen=True)
class Demonstrations:
    observations: Observations
    actions: np.ndarray  # [N, T, 6]
    paraphrases: Paraphrases | None = None


def _paraphrases(path: str | Path, data, frames: int, dim: int) -> Paraphrases | None:
    present = [k for k in PARAPHRASE_KEYS if k in data]
    if not present:
        return None
    if len(present) != len(PARAPHRASE_KEYS):
        raise OptimizeError(f"demonstrations {path}: the paraphrase table needs all of {', '.join(PARAPHRASE_KEYS)}, "
                            f"has {', '.join(present)}")
    target, embeddings, embedding_target = (data[k] for k in PARAPHRASE_KEYS)
    if target.shape != (frames,) or embeddings.ndim != 2 or embeddings.shape[1] != dim or \
            embedding_target.shape != (embeddings.shape[0],) or target.dtype.kind not in "iu" or \
            embedding_target.dtype.kind not in "iu" or not np.all(np.isfinite(embeddings)):
        raise OptimizeError(f"demonstrations {path}: paraphrase table of shapes target {list(target.shape)}, "
                            f"paraphrases {list(embeddings.shape)}, paraphrase_target {list(embedding_target.shape)}; "
                            f"wants [{frames}], [P, {dim}] finite, [P], integer goals")
    missing = sorted(set(target.tolist()) - set(embedding_target.tolist()))
    if missing:
        raise OptimizeError(f"demonstrations {path}: frames name goals {missing} that no paraphrase names")
    return Paraphrases(target.astype(np.int64), embeddings.astype(np.float32), embedding_target.astype(np.int64))


def load_demonstrations(path: str | Path, spec: PolicySpec) -> Demonstrations:
    obs = load_calibration(path, spec)
    with np.load(Path(path).expanduser(), allow_pickle=False) as data:
        if "actions" not in data:
            raise OptimizeError(f"demonstrations {path}: no 'actions' array "
                                "(record them with python -m vla_sim.observations)")
        actions = data["actions"].astype(np.float32)
        paraphrases = _paraphrases(path, data, len(obs), spec.language_dim)
    if actions.shape != (len(obs), spec.chunk_length, 6) or not np.all(np.isfinite(actions)):
        raise OptimizeError(f"demonstrations {path}: actions of shape {list(actions.shape)}, the model wants "
                            f"[{len(obs)}, {spec.chunk_length}, 6] finite values")
    return Demonstrations(obs, actions, paraphrases)


def fine_tune(module: torch.jit.ScriptModule, demos: Demonstrations, spec: PolicySpec, epochs: int, lr: float,
              masks: dict[str, torch.Tensor] | None = None, seed: int = 0,
              teacher: torch.jit.ScriptModule | None = None) -> dict:
    """Adam on the MSE to the expert's chunks, each axis scaled by its range; pruned weights stay zero.
    With the demonstrations' paraphrase table, each frame's instruction is redrawn per step among its
    goal's phrasings, with the reference's embedding noise. With a `teacher`, the target is the
    teacher's own chunk for the frame and the words the student sees (a distillation): the student
    copies how the teacher reads every phrasing, not one label per recorded instruction."""
    span = np.asarray(spec.action_high, np.float32) - np.asarray(spec.action_low, np.float32)
    scale = torch.from_numpy(np.where(span > 0, 2.0 / np.maximum(span, 1e-9), 0.0).astype(np.float32))
    layers = {la.name: la.module for la in _layers(module)}
    params = [p for p in module.parameters() if p.dtype.is_floating_point]
    opt = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    noise = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(demos.observations.vision)
    language = torch.from_numpy(demos.observations.language)
    target = torch.from_numpy(demos.actions)
    module.train()
    t0, loss_value = time.monotonic(), float("nan")
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(images)))
        total = 0.0
        for start in range(0, len(order), 64):
            sel = order[start:start + 64]
            words = language[sel]
            if demos.paraphrases is not None:
                drawn = torch.from_numpy(demos.paraphrases.draw(sel.numpy(), rng))
                drawn = drawn + LANGUAGE_NOISE * torch.randn(drawn.shape, generator=noise)
                words = torch.nn.functional.normalize(drawn, dim=-1)
            if teacher is None:
                wanted = target[sel]
            else:
                with torch.no_grad():
                    wanted = teacher(images[sel], words)
            loss = (((module(images[sel], words) - wanted) * scale) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if masks:
                with torch.no_grad():
                    for name, mask in masks.items():
                        layers[name].weight.mul_(mask)
            total += loss.item() * len(sel)
        loss_value = total / len(images)
    module.eval()
    language_inputs = (f"each frame's goal redrawn among {len(demos.paraphrases.embeddings)} phrasings, "
                       f"noise {LANGUAGE_NOISE}") if demos.paraphrases is not None else "as recorded"
    return {"epochs": epochs, "lr": lr, "frames": len(images), "final_loss": round(loss_value, 6),
            "language": language_inputs, "labels": "the teacher's chunk for the words seen" if teacher is not None
            else "the demonstrations' chunks", "wall_time_s": round(time.monotonic() - t0, 1)}


def prune(model: str | Path, output: str | Path, method: str, amount: float, demonstrations: str | Path | None,
          epochs: int = FINE_TUNE_EPOCHS, lr: float = FINE_TUNE_LR, tolerance: float = PRUNE_TOLERANCE) -> dict:
    """Writes the pruned (and fine-tuned) TorchScript model and its sidecar; returns the sidecar."""
    if method not in METHODS:
        raise OptimizeError(f"prune method {method!r} is not one of {', '.join(METHODS)}")
    if not 0.0 < amount < 1.0:
        raise OptimizeError(f"--amount {amount} must be a fraction in (0, 1)")
    if not 0 <= epochs <= 100:
        raise OptimizeError(f"--epochs {epochs} must be in 0..100")
    source = read_source(model)
    out = check_output(output, FORMAT_TORCHSCRIPT, source)
    if epochs > 0 and demonstrations is None:
        raise OptimizeError("the fine-tune needs --demonstrations FILE.npz (python -m vla_sim.observations), "
                            "or --epochs 0")
    demos = load_demonstrations(demonstrations, source.spec) if epochs > 0 else None
    obs = check_inputs(source.spec, demonstrations)
    details: dict = {"amount": amount}

    def write(path: Path) -> None:
        module = torch_module(source)
        if method == "unstructured":
            masks = _unstructured(module, amount)
            kept = sum(int(m.sum()) for m in masks.values())
            details["weights_kept"] = f"{kept} of {sum(m.numel() for m in masks.values())}"
        else:
            masks = None
            details["channels"] = _channels(module, source.path, amount, obs)
        if demos is not None:
            details["fine_tune"] = fine_tune(module, demos, source.spec, epochs, lr, masks) | {
                "demonstrations": {"file": Path(demonstrations).name, "sha256": sha256_file(Path(demonstrations))}}
        module.save(str(path))

    def sidecar(sha: str, measured: dict) -> dict:
        return derived_sidecar(source, out, sha, FORMAT_TORCHSCRIPT, f"prune-{method}", details, measured)

    return write_model(out, write, sidecar, checked(source, tolerance, obs, metric="mean_abs_diff"))
