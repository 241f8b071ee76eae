import math

import numpy as np
import pytest

from vla_safety.config import SafetyConfig
from vla_safety.limits import AccelerationLimiter, CommandRejectedError, check_command, clamp_axes
from vla_safety.watchdog import StaleDataError, data_time

CFG = SafetyConfig()
LIMITS = np.array(CFG.axis_limits)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_is_rejected_naming_the_axis(bad):
    with pytest.raises(CommandRejectedError, match=r"non-finite.*angular\.z"):
        check_command(np.array([0.1, 0, 0, 0, 0, bad]), 2.0, 2.0)


def test_magnitude_over_limit_is_refused_even_though_each_axis_would_clamp():
    with pytest.raises(CommandRejectedError, match=r"linear magnitude 2\.50"):
        check_command(np.array([1.5, 2.0, 0, 0, 0, 0]), 2.0, 2.0)
    with pytest.raises(CommandRejectedError, match="angular magnitude"):
        check_command(np.array([0, 0, 0, 0, 0, -2.1]), 2.0, 2.0)
    assert check_command(np.array([1.9, 0, 0, 0, 0, 1.9]), 2.0, 2.0)[0] == 1.9


def test_wrong_shape_is_rejected():
    with pytest.raises(CommandRejectedError):
        check_command(np.zeros(3), 2.0, 2.0)


def test_default_clamps_per_axis():
    out, clamped = clamp_axes(np.array([1.5, -0.7, 0.6, -0.6, 0.6, 1.2]), LIMITS)
    np.testing.assert_allclose(out, [1.0, -0.5, 0.5, -0.5, 0.5, 1.0])
    assert clamped == ["linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z"]
    out, clamped = clamp_axes(np.array([0.3, 0, 0, 0, 0, -0.2]), LIMITS)
    assert clamped == [] and out[0] == 0.3


def test_acceleration_is_limited_but_braking_is_immediate():
    lim = AccelerationLimiter(2.0, 4.0)
    target = np.array([1.0, 0, 0, 0, 0, 1.0])
    out = lim.step(target, 0.05)
    np.testing.assert_allclose(out[[0, 5]], [0.1, 0.2])
    for _ in range(30):
        out = lim.step(target, 0.05)
    np.testing.assert_allclose(out, target)
    out = lim.step(np.array([0.2, 0, 0, 0, 0, 0]), 0.05)
    np.testing.assert_allclose(out[[0, 5]], [0.2, 0.0])


def test_sign_reversal_brakes_to_zero_then_accelerates():
    lim = AccelerationLimiter(2.0, 4.0)
    lim.last = np.array([0.8, 0, 0, 0, 0, 0])
    out = lim.step(np.array([-0.8, 0, 0, 0, 0, 0]), 0.05)
    assert out[0] == pytest.approx(-0.1)


def test_data_time_is_the_stamp_and_refuses_stale_or_future_stamps():
    assert data_time(0.0, 50.0, 0.5) == 50.0  # unstamped: counts from receipt
    assert data_time(49.8, 50.0, 0.5) == 49.8
    assert data_time(50.2, 50.0, 0.5) == 50.0  # a small clock offset counts as now
    with pytest.raises(StaleDataError, match=r"stamp is 0.60 s old"):
        data_time(49.4, 50.0, 0.5)
    with pytest.raises(StaleDataError, match="ahead"):
        data_time(60.0, 50.0, 0.5)
