import itertools

import pytest

from vla_edge.schedule import StepScheduler


def _run(camera_hz: float, control_hz: float, seconds: float = 10.0) -> list[float]:
    sched = StepScheduler(control_hz)
    steps = []
    t = 0.0
    while t < seconds:
        if sched.on_frame(t):
            steps.append(t)
        t += 1.0 / camera_hz
    return steps


@pytest.mark.parametrize("camera_hz,control_hz", [(30.0, 10.0), (25.0, 10.0), (30.0, 20.0), (60.0, 10.0)])
def test_steps_on_frames_at_the_control_rate(camera_hz, control_hz):
    steps = _run(camera_hz, control_hz)
    assert len(steps) / 10.0 == pytest.approx(control_hz, rel=0.05)
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    assert max(gaps) <= 1.0 / control_hz + 1.0 / camera_hz + 1e-9


def test_timer_steps_when_frames_stop():
    sched = StepScheduler(10.0)
    assert sched.on_frame(0.0)
    assert not sched.on_timer(0.1)  # a frame may still come for the step due at 0.1
    assert sched.on_timer(0.16)
    assert not sched.on_timer(0.2)
    assert sched.on_timer(0.31)
