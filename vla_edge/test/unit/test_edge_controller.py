"""The control loop on a clock the test moves: no sleeps, no wall-time asserts."""

import math
import threading

import numpy as np
import pytest

from vla_edge.config import InferenceConfig
from vla_edge.controller import (
    ErrorType,
    Frame,
    InferenceController,
    Runtime,
    StepOutcome,
    UnstampedFrameError,
)
from vla_edge.encoders import CachedTextEncoder, EncodingError, HashedTextEncoder
from vla_edge.policy import load_policy
from vla_monitoring.config import build_config
from vla_msgs.tasks import parse_task_command
from vla_msgs.waiting import wait_until


def _frame(stamp: float, value: int = 128, arrival: float | None = None) -> Frame:
    img = np.full((96, 96, 3), value, np.uint8)
    return Frame(stamp, stamp if arrival is None else arrival, lambda: img)


def _bad_frame(stamp: float) -> Frame:
    def decode():
        raise EncodingError("bad frame")

    return Frame(stamp, stamp, decode)


class _HeldPolicy:
    """Wraps a policy so that each forward pass waits until the test releases it: a model too slow for its step."""

    def __init__(self, policy):
        self.policy = policy
        self.spec = policy.spec
        self.release = threading.Event()

    def infer(self, obs):
        assert self.release.wait(10.0), "the test never released the held forward pass"
        return self.policy.infer(obs)


@pytest.fixture
def make_controller(make_policy, clock):
    made = []

    def _make(kind="image", errors=None, inferences=None, wrap=None, **params):
        policy = load_policy(make_policy(kind, chunk=4))
        if wrap is not None:
            policy = wrap(policy)
        encoder = CachedTextEncoder(HashedTextEncoder(policy.spec.language_dim))
        config = build_config(InferenceConfig, {"model_path": "x", **params})
        ctl = InferenceController(
            config, Runtime.build(policy, encoder), clock=clock,
            on_error=lambda t, m, c: (errors if errors is not None else []).append((t, m, c)),
            on_inference=lambda r: (inferences if inferences is not None else []).append(r))
        made.append(ctl)
        return ctl

    yield _make
    for ctl in made:
        ctl.shutdown()


def _step_at(ctl, clock, t):
    clock.set(t)
    return ctl.step()


def _worker_idle(ctl):
    wait_until(lambda: not ctl.worker_busy, 10.0, "the worker to finish its chunk")


def test_idle_until_task_then_actions(make_controller, clock):
    inferences = []
    ctl = make_controller(inferences=inferences)
    ctl.submit_frame(_frame(100.0))
    assert _step_at(ctl, clock, 100.01).outcome is StepOutcome.IDLE
    ctl.set_task(parse_task_command("go to the red cube"))
    first = _step_at(ctl, clock, 100.02)  # waits for the first chunk (the worker sets the event)
    assert first.outcome is StepOutcome.ACTION and first.action.index == 0
    assert first.action.chunk.image_stamp_s == 100.0
    assert clock.now() == 100.02, "the first step waited on the worker, not on the clock"
    ctl.finish_step(first, 0.1)
    # the prefetch waits on the clock until 30 ms before step 1 (100.09), then runs on the newest frame
    ctl.submit_frame(_frame(100.085))
    clock.set(100.1)
    _worker_idle(ctl)
    second = ctl.step()
    assert second.outcome is StepOutcome.ACTION and second.waited_ms == 0.0
    assert second.action.index == 0 and second.action.chunk.start_step == 1
    assert second.action.chunk.image_stamp_s == 100.085
    assert ctl.counters.inference_count == 2
    assert [r.sequence_number for r in inferences] == [1, 2]
    assert inferences[0].input_size == 3 * 96 * 96 + 32  # the test policy's image and 32-d hashed language
    assert np.allclose(inferences[1].output_action, second.action.chunk.actions[0])


def test_prefetch_waits_on_the_clock(make_controller, clock):
    ctl = make_controller()
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    ctl.finish_step(_step_at(ctl, clock, 100.01), 0.1)
    clock.set(100.05)  # before the prefetch's time (100.08): the worker must still be waiting
    assert ctl.worker_busy and ctl.counters.inference_count == 1
    clock.set(100.08)
    _worker_idle(ctl)
    assert ctl.counters.inference_count == 2


def test_prefetch_without_lead_is_time_aligned(make_controller, clock):
    ctl = make_controller(prefetch_lead=0.0)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    ctl.finish_step(_step_at(ctl, clock, 100.01), 0.1)
    _worker_idle(ctl)  # no lead: the request runs at once, without the clock moving
    second = _step_at(ctl, clock, 100.1)
    assert second.action.index == 1 and second.action.chunk.start_step == 0


def test_new_task_cancels_a_scheduled_request(make_controller, clock):
    clock.wall_limit_s = 3.0
    ctl = make_controller(prefetch_lead=0.03)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go to the red cube"))
    ctl.finish_step(_step_at(ctl, clock, 100.01), 0.1)  # a request now waits on the clock until 100.08
    ctl.set_task(parse_task_command("go to the blue ball"))
    res = _step_at(ctl, clock, 100.02)
    # had the scheduled request not been cancelled, this step would wait for it on a clock nobody moves
    assert res.outcome is StepOutcome.ACTION and res.task == "go to the blue ball"
    assert res.action.chunk.start_step == res.step


def test_starved_step_waits_no_longer_than_the_timeout(make_controller, clock):
    held = {}

    def wrap(policy):
        held["policy"] = _HeldPolicy(policy)
        return held["policy"]

    ctl = make_controller(wrap=wrap, inference_timeout=0.05)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    result = {}
    stepper = threading.Thread(target=lambda: result.setdefault("r", _step_at(ctl, clock, 100.01)))
    stepper.start()
    wait_until(lambda: clock.waiting > 0, 10.0, "the step to wait for its chunk")
    clock.advance(0.05)  # the step's whole budget passes on the loop's clock
    stepper.join(10.0)
    assert result["r"].outcome is StepOutcome.WAITING and ctl.counters.starved_steps == 1
    held["policy"].release.set()
    _worker_idle(ctl)
    assert _step_at(ctl, clock, 100.1).outcome is StepOutcome.ACTION


def test_actions_are_clamped_to_limits(make_controller, clock):
    ctl = make_controller()
    ctl.submit_frame(_frame(100.0, value=255))  # the test model drives at 0.1 + mean brightness = 1.1 m/s
    ctl.set_task(parse_task_command("go"))
    res = _step_at(ctl, clock, 100.01)
    assert res.action.action[0] == pytest.approx(0.8) and res.action.raw_action[0] == pytest.approx(1.1)


def test_no_image_and_stale_frame_publish_nothing(make_controller, clock):
    ctl = make_controller(max_image_age=0.2)
    ctl.set_task(parse_task_command("go"))
    assert _step_at(ctl, clock, 105.0).outcome is StepOutcome.NO_IMAGE
    ctl.submit_frame(_frame(105.0))
    assert _step_at(ctl, clock, 105.5).outcome is StepOutcome.STALE
    assert ctl.counters.stale_frames == 1 and ctl.counters.action_count == 0


def test_a_frame_stamped_in_the_future_is_not_acted_on(make_controller, clock):
    ctl = make_controller(max_image_age=0.2)
    ctl.set_task(parse_task_command("go"))
    ctl.submit_frame(_frame(101.0, arrival=100.0))  # the camera's clock is a second ahead of ours
    assert _step_at(ctl, clock, 100.01).outcome is StepOutcome.STALE


def test_unstamped_frames_are_refused_by_default(make_controller, clock):
    ctl = make_controller()
    ctl.set_task(parse_task_command("go"))
    with pytest.raises(UnstampedFrameError, match="allow_unstamped_images"):
        ctl.submit_frame(_frame(0.0, arrival=100.0))
    assert _step_at(ctl, clock, 100.01).outcome is StepOutcome.NO_IMAGE


def test_unstamped_frames_age_from_arrival_when_allowed(make_controller, clock):
    ctl = make_controller(allow_unstamped_images=True, max_image_age=0.2)
    ctl.set_task(parse_task_command("go"))
    ctl.submit_frame(_frame(0.0, arrival=100.0))
    first = _step_at(ctl, clock, 100.05)
    assert first.outcome is StepOutcome.ACTION and first.action.chunk.image_stamp_s == 100.0
    assert first.image_age_ms == pytest.approx(50.0)
    assert _step_at(ctl, clock, 100.3).outcome is StepOutcome.STALE  # arrival + 0.3 s: too old all the same


@pytest.mark.parametrize("word", ["standby", "halt", "Stop.", "IDLE"])
def test_idle_words_stop_once_then_idle(make_controller, clock, word):
    ctl = make_controller()
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    assert _step_at(ctl, clock, 100.01).outcome is StepOutcome.ACTION
    assert ctl.set_task(parse_task_command(word))
    assert _step_at(ctl, clock, 100.1).outcome is StepOutcome.STOP
    assert _step_at(ctl, clock, 100.2).outcome is StepOutcome.IDLE


def test_new_task_resets_chunks(make_controller, clock):
    ctl = make_controller()
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go to the red cube"))
    a = _step_at(ctl, clock, 100.01)
    assert ctl.set_task(parse_task_command("go to the blue ball"))
    assert not ctl.set_task(parse_task_command("go  to the blue ball"))  # the same task again: no reset
    b = _step_at(ctl, clock, 100.02)
    assert b.outcome is StepOutcome.ACTION and b.action.index == 0 and b.action.chunk is not a.action.chunk
    assert b.task == "go to the blue ball"


def test_nan_model_never_acts(make_controller, clock):
    errors = []
    ctl = make_controller("nan", errors=errors)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    outcomes = {_step_at(ctl, clock, 100.0 + i * 0.01).outcome for i in range(5)}
    assert outcomes == {StepOutcome.WAITING}
    assert ctl.counters.error_count == 5 and ctl.counters.inference_count == 5 and ctl.counters.action_count == 0
    assert all(t is ErrorType.NON_FINITE_OUTPUT and "NaN" in m for t, m, _ in errors) and len(errors) == 5


def test_undecodable_frame_is_counted(make_controller, clock):
    errors = []
    ctl = make_controller(errors=errors)
    ctl.set_task(parse_task_command("go"))
    ctl.submit_frame(_bad_frame(100.0))
    assert _step_at(ctl, clock, 100.01).outcome is StepOutcome.WAITING
    assert ctl.counters.dropped_frames == 1 and errors[0][0] is ErrorType.BAD_FRAME
    ctl.submit_frame(_frame(100.05))
    assert _step_at(ctl, clock, 100.06).outcome is StepOutcome.ACTION


def test_hot_swap_between_steps(make_controller, make_policy, clock, caplog):
    ctl = make_controller()
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    assert _step_at(ctl, clock, 100.01).action.chunk.model_version == "test-1"
    new = load_policy(make_policy("image", chunk=4, version="test-2"))
    ctl.stage(Runtime.build(new, ctl.runtime.encoder))
    assert ctl.runtime.spec.version == "test-1"  # staged, not yet in force
    with caplog.at_level("INFO", logger="vla_edge"):
        res = _step_at(ctl, clock, 100.02)
    assert ctl.runtime.spec.version == "test-2"
    assert res.outcome is StepOutcome.ACTION and res.action.chunk.model_version == "test-2"
    assert ctl.counters.starved_steps == 0
    assert any("switched to policy test-image test-2" in r.getMessage() for r in caplog.records)


def test_feature_form_runs_in_the_loop(make_controller, clock):
    ctl = make_controller("features")
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    res = _step_at(ctl, clock, 100.01)
    assert res.outcome is StepOutcome.ACTION and res.action.chunk.actions.shape == (1, 6)


def test_snapshot_before_anything_is_unknown_not_zero(make_controller):
    snap = make_controller().snapshot()
    assert math.isnan(snap.image_age_ms) and math.isnan(snap.inference_ms_p50) and math.isnan(snap.last_action_time)
    assert (snap.image_queue_size, snap.lidar_queue_size, snap.task_queue_size) == (0, 0, 0)


def test_snapshot_and_queue_sizes(make_controller, clock):
    ctl = make_controller(prefetch_lead=0.0)
    ctl.submit_frame(_frame(100.0))
    ctl.set_task(parse_task_command("go"))
    snap = ctl.snapshot()
    assert (snap.image_queue_size, snap.task_queue_size) == (1, 1)  # a frame and a task waiting to be served
    result = _step_at(ctl, clock, 100.01)
    ctl.finish_step(result, 0.5)
    _worker_idle(ctl)
    snap = ctl.snapshot()
    assert snap.counters.action_count == 1 and snap.overhead_ms_p99 == 0.5 and snap.current_task == "go"
    assert (snap.image_queue_size, snap.task_queue_size) == (0, 0)  # the frame went into a chunk; the task acted
    assert snap.image_age_ms == pytest.approx(10.0) and snap.last_action_time == 100.01
    ctl.submit_frame(_frame(100.05))
    assert ctl.snapshot().image_queue_size == 1
