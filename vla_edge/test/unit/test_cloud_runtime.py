"""The served policy's batch path without a server: the finite/clamp stack runs once on the whole batch,
yet a batch holding one non-finite chunk fails that sample alone. A real TorchScript test policy; the
non-finite chunk is injected by a wrapper (a real model cannot be made to fail on one sample only)."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from vla_edge.cloud.protocol import Observation
from vla_edge.cloud.runtime import ServedPolicy
from vla_edge.encoders import ImagePreprocessor
from vla_edge.policy import NonFiniteActionError, load_policy
from vla_edge.testing import write_policy


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(write_policy("image", tmp_path_factory.mktemp("model"), chunk=8), "cpu", 1)


def frames(sizes: list[tuple[int, int]]) -> list[Observation]:
    rng = np.random.default_rng(5)
    return [Observation(rgb=(rng.random((h, w, 3)) * 255).astype(np.uint8), instruction="go")
            for h, w in sizes]


class OneSampleNaN:
    """The real policy, with sample `bad` of each batch made NaN."""

    def __init__(self, policy, bad: int):
        self.spec, self.device, self.policy, self.bad = policy.spec, policy.device, policy, bad

    def forward_batch(self, vision: np.ndarray, language: np.ndarray) -> np.ndarray:
        out = self.policy.forward_batch(vision, language).copy()
        out[self.bad, 0, 0] = np.nan
        return out


def test_a_non_finite_sample_fails_alone_and_the_rest_is_clamped(policy):
    spec = dataclasses.replace(policy.spec, action_low=[-0.01] * 6, action_high=[0.01] * 6)
    wrapped = OneSampleNaN(policy, bad=1)
    wrapped.spec = spec
    language = np.ones(spec.language_dim, dtype=np.float32) / np.sqrt(spec.language_dim)
    served = ServedPolicy(wrapped, types.SimpleNamespace(encode=lambda text: language))
    results = served.run_batch(frames([spec.image_size] * 3))
    assert isinstance(results[1], NonFiniteActionError)
    for result in (results[0], results[2]):
        assert result["actions"].shape == (spec.chunk_length, 6) and result["batch_size"] == 3
        assert np.all(np.abs(result["actions"]) <= 0.01)
    image = ImagePreprocessor(spec)(frames([spec.image_size])[0].rgb)
    unclamped = policy.forward_batch(image[None], language[None])
    assert not np.all(np.abs(unclamped) <= 0.01), "the limits clamp nothing: the test would prove nothing"
