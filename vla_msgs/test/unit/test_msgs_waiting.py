"""wait_until: the first truthy value, a timeout on the injected clock, a wall limit when that clock stops."""

import time

import pytest

from vla_msgs.waiting import WaitTimeout, wait_until


class SteppingClock:
    """A clock that moves `step` seconds each time it is read (a simulator running fast)."""

    def __init__(self, step):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


def test_returns_the_conditions_first_truthy_value():
    values = iter([0, None, "", {"reached": True}])
    assert wait_until(lambda: next(values), 5.0, poll_s=0.0) == {"reached": True}


def test_timeout_is_measured_on_the_injected_clock():
    clock = SteppingClock(1.0)
    calls = []
    with pytest.raises(WaitTimeout, match="timed out after 5 s waiting for the red cube"):
        wait_until(lambda: calls.append(1), 5.0, "the red cube", clock=clock, poll_s=0.001)
    # Five seconds of this clock are a handful of polls; five wall seconds would be thousands.
    assert 2 <= len(calls) <= 6


def test_wait_timeout_is_an_assertion_error():
    assert issubclass(WaitTimeout, AssertionError)


def test_a_slow_clock_gives_more_wall_time():
    clock = SteppingClock(0.0005)  # half a millisecond of clock per read: slower than wall time
    values = iter(range(100))
    assert wait_until(lambda: next(values) >= 20, 1.0, clock=clock, poll_s=0.001)


def test_a_stopped_clock_is_bounded_by_the_wall_limit():
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"timed out after 0.2 s of wall time waiting for sim time "
                                          r"\(the clock advanced 0 s of its 5\)"):
        wait_until(lambda: False, 5.0, "sim time", clock=lambda: 42.0, poll_s=0.01, wall_limit_s=0.2)
    assert time.monotonic() - start >= 0.2


def test_a_true_condition_does_not_wait(monkeypatch):
    def no_sleep(_s):
        raise AssertionError("slept although the condition held")

    monkeypatch.setattr(time, "sleep", no_sleep)
    assert wait_until(lambda: 7, 0.0, poll_s=10.0) == 7
