"""BadInputCounter: every rejection counted per source, each source's log throttled on the injected clock."""

import logging

from vla_monitoring.bad_input import BadInputCounter


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_counts_per_source_and_total():
    bad = BadInputCounter(clock=FakeClock())
    assert bad.total == 0 and bad.counts == {}
    bad.reject("task_command", "too long")
    bad.reject("task_command", "not UTF-8")
    bad.reject("scan", "NaN ranges")
    assert bad.counts == {"task_command": 2, "scan": 1} and bad.total == 3
    assert bad.last_reason == {"task_command": "not UTF-8", "scan": "NaN ranges"}


def test_logs_each_source_at_most_once_per_period(caplog):
    clock = FakeClock()
    logger = logging.getLogger("test_bad_input")
    bad = BadInputCounter(period_s=5.0, clock=clock, logger=logger)
    with caplog.at_level(logging.WARNING, logger="test_bad_input"):
        bad.reject("a", "first")
        bad.reject("a", "second")      # same source within the period: counted, not logged
        bad.reject("b", "other")       # another source logs on its own schedule
        clock.t += 4.9
        bad.reject("a", "third")
        clock.t += 0.1
        bad.reject("a", "fourth")      # the period is over
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["dropped bad input on a (1 so far): first",
                        "dropped bad input on b (1 so far): other",
                        "dropped bad input on a (4 so far): fourth"]
    assert bad.counts["a"] == 4
