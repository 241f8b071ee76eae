import time

import numpy as np
import pytest
from vla_edge.config import build_config
from vla_edge.controller import ACTION, IDLE, NO_IMAGE, STALE, STOP, WAITING, Frame, InferenceController, Runtime
from vla_edge.encoders import CachedTextEncoder, EncodingError, HashedTextEncoder
from vla_edge.policy import load_policy
from vla_edge.tasks import parse_task_command


def _frame(stamp: float, value: int = 128) -> Frame:
    img = np.full((96, 96, 3), value, np.uint8)
    return Frame(stamp, time.monotonic(), lambda: img)


def _bad_frame(stamp: float) -> Frame:
    def decode():
        raise EncodingError("bad frame")

    return Frame(stamp, time.monotonic(), decode)


@pytest.fixture
def make_controller(make_policy):
    made = []

    def _make(kind="image", events=None, **params):
        policy = load_policy(make_policy(kind, chunk=4))
        encoder = CachedTextEncoder(HashedTextEncoder(policy.spec.language_dim))
        config = build_config({"model_path": "x", **params})
        sink = events if events is not None else []
        ctl = InferenceController(config, Runtime.build(policy, encoder), on_event=lambda k, m: sink.append((k, m)))
        made.append(ctl)
        return ctl

    yield _make
    for ctl in made:
        ctl.shutdown()


def test_idle_until_task_then_actions(make_controller):
    ctl = make_controller()
    ctl.submit_frame(_frame(100.0))
    assert ctl.step(100.01).outcome == IDLE
    ctl.set_task(parse_task_command("go to the red cube"))
    first = ctl.step(100.02)
    assert first.outcome == ACTION and first.action.index == 0 and first.waited_ms > 0
    assert first.action.chunk.image_stamp_s == 100.0
    ctl.finish_step(first, 0.1)
    time.sleep(0.12)  # the prefetched chunk (frame taken 30 ms before step 1) lands
    second = ctl.step(100.1)
    assert second.outcome == ACTION and second.waited_ms == 0.0
    assert second.action.index == 0 and second.action.chunk.start_step == 1
    assert ctl.counters.inference_count >= 2


def test_prefetch_without_lead_is_time_aligned(make_controller):
    ctl = make_controller(prefetch_lead=0.0)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    ctl.finish_step(ctl.step(100.01), 0.1)
    time.sleep(0.05)
    second = ctl.step(100.1)
    assert second.action.index == 1 and second.action.chunk.start_step == 0


def test_new_task_cancels_a_scheduled_request(make_controller):
    ctl = make_controller(prefetch_lead=0.03)
    ctl.submit_frame(_frame(1.0))
    ctl.set_task(parse_task_command("go to the red cube"))
    ctl.finish_step(ctl.step(1.01), 0.1)  # a request now waits ~70 ms for its frame
    ctl.set_task(parse_task_command("go to the blue ball"))
    start = time.monotonic()
    res = ctl.step(1.02)
    assert res.outcome == ACTION and res.task == "go to the blue ball"
    assert time.monotonic() - start < 0.06


def test_actions_are_clamped_to_limits(make_controller):
    ctl = make_controller()
    ctl.submit_frame(_frame(1.0, value=255))  # the test model drives at 0.1 + mean brightness = 1.1 m/s
    ctl.set_task(parse_task_command("go"))
    res = ctl.step(1.01)
    assert res.action.action[0] == pytest.approx(0.8) and res.action.raw_action[0] == pytest.approx(1.1)


def test_no_image_and_stale_frame_publish_nothing(make_controller):
    ctl = make_controller(max_image_age=0.2)
    ctl.set_task(parse_task_command("go"))
    assert ctl.step(5.0).outcome == NO_IMAGE
    ctl.submit_frame(_frame(5.0))
    assert ctl.step(5.5).outcome == STALE
    assert ctl.counters.stale_frames == 1 and ctl.counters.action_count == 0


def test_standby_stops_once_then_idles(make_controller):
    ctl = make_controller()
    ctl.submit_frame(_frame(1.0))
    ctl.set_task(parse_task_command("go"))
    assert ctl.step(1.01).outcome == ACTION
    assert ctl.set_task(parse_task_command("standby"))
    assert ctl.step(1.1).outcome == STOP
    assert ctl.step(1.2).outcome == IDLE


def test_new_task_resets_chunks(make_controller):
    ctl = make_controller()
    ctl.submit_frame(_frame(1.0))
    ctl.set_task(parse_task_command("go to the red cube"))
    a = ctl.step(1.01)
    assert ctl.set_task(parse_task_command("go to the blue ball"))
    assert not ctl.set_task(parse_task_command("go to the blue ball"))  # same task again: no reset
    b = ctl.step(1.02)
    assert b.outcome == ACTION and b.action.index == 0 and b.action.chunk is not a.action.chunk
    assert b.task == "go to the blue ball"


def test_nan_model_never_acts(make_controller):
    events = []
    ctl = make_controller("nan", events=events)
    ctl.submit_frame(_frame(1.0))
    ctl.set_task(parse_task_command("go"))
    outcomes = {ctl.step(1.0 + i * 0.01).outcome for i in range(5)}
    assert outcomes == {WAITING}
    assert ctl.counters.error_count >= 1 and ctl.counters.action_count == 0
    assert any(kind == "error" and "NaN" in msg for kind, msg in events)


def test_undecodable_frame_is_counted(make_controller):
    ctl = make_controller()
    ctl.set_task(parse_task_command("go"))
    ctl.submit_frame(_bad_frame(1.0))
    assert ctl.step(1.01).outcome == WAITING
    assert ctl.counters.dropped_frames == 1
    ctl.submit_frame(_frame(1.05))
    assert ctl.step(1.06).outcome == ACTION


def test_hot_swap_between_steps(make_controller, make_policy):
    events = []
    ctl = make_controller(events=events)
    ctl.submit_frame(_frame(1.0))
    ctl.set_task(parse_task_command("go"))
    assert ctl.step(1.01).action.chunk.model_version == "test-1"
    new = load_policy(make_policy("image", chunk=4, version="test-2"))
    ctl.stage(Runtime.build(new, ctl.runtime.encoder))
    assert ctl.runtime.spec.version == "test-1"  # staged, not yet in force
    res = ctl.step(1.02)
    assert ctl.runtime.spec.version == "test-2"
    assert res.outcome == ACTION and res.action.chunk.model_version == "test-2"
    assert any(kind == "model" for kind, _ in events)


def test_feature_form_runs_in_the_loop(make_controller):
    ctl = make_controller("features")
    ctl.submit_frame(_frame(1.0))
    ctl.set_task(parse_task_command("go"))
    res = ctl.step(1.01)
    assert res.outcome == ACTION and res.action.chunk.actions.shape == (1, 6)


def test_snapshot_fields(make_controller):
    ctl = make_controller()
    ctl.submit_frame(_frame(1.0))
    ctl.set_task(parse_task_command("go"))
    ctl.finish_step(ctl.step(1.01), 0.5)
    snap = ctl.snapshot()
    assert snap["action_count"] == 1 and snap["overhead_ms_p99"] == 0.5 and snap["current_task"] == "go"
