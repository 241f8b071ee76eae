"""Action chunks on the control clock, and the edge/cloud/hybrid seam."""

import numpy as np
import pytest

from vla_edge.chunking import ActionQueue, Chunk
from vla_edge.modes import ModeSwitch


def _chunk(start: int, value: float, t: int = 4, gen: int = 0) -> Chunk:
    actions = np.full((t, 6), value, np.float32)
    actions[:, 1] = np.arange(t)
    return Chunk(actions, actions, start, 0.0, "v", 1.0, gen)


def test_queue_time_alignment_and_expiry():
    q = ActionQueue()
    q.add(_chunk(10, 1.0))
    assert q.action_at(9) is None
    assert q.action_at(10).index == 0
    step = q.action_at(12)
    assert step.index == 2 and step.action[1] == 2
    assert q.remaining(12) == 1
    q.add(_chunk(12, 2.0))
    assert q.action_at(13).action[0] == 2.0 and q.action_at(13).index == 1
    assert q.action_at(16) is None and len(q) == 0


def test_temporal_ensembling_weights_older_more():
    q = ActionQueue(ensembling=True, decay=1.0)
    q.add(_chunk(0, 0.0))
    q.add(_chunk(1, 1.0))
    value = q.action_at(1).action[0]
    w = np.exp(-np.arange(2.0))
    assert value == pytest.approx(w[1] / w.sum())


def test_modes_seam():
    modes = ModeSwitch()
    assert modes.request("edge") == (True, "mode edge", "edge")
    ok, message, mode = modes.request("cloud")
    assert not ok and "~cloud_url" in message and mode == "edge"
    assert not modes.request("warp")[0]
    assert ModeSwitch(available=("edge", "cloud")).request("cloud")[0]
    with pytest.raises(ValueError):
        ModeSwitch(initial="hybrid")
