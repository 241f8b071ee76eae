"""PolledClock waits on the clock it is given (ROS time in the node), bounded in wall time."""

import threading

from vla_edge.clock import PolledClock


class _SteppedTime:
    """A clock that moves `step_s` each time it is read: deterministic, whatever the machine's load."""

    def __init__(self, step_s: float):
        self.t = 0.0
        self.step_s = step_s
        self.reads = 0

    def __call__(self) -> float:
        self.t += self.step_s
        self.reads += 1
        return self.t


def test_times_out_on_its_clock():
    now = _SteppedTime(0.01)
    assert PolledClock(now, poll_s=0.0001).wait(threading.Event(), 0.1) is False
    assert 0.1 <= now.t <= 0.13  # ended as the clock passed the deadline, not after some wall time


def test_a_set_event_ends_the_wait():
    event = threading.Event()
    event.set()
    assert PolledClock(_SteppedTime(0.0)).wait(event, 5.0) is True
    assert PolledClock(_SteppedTime(0.0)).wait(event, 0.0) is True


def test_a_stopped_clock_is_bounded_in_wall_time():
    now = _SteppedTime(0.0)  # a dead simulator: time never moves
    assert PolledClock(now, poll_s=0.001, wall_factor=1.0, min_wall_s=0.05).wait(threading.Event(), 0.01) is False
    assert now.reads > 1


def test_on_wall_time_one_wait_reaches_the_deadline():
    now = _SteppedTime(0.0)
    waits = []

    class _Event(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            now.t += timeout  # the wall time that passed is the clock's time
            return False

    assert PolledClock(now, wall_time=True).wait(_Event(), 0.07) is False
    assert len(waits) == 1 and abs(waits[0] - 0.07) < 1e-9
