"""The served policy: the edge's runtime (`load_policy`, its encoders and its finite/clamp stack) run on
a batch of observations in one forward pass: one embedding lookup per distinct prompt of the batch, the
finite/clamp stack once per batch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from vla_edge.cloud.protocol import Observation, RequestError
from vla_edge.encoders import ImagePreprocessor, TextEncoder, encoder_for
from vla_edge.policy import BasePolicy, NonFiniteActionError, PolicyLoadError, finite_and_clamped, load_policy
from vla_edge.spec import FORM_FEATURES
from vla_msgs.names import ACTION_DIM

LOG = logging.getLogger(__name__)


class _Computed:
    """One sample's chunk from the batched forward pass, fed through the edge's `finite_and_clamped`
    stack so the cloud answers exactly what the edge would publish."""

    def __init__(self, policy: BasePolicy):
        self.spec = policy.spec
        self.result: dict = {}

    def infer(self, obs: dict) -> dict:
        return self.result


class ServedPolicy:
    """A loaded policy with its text encoder and image preprocessing; `run_batch` is the batcher's work."""

    def __init__(self, policy: BasePolicy, encoder: TextEncoder | None):
        self.policy = policy
        self.spec = policy.spec
        self.encoder = encoder
        self.features = self.spec.form == FORM_FEATURES
        self._preprocess = None if self.features else ImagePreprocessor(self.spec)
        self._computed = _Computed(policy)
        self._guarded = finite_and_clamped(self._computed)

    @classmethod
    def load(cls, model_path: str | Path, device: str = "auto", warmup_runs: int = 3,
             cache_size: int = 1024) -> ServedPolicy:
        """Loads through the edge's `load_policy` (sidecar, sha256, signature, warm-up); PolicyLoadError."""
        policy = load_policy(model_path, device, warmup_runs)
        encoder = None
        if policy.spec.form != FORM_FEATURES:
            try:
                encoder = encoder_for(policy.spec, policy.device.type, cache_size)
            except ValueError as exc:
                raise PolicyLoadError(str(exc)) from exc
        return cls(policy, encoder)

    def metadata(self) -> dict:
        """What `/health` and the openpi metadata frame tell a client about the model."""
        spec = self.spec
        meta = {"model_name": spec.name, "model_version": spec.version, "sha256": spec.sha256,
                "form": spec.form, "chunk_length": spec.chunk_length, "action_dim": ACTION_DIM,
                "action_names": list(spec.action_names)}
        if not self.features:
            meta.update(image_shape=[3, *spec.image_size], language_encoder=spec.language_encoder)
        return meta

    def check(self, obs: Observation) -> None:
        """Refuses a request in the other form than the policy's (before it is queued)."""
        if obs.is_features != self.features:
            want = "vision_features + language_features" if self.features else "an image + an instruction"
            raise RequestError(f"this server's policy {self.spec.name} takes {want}", 422)

    def _inputs(self, observations: list[Observation]) -> tuple[np.ndarray, np.ndarray]:
        if self.features:
            return (np.stack([o.vision_features for o in observations]),
                    np.stack([o.language_features for o in observations]))
        # per frame in numpy on purpose: the same conversion in torch, one batch at once, lets go of the GIL at
        # each op and waits to get it back from the event loop: slower at 16 clients (docs/benchmarks.md)
        return np.stack([self._preprocess(o.rgb) for o in observations]), self._language(observations)

    def _language(self, observations: list[Observation]) -> np.ndarray:
        """One encoder lookup per distinct prompt of the batch (clients repeat their prompts)."""
        embeddings: dict[str, np.ndarray] = {}
        for o in observations:
            if o.instruction not in embeddings:
                embeddings[o.instruction] = self.encoder.encode(o.instruction)
        return np.stack([embeddings[o.instruction] for o in observations])

    def _forward(self, vision: np.ndarray, language: np.ndarray) -> np.ndarray:
        """One batched pass through the edge runtime's `forward_batch` (TorchScript or ONNX), [B, T, 6];
        a runtime without one (a test double) runs one pass per sample."""
        forward_batch = getattr(self.policy, "forward_batch", None)
        if forward_batch is not None:
            return forward_batch(vision, language)
        key = "vision_features" if self.features else "image"
        return np.stack([self.policy.infer({key: v, "language": lang})["actions"]
                         for v, lang in zip(vision, language, strict=True)])

    def run_batch(self, observations: list[Observation]) -> list[dict | Exception]:
        """One forward pass over the batch; per sample the clamped chunk, or the error that sample raised."""
        start = time.perf_counter()
        vision, language = self._inputs(observations)
        actions = self._forward(vision, language)
        forward_ms = (time.perf_counter() - start) * 1000.0
        # the whole batch through the stack at once (the clamp broadcasts over [B, T, 6]); only a batch
        # holding a non-finite chunk goes through it sample by sample, to fail just those samples
        self._computed.result = {"actions": actions, "inference_ms": forward_ms}
        try:
            chunks: list = list(np.ascontiguousarray(self._guarded.infer({})["actions"], dtype=np.float32))
        except NonFiniteActionError:
            chunks = []
            for chunk in actions:
                self._computed.result = {"actions": chunk, "inference_ms": forward_ms}
                try:
                    chunks.append(np.ascontiguousarray(self._guarded.infer({})["actions"], dtype=np.float32))
                except NonFiniteActionError as exc:
                    chunks.append(exc)
        return [chunk if isinstance(chunk, Exception) else
                {"actions": chunk, "inference_ms": forward_ms, "batch_size": len(observations)}
                for chunk in chunks]
