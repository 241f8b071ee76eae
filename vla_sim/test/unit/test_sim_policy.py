"""The shipped reference policy honours the model contract: torch.jit.load alone, shapes, limits, sidecar."""

import hashlib
import json

import pytest
import torch
from vla_sim.policy import ACTION_LIMITS, CHUNK_LENGTH, LANGUAGE_DIM, MODEL_PATH, SIDECAR_PATH

pytestmark = pytest.mark.skipif(not MODEL_PATH.exists(), reason="no trained model in the checkout")


def test_loads_with_jit_alone_and_outputs_a_bounded_chunk():
    module = torch.jit.load(str(MODEL_PATH), map_location="cpu")
    image = torch.rand(3, 3, 96, 96)
    lang = torch.nn.functional.normalize(torch.randn(3, LANGUAGE_DIM), dim=-1)
    with torch.no_grad():
        out = module(image, lang)
    assert out.shape == (3, CHUNK_LENGTH, 6) and out.dtype == torch.float32
    limits = torch.tensor(ACTION_LIMITS)
    assert (out.abs() <= limits + 1e-6).all()
    assert (out[..., 2:5] == 0).all()  # a planar base: no linear.z, angular.x, angular.y


def test_sidecar_describes_the_file():
    sidecar = json.loads(SIDECAR_PATH.read_text())
    assert sidecar["sha256"] == hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    assert sidecar["framework"] == "torchscript"
    assert sidecar["chunk_length"] == CHUNK_LENGTH
    assert sidecar["action"]["names"] == ["linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z"]
    assert sidecar["input"]["language"]["dim"] == LANGUAGE_DIM
    assert sidecar["input"]["image"]["shape"] == [3, 96, 96]
    for key in ("seen_phrasing", "unseen_paraphrases"):
        assert 0.0 <= sidecar["evaluation"][key]["success_rate"] <= 1.0
