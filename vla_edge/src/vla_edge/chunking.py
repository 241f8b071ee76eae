"""Action chunks on the control clock: which step of which chunk runs now, with optional
temporal ensembling (ACT): every chunk that covers the current step votes, older ones weigh more."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    actions: np.ndarray        # [T, 6], within the action limits
    raw_actions: np.ndarray    # [T, 6], as the model gave them
    start_step: int            # control step the observation was taken at: actions[0] belongs to it
    image_stamp_s: float       # stamp of the source image
    model_version: str
    inference_ms: float
    generation: int            # task/model generation it was computed for
    preprocess_ms: float = 0.0 # frame decode + resize + normalise on the worker
    input_size: int = 0        # values the model took (image or vision features, plus language)
    source: str = "edge"       # where it was computed: edge or cloud (vla_edge.modes.SOURCE_*)

    @property
    def end_step(self) -> int:
        return self.start_step + self.actions.shape[0]


@dataclass(frozen=True)
class StepAction:
    action: np.ndarray         # [6], what to publish
    raw_action: np.ndarray     # [6], the newest chunk's unclamped value for this step
    index: int                 # index within the newest covering chunk
    chunk: Chunk               # the newest covering chunk


class ActionQueue:
    """Holds the last few chunks; bounded by max_chunks."""

    def __init__(self, ensembling: bool = False, decay: float = 0.1, max_chunks: int = 8):
        self.ensembling = ensembling
        self.decay = decay
        self._chunks: deque[Chunk] = deque(maxlen=max_chunks)

    def add(self, chunk: Chunk) -> None:
        self._chunks.append(chunk)

    def clear(self) -> None:
        self._chunks.clear()

    def __len__(self) -> int:
        return len(self._chunks)

    def remaining(self, step: int) -> int:
        """Steps the newest chunk still holds after `step`."""
        return max(0, self._chunks[-1].end_step - 1 - step) if self._chunks else 0

    def action_at(self, step: int) -> StepAction | None:
        while self._chunks and self._chunks[0].end_step <= step:
            self._chunks.popleft()
        covering = [c for c in self._chunks if c.start_step <= step < c.end_step]
        if not covering:
            return None
        newest = covering[-1]
        index = step - newest.start_step
        if self.ensembling and len(covering) > 1:
            weights = np.exp(-self.decay * np.arange(len(covering), dtype=np.float32))
            stacked = np.stack([c.actions[step - c.start_step] for c in covering])
            action = (weights[:, None] * stacked).sum(axis=0) / weights.sum()
        else:
            action = newest.actions[index]
        return StepAction(action=np.asarray(action, dtype=np.float32), raw_action=newest.raw_actions[index],
                          index=index, chunk=newest)
