import numpy as np
import pytest
from vla_edge.chunking import ActionQueue, Chunk
from vla_edge.modes import ModeSwitch
from vla_edge.tasks import TaskRejectedError, parse_task_command


@pytest.mark.parametrize("data,desc,task_id,idle", [
    ("go to the red cube", "go to the red cube", "", False),
    ('{"description": "go to the blue ball", "id": 7}', "go to the blue ball", "7", False),
    ("  STANDBY ", "", "", True),
    ("stop", "", "", True),
    ('{"description": "stop", "id": "t1"}', "", "t1", True),
    ("geh zum roten Würfel", "geh zum roten Würfel", "", False),
])
def test_task_parsing(data, desc, task_id, idle):
    cmd = parse_task_command(data)
    assert (cmd.description, cmd.task_id, cmd.idle) == (desc, task_id, idle)


@pytest.mark.parametrize("data", [
    "x" * 300, b"go to the \xff cube", "go \udcff", "", "   ", "{not json", '{"id": 3}', "a\x00b",
    '{"description": "x", "id": [1]}',
])
def test_task_refused(data):
    with pytest.raises(TaskRejectedError):
        parse_task_command(data, max_length=256)


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
    assert not ok and "cloud inference client" in message and mode == "edge"
    assert not modes.request("warp")[0]
    assert ModeSwitch(available=("edge", "cloud")).request("cloud")[0]
    with pytest.raises(ValueError):
        ModeSwitch(initial="hybrid")


def test_performance_json_has_seed_fields():
    import json

    from vla_edge.wire import performance_json

    snap = {k: 0.0 for k in ("fps", "inference_ms_mean", "inference_ms_p50", "inference_ms_p99", "overhead_ms_p50",
                             "overhead_ms_p99", "preprocess_ms_p50", "preprocess_ms_p99", "image_age_ms_p50",
                             "image_age_ms_p99", "last_action_time")}
    snap.update(current_task="go", model_version="1", action_count=3, stale_frames=0, starved_steps=0)
    doc = json.loads(performance_json(snap, 1, 0, 0, "edge", now_s=5.0))
    for field in ("timestamp", "image_queue_size", "lidar_queue_size", "task_queue_size", "current_task",
                  "last_action_time", "fps", "avg_inference_time_ms", "inference_ms_p50", "inference_ms_p99"):
        assert field in doc
    assert doc["timestamp"] == 5.0 and doc["current_task"] == "go"
