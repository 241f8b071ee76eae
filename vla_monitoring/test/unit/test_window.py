"""Sliding windows: percentiles as numpy computes them, samples leave by age and by count, rates in bounded memory."""

import math
import random

import numpy as np
import pytest

from vla_monitoring.window import RateCounter, SampleWindow, percentile


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_percentile_agrees_with_numpy(n):
    rng = random.Random(n)
    values = sorted(rng.uniform(0.0, 50.0) for _ in range(n))
    for q in (0, 1, 25, 50, 95, 99, 99.9, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-12)


def test_percentile_edges():
    assert math.isnan(percentile([], 50))
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 50) == 1.5
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_of_known_samples():
    w = SampleWindow(window_s=10.0, max_samples=1000)
    for i in range(1, 101):  # 1..100 ms, all inside the window
        w.add(i * 0.01, i / 1000.0)
    s = w.summary(1.0)
    assert s.count == 100
    assert s.mean == pytest.approx(0.0505)
    assert (s.min, s.max) == (0.001, 0.1)
    assert s.p50 == pytest.approx(0.0505)
    assert s.p95 == pytest.approx(float(np.percentile(np.arange(1, 101) / 1000.0, 95)))
    assert s.p99 == pytest.approx(0.09901)
    assert s.span_s == pytest.approx(0.99)


def test_empty_window_is_all_nan():
    s = SampleWindow(5.0, 10).summary(100.0)
    assert s.count == 0 and s.span_s == 0.0
    assert all(math.isnan(v) for v in (s.mean, s.min, s.max, s.p50, s.p95, s.p99))


def test_samples_leave_by_age():
    w = SampleWindow(window_s=2.0, max_samples=1000)
    w.add(0.0, 9.0)   # old and slow
    w.add(1.5, 1.0)
    w.add(2.5, 2.0)
    s = w.summary(3.0)  # 0.0 is older than 3.0 - 2.0
    assert s.count == 2 and s.max == 2.0 and s.min == 1.0
    assert w.summary(10.0).count == 0


def test_memory_is_bounded_by_max_samples():
    w = SampleWindow(window_s=1e9, max_samples=50)
    for i in range(10_000):
        w.add(float(i), float(i))
    assert len(w) == 50
    s = w.summary(10_000.0)
    assert s.count == 50 and s.min == 9950.0 and s.max == 9999.0
    assert s.span_s == pytest.approx(50.0)  # the newest 50 cover 50 s, not the whole window


def test_non_finite_samples_are_refused():
    w = SampleWindow(1.0, 10)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            w.add(0.0, bad)
    assert len(w) == 0


def test_rate_of_a_steady_stream():
    r = RateCounter(window_s=10.0)
    t = 0.0
    while t < 30.0:
        r.add(t)
        t += 0.01  # 100 Hz
    assert r.rate(30.0) == pytest.approx(100.0, rel=0.03)


def test_rate_before_a_whole_window_counts_from_the_first_event():
    r = RateCounter(window_s=10.0)
    for i in range(20):
        r.add(100.0 + i * 0.1)  # 10 Hz for 2 s, starting long after 0
    assert r.rate(102.0) == pytest.approx(10.0, rel=0.15)
    assert RateCounter(10.0).rate(5.0) == 0.0


def test_rate_falls_to_zero_when_events_stop_and_memory_stays_bounded():
    r = RateCounter(window_s=2.0, buckets=20)
    for i in range(100_000):
        r.add(i * 0.001)  # 1 kHz for 100 s
    assert r.rate(100.0) == pytest.approx(1000.0, rel=0.06)
    assert len(r._counts) <= 21
    assert r.rate(102.5) == 0.0


def test_window_arguments_are_checked():
    with pytest.raises(ValueError):
        SampleWindow(0.0, 10)
    with pytest.raises(ValueError):
        SampleWindow(1.0, 0)
    with pytest.raises(ValueError):
        RateCounter(0.0)
