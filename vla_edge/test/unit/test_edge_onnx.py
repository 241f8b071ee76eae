"""ONNX policies through vla_edge's runtime: chosen by the sidecar's format or the .onnx suffix,
checked like TorchScript (sha256, input names, chunk shape), guarded by the same wrappers."""

import json

import numpy as np
import pytest

from vla_edge.optimize.export import export_onnx
from vla_edge.policy import OnnxPolicy, PolicyLoadError, example_obs, finite_and_clamped, load_policy
from vla_edge.spec import sha256_file


@pytest.fixture
def onnx_model(make_policy, tmp_path):
    out = tmp_path / "conv.onnx"
    export_onnx(make_policy("conv", chunk=4), out)
    return out


def _resign(path, **changes):
    side = path.with_suffix(".json")
    doc = json.loads(side.read_text())
    doc.update(changes)
    doc["sha256"] = sha256_file(path)
    side.write_text(json.dumps(doc))


def test_onnx_policy_runs_under_the_guards(onnx_model):
    policy = load_policy(onnx_model, "auto")
    assert isinstance(policy, OnnxPolicy) and "CPUExecutionProvider" in policy.providers
    out = finite_and_clamped(policy).infer(example_obs(policy.spec))
    assert out["actions"].shape == (4, 6) and np.all(out["actions"][:, 2:5] == 0.0)  # z, roll, pitch limits 0
    batch = policy.forward_batch(np.zeros((3, 3, 96, 96), np.float32), np.zeros((3, 32), np.float32))
    assert batch.shape == (3, 4, 6)


def test_format_that_disagrees_with_the_suffix_is_refused(onnx_model):
    _resign(onnx_model, format="torchscript")
    with pytest.raises(PolicyLoadError, match="format says torchscript"):
        load_policy(onnx_model)


def test_corrupt_onnx_is_refused_with_one_line(onnx_model):
    onnx_model.write_bytes(b"\x08\x07 not a graph" * 50)
    _resign(onnx_model)
    with pytest.raises(PolicyLoadError, match="not a loadable ONNX model") as info:
        load_policy(onnx_model)
    assert "\n" not in str(info.value)


def test_graph_inputs_must_carry_the_contract_names(onnx_model):
    import onnx

    model = onnx.load(str(onnx_model))
    model.graph.input[0].name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if i == "image" else i for i in node.input]
    onnx.save(model, str(onnx_model))
    _resign(onnx_model)
    with pytest.raises(PolicyLoadError, match=r"graph inputs \['pixels', 'language'\]"):
        load_policy(onnx_model)


def test_onnx_sha_mismatch_is_refused(onnx_model):
    onnx_model.write_bytes(onnx_model.read_bytes() + b"\0")
    with pytest.raises(PolicyLoadError, match="sha256 mismatch"):
        load_policy(onnx_model)
