"""The shipped reference policy honours the model contract, and evaluation runs it as the robot does."""

import json

import numpy as np
import pytest
import torch

from vla_edge.policy import PolicyLoadError, load_policy
from vla_sim import resources
from vla_sim.evaluate import RobotPolicy
from vla_sim.policy import ACTION_LIMITS, CHUNK_LENGTH, LANGUAGE_DIM
from vla_sim.rollout import ROBOT_ID, make_world


def test_loads_with_jit_alone_and_outputs_a_bounded_chunk():
    module = torch.jit.load(str(resources.model_path()), map_location="cpu")
    image = torch.rand(3, 3, 96, 96)
    lang = torch.nn.functional.normalize(torch.randn(3, LANGUAGE_DIM), dim=-1)
    with torch.no_grad():
        out = module(image, lang)
    assert out.shape == (3, CHUNK_LENGTH, 6) and out.dtype == torch.float32
    assert (out.abs() <= torch.tensor(ACTION_LIMITS) + 1e-6).all()
    assert (out[..., 2:5] == 0).all()  # a planar base: no linear.z, angular.x, angular.y


def test_sidecar_passes_the_edge_runtime_checks():
    spec = load_policy(resources.model_path(), "cpu", warmup_runs=1).spec  # sha256, signature, warm-up
    assert spec.chunk_length == CHUNK_LENGTH and spec.language_dim == LANGUAGE_DIM
    assert spec.image_size == (96, 96)
    assert spec.action_high == ACTION_LIMITS
    sidecar = json.loads(resources.model_path().with_suffix(".json").read_text())
    for key in ("seen_phrasing", "unseen_paraphrases"):
        assert 0.0 <= sidecar["evaluation"][key]["success_rate"] <= 1.0


def test_evaluation_refuses_a_model_its_sidecar_does_not_describe(tmp_path):
    model = tmp_path / "policy.pt"
    model.write_bytes(resources.model_path().read_bytes() + b"\0")  # one byte more than the sidecar's sha256
    (tmp_path / "policy.json").write_text(resources.model_path().with_suffix(".json").read_text())
    with pytest.raises(PolicyLoadError, match="sha256 mismatch"):
        RobotPolicy(model)


def test_robot_policy_drives_from_a_world_frame():
    policy = RobotPolicy(resources.model_path())
    world = make_world(100_000, "red cube", "go to the red cube")
    chunk = policy.chunk(world.camera(ROBOT_ID), "go to the red cube")
    assert chunk.shape == (CHUNK_LENGTH, 6) and np.isfinite(chunk).all()
    assert (np.abs(chunk) <= np.array(ACTION_LIMITS) + 1e-6).all()
    policy.chunk(world.camera(ROBOT_ID), "go to the red cube")
    assert policy.encoder.misses == 1 and policy.encoder.hits == 1  # each instruction encoded once
