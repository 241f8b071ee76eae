"""vla_edge.optimize on small seeded policies: export round trips, quantisation, sidecars and lineage,
refused inputs that leave nothing behind, the benchmark's records. Real torch, onnx and onnxruntime."""

import json

import numpy as np
import pytest

from vla_edge.optimize import benchmark
from vla_edge.optimize.cli import REFUSED_EXIT_CODE, main
from vla_edge.optimize.export import export_onnx, export_torchscript
from vla_edge.optimize.inputs import probe
from vla_edge.optimize.lineage import OptimizeError, lineage_of
from vla_edge.optimize.prune import prune
from vla_edge.optimize.quantize import quantize
from vla_edge.policy import OnnxPolicy, TorchScriptPolicy, load_policy
from vla_edge.spec import sha256_file

SIDECAR_KEYS = {"name", "version", "sha256", "format", "file", "parent", "lineage", "optimization", "input", "action",
                "chunk_length"}


@pytest.fixture
def conv(make_policy):
    return make_policy("conv", chunk=4)


@pytest.fixture
def calibration(tmp_path, conv):
    """Observations of the model's shapes: the images a camera gives are smooth, not noise."""
    rng = np.random.default_rng(1)
    base = rng.random((24, 3, 1, 1), dtype=np.float32)
    image = np.clip(base + 0.1 * rng.random((24, 3, 96, 96), dtype=np.float32), 0, 1)
    language = rng.standard_normal((24, 32)).astype(np.float32)
    path = tmp_path / "calib.npz"
    np.savez(path, image=image, language=language)
    return path


def _max_diff(a, b, seed=3):
    obs = probe(a.spec, 8, seed)
    return float(np.abs(a.forward_batch(obs.vision, obs.language) - b.forward_batch(obs.vision, obs.language)).max())


def _files(directory):
    return sorted(p.name for p in directory.iterdir())


def test_onnx_export_round_trip_agrees_and_loads_through_load_policy(conv, tmp_path):
    out = tmp_path / "conv.onnx"
    doc = export_onnx(conv, out)
    policy = load_policy(out, "cpu")
    assert isinstance(policy, OnnxPolicy) and policy.spec.model_format == "onnx"
    assert _max_diff(load_policy(conv, "cpu"), policy) <= 1e-4
    assert policy.infer({"image": probe(policy.spec).vision[0], "language": probe(policy.spec).language[0]})[
        "actions"].shape == (4, 6)
    assert doc["optimization"]["opset"] == 17 and doc["optimization"]["measured"]["max_abs_diff"] <= 1e-4


def test_frozen_torchscript_export_round_trip_agrees(conv, tmp_path):
    out = tmp_path / "conv_frozen.pt"
    export_torchscript(conv, out, "frozen")
    policy = load_policy(out, "cpu")
    assert isinstance(policy, TorchScriptPolicy)
    assert _max_diff(load_policy(conv, "cpu"), policy) <= 1e-5


def test_tracing_a_torchscript_file_is_refused_as_a_no_op(conv, tmp_path):
    with pytest.raises(OptimizeError, match=r"python -m vla_sim\.export --mode traced"):
        export_torchscript(conv, tmp_path / "traced.pt", "traced")
    assert not (tmp_path / "traced.pt").exists()


@pytest.mark.parametrize("method,suffix", [("torch-dynamic", ".pt"), ("torch-static", ".pt"),
                                           ("onnx-dynamic", ".onnx"), ("onnx-static", ".onnx")])
def test_quantised_models_load_agree_on_average_and_record_their_lineage(conv, calibration, tmp_path, method, suffix):
    out = tmp_path / f"conv_{method}{suffix}"
    doc = quantize(conv, out, method, calibration)
    policy = load_policy(out, "cpu")
    assert policy.spec.model_format == ("onnx" if suffix == ".onnx" else "torchscript")
    measured = doc["optimization"]["measured"]
    assert measured["mean_abs_diff"] <= 0.02 and measured["observations"] > 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert set(side) >= SIDECAR_KEYS and side["sha256"] == sha256_file(out)
    assert side["parent"]["sha256"] == sha256_file(conv) and side["optimization"]["method"] == f"{method}-int8"
    assert side["version"] == "test-1+" + f"{method}-int8"


def test_lineage_is_followed_back_to_the_root_with_every_checksum(conv, tmp_path):
    first = tmp_path / "a" / "frozen.pt"
    first.parent.mkdir()
    export_torchscript(conv, first)
    second = tmp_path / "b" / "frozen.onnx"
    second.parent.mkdir()
    export_onnx(first, second)
    chain = lineage_of(second)
    assert [c["file"] for c in chain] == [str(second), str(first), str(conv)]
    assert all(c["verified"] for c in chain)
    assert chain[-1]["sha256"] == sha256_file(conv)
    assert json.loads(second.with_suffix(".json").read_text())["lineage"][0]["sha256"] == sha256_file(conv)
    conv.write_bytes(conv.read_bytes() + b"\0")  # the root changes after the fact: the chain says so
    assert not lineage_of(second)[-1]["verified"]


def test_existing_output_is_refused_and_left_alone(conv, tmp_path):
    out = tmp_path / "conv.onnx"
    export_onnx(conv, out)
    before = (out.read_bytes(), out.with_suffix(".json").read_text())
    with pytest.raises(OptimizeError, match="exists"):
        export_onnx(conv, out)
    assert (out.read_bytes(), out.with_suffix(".json").read_text()) == before
    sidecar_only = tmp_path / "other.onnx"
    sidecar_only.with_suffix(".json").write_text("{}")
    with pytest.raises(OptimizeError, match="exists"):
        export_onnx(conv, sidecar_only)
    assert not sidecar_only.exists()


def test_input_is_never_overwritten(conv):
    before = conv.read_bytes()
    with pytest.raises(OptimizeError, match="exists"):
        export_torchscript(conv, conv)
    assert conv.read_bytes() == before


@pytest.mark.parametrize("kind,message", [("mismatch", "sha256 mismatch"), ("wrong_form", "does not match"),
                                          ("corrupt", "not a loadable")])
def test_bad_sources_are_refused_and_nothing_written(make_policy, tmp_path, kind, message):
    source = make_policy(kind)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(OptimizeError, match=message):
        export_onnx(source, out_dir / "x.onnx")
    assert _files(out_dir) == []


@pytest.mark.parametrize("shape,message", [((4, 3, 64, 64), "image has shape"), ((4, 3, 96, 96), "language has shape")])
def test_calibration_of_the_wrong_shape_is_refused(conv, tmp_path, shape, message):
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=np.zeros(shape, np.float32), language=np.zeros((4, 7), np.float32))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(OptimizeError, match=message):
        quantize(conv, out_dir / "q.onnx", "onnx-static", bad)
    assert _files(out_dir) == []


def test_static_quantisation_needs_calibration_and_int8_beyond_tolerance_writes_nothing(conv, calibration, tmp_path):
    with pytest.raises(OptimizeError, match="needs --calibration"):
        quantize(conv, tmp_path / "q.pt", "torch-static")
    with pytest.raises(OptimizeError, match="tolerance"):
        quantize(conv, tmp_path / "q.onnx", "onnx-static", calibration, tolerance=0.0)
    assert not (tmp_path / "q.onnx").exists() and not (tmp_path / "q.json").exists()
    assert not any(p.name.startswith(".q.") for p in tmp_path.iterdir())  # the private directory went too


def test_wrong_suffix_and_wrong_input_format_are_refused(conv, tmp_path):
    with pytest.raises(OptimizeError, match=r"must end \.onnx"):
        export_onnx(conv, tmp_path / "x.pt")
    onnx_model = tmp_path / "conv.onnx"
    export_onnx(conv, onnx_model)
    with pytest.raises(OptimizeError, match="needs a TorchScript input"):
        quantize(onnx_model, tmp_path / "q.pt", "torch-dynamic")


def test_cli_refusal_exits_2_with_one_line(conv, tmp_path, capsys):
    code = main(["quantize", str(conv), "--method", "onnx-static", "--out", str(tmp_path / "q.onnx")])
    err = capsys.readouterr().err
    assert code == REFUSED_EXIT_CODE and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "q.onnx").exists()


def test_benchmark_json_line_holds_every_model(conv, tmp_path, capsys):
    onnx_model = tmp_path / "conv.onnx"
    export_onnx(conv, onnx_model)
    assert main(["benchmark", str(conv), str(onnx_model), "--calls", "10", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    records = json.loads(out[-1])
    assert [r["model"] for r in records] == [str(conv), str(onnx_model)]
    for r in records:
        for key in ("batch1_p50_ms", "batch1_p99_ms", "batch8_p50_ms"):
            assert r[key] > 0
        assert r["success_seen"] is None and r["success_unseen"] is None  # no episodes asked for
        assert r["parameters"] == records[0]["parameters"] > 0
    assert any(line.startswith("| conv.onnx | cpu |") for line in out)


def test_parameters_are_counted_in_frozen_and_quantised_modules(conv, calibration, tmp_path):
    frozen = tmp_path / "frozen.pt"
    export_torchscript(conv, frozen)
    dynamic = tmp_path / "dyn.pt"
    quantize(conv, dynamic, "torch-dynamic", calibration)
    counts = [benchmark.count_parameters(p, load_policy(p, "cpu")) for p in (conv, frozen, dynamic)]
    assert counts[0] > 0 and counts[1] == counts[0] and counts[2] >= counts[0]


@pytest.fixture
def demonstrations(tmp_path, calibration):
    """The calibration frames with made-up expert chunks of the contract's shape."""
    with np.load(calibration) as data:
        image, language = data["image"], data["language"]
    actions = np.zeros((len(image), 4, 6), np.float32)
    actions[:, :, 0] = 0.3
    path = tmp_path / "demos.npz"
    np.savez(path, image=image, language=language, actions=actions)
    return path


def test_channel_pruning_really_shrinks_every_layer_and_fine_tunes(conv, demonstrations, tmp_path):
    import torch

    out = tmp_path / "pruned.pt"
    doc = prune(conv, out, "channels", 0.5, demonstrations, epochs=1)
    module = torch.jit.load(str(out))
    assert module.conv1.weight.shape[0] == 4 and module.conv2.weight.shape[:2] == (8, 4)
    assert module.film1.weight.shape[0] == 8 and module.head.weight.shape[1] == 8 * 16
    policy = load_policy(out, "cpu")
    obs = probe(policy.spec, 2)
    assert policy.forward_batch(obs.vision, obs.language).shape == (2, 4, 6)
    channels = doc["optimization"]["channels"]
    assert channels["conv1"] == {"channels": [8, 4], "readers": ["conv2 (input)", "film1 (film)"]}
    assert channels["conv2"] == {"channels": [16, 8], "readers": ["head (flat)"]}
    assert doc["optimization"]["fine_tune"]["frames"] == 24 and doc["parent"]["sha256"] == sha256_file(conv)


def test_unstructured_pruning_zeroes_the_smallest_weights_and_keeps_them_zero(conv, demonstrations, tmp_path):
    import torch

    out = tmp_path / "sparse.pt"
    prune(conv, out, "unstructured", 0.6, demonstrations, epochs=1)
    module = torch.jit.load(str(out))
    weights = torch.cat([module.conv1.weight.flatten(), module.film1.weight.flatten(), module.conv2.weight.flatten(),
                         module.head.weight.flatten()])
    assert float((weights == 0).float().mean()) >= 0.59  # after a fine-tune step: the masks held


def test_channel_pruning_refuses_a_wiring_it_cannot_prove(tmp_path):
    import torch

    from vla_edge.testing import sidecar

    class Gated(torch.nn.Module):  # language gates the last conv's channels one to one: no rule covers it
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 4, 5, stride=4)
            self.gate = torch.nn.Linear(32, 4)
            self.head = torch.nn.Linear(4, 6)

        def forward(self, image: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv1(image)) * self.gate(language)[:, :, None, None]
            return torch.tanh(self.head(x.mean(dim=(2, 3)))).unsqueeze(1)

    path = tmp_path / "gated.pt"
    torch.jit.script(Gated()).save(str(path))
    path.with_suffix(".json").write_text(json.dumps(sidecar(path, "image", 1)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(OptimizeError, match="no reader map of conv1"):
        prune(path, out_dir / "p.pt", "channels", 0.5, None, epochs=0)
    assert _files(out_dir) == []


def test_prune_refuses_bad_demonstrations_and_amounts(conv, calibration, tmp_path):
    with pytest.raises(OptimizeError, match="no 'actions' array"):
        prune(conv, tmp_path / "p.pt", "channels", 0.5, calibration)
    with pytest.raises(OptimizeError, match="needs --demonstrations"):
        prune(conv, tmp_path / "p.pt", "channels", 0.5, None)
    with pytest.raises(OptimizeError, match="fraction"):
        prune(conv, tmp_path / "p.pt", "channels", 1.0, None, epochs=0)
    assert not (tmp_path / "p.pt").exists()


def _goal_demos(calibration, path, table: bool):
    """Frames that all carry ONE recorded instruction, though half are labelled for goal 0 (drive forward)
    and half for goal 1 (back up): only the paraphrase table says which goal a frame's words name."""
    rng = np.random.default_rng(5)
    with np.load(calibration) as data:
        image = np.repeat(data["image"][:1], 24, axis=0)  # one view: the image cannot tell the goals apart
        language = np.repeat(data["language"][:1], 24, axis=0)
    target = np.array([0, 1] * 12, np.int64)
    actions = np.zeros((24, 4, 6), np.float32)
    actions[:, :, 0] = np.where(target == 0, 0.4, -0.4)[:, None]
    phrasings = rng.standard_normal((6, 32)).astype(np.float32)
    phrasings /= np.linalg.norm(phrasings, axis=1, keepdims=True)
    arrays = {"image": image, "language": language, "actions": actions}
    if table:
        arrays |= {"target": target, "paraphrases": phrasings, "paraphrase_target": np.array([0, 0, 0, 1, 1, 1])}
    np.savez(path, **arrays)
    return phrasings


@pytest.mark.parametrize("table", [True, False])
def test_fine_tune_learns_each_goal_from_its_phrasings_through_the_paraphrase_table(conv, calibration, tmp_path, table):
    import torch

    from vla_edge.optimize.prune import fine_tune, load_demonstrations

    phrasings = _goal_demos(calibration, tmp_path / "goals.npz", table)
    policy = load_policy(conv, "cpu")
    demos = load_demonstrations(tmp_path / "goals.npz", policy.spec)
    module = torch.jit.load(str(conv))
    fit = fine_tune(module, demos, policy.spec, epochs=60, lr=3e-3)
    with torch.no_grad():
        image = torch.from_numpy(demos.observations.vision[:6])
        forward = module(image, torch.from_numpy(phrasings))[:, 0, 0].numpy()
    gap = float(forward[:3].mean() - forward[3:].mean())  # goal 0's phrasings drive forward, goal 1's back
    if table:
        assert gap > 0.3 and "redrawn among 6 phrasings" in fit["language"], (forward, fit)
    else:  # one recorded instruction for both goals: nothing to learn the goal from
        assert abs(gap) < 0.1 and fit["language"] == "as recorded", (forward, fit)


def test_paraphrases_are_drawn_within_each_frames_goal_and_a_partial_table_is_refused(conv, calibration, tmp_path):
    from vla_edge.optimize.prune import load_demonstrations

    phrasings = _goal_demos(calibration, tmp_path / "goals.npz", table=True)
    spec = load_policy(conv, "cpu").spec
    demos = load_demonstrations(tmp_path / "goals.npz", spec)
    drawn = demos.paraphrases.draw(np.arange(24), np.random.default_rng(0))
    owner = [int(np.argmin(np.linalg.norm(phrasings - d, axis=1))) // 3 for d in drawn]
    assert owner == demos.paraphrases.target.tolist()
    with np.load(tmp_path / "goals.npz") as data:
        arrays = dict(data)
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "paraphrase_target"})
    with pytest.raises(OptimizeError, match="paraphrase table needs all of"):
        load_demonstrations(tmp_path / "partial.npz", spec)
    np.savez(tmp_path / "orphan.npz", **(arrays | {"target": np.full(24, 7, np.int64)}))
    with pytest.raises(OptimizeError, match=r"goals \[7\] that no paraphrase names"):
        load_demonstrations(tmp_path / "orphan.npz", spec)


def test_fine_tune_with_a_teacher_fits_the_teachers_chunks_not_the_recorded_ones(conv, demonstrations):
    import torch

    from vla_edge.optimize.prune import fine_tune, load_demonstrations

    spec = load_policy(conv, "cpu").spec
    demos = load_demonstrations(demonstrations, spec)  # recorded chunks: linear.x 0.3 everywhere
    teacher = torch.jit.load(str(conv)).eval()
    image, language = torch.from_numpy(demos.observations.vision), torch.from_numpy(demos.observations.language)
    with torch.no_grad():
        before = teacher(image, language)
    assert float((before[:, :, 0] - 0.3).abs().mean()) > 0.05  # the teacher does not drive at 0.3
    copied, fitted = torch.jit.load(str(conv)), torch.jit.load(str(conv))
    with torch.no_grad():
        for student in (copied, fitted):  # both start away from the teacher
            student.head.bias.add_(0.5)
    distilled = fine_tune(copied, demos, spec, epochs=40, lr=3e-3, teacher=teacher)
    fine_tune(fitted, demos, spec, epochs=40, lr=3e-3)
    with torch.no_grad():
        gap_teacher = float((copied(image, language)[:, :, 0] - before[:, :, 0]).abs().mean())
        gap_recorded = float((fitted(image, language)[:, :, 0] - 0.3).abs().mean())
    assert gap_teacher < 0.02 and gap_recorded < 0.02, (gap_teacher, gap_recorded)
    assert distilled["labels"] == "the teacher's chunk for the words seen"
