"""The config idiom's nested mappings (`~world/room_size_m`) and list length caps."""

from dataclasses import dataclass

import pytest

from vla_monitoring.config import ConfigError, build_config, defaults, param, yaml_mismatches


@dataclass
class Inner:
    size_m: float = param(8.0, lo=4.0, hi=50.0)
    rings: list = param([0.0, 5.0], items=float, lo=-60.0, hi=60.0, min_length=1, max_length=3)


@dataclass
class Outer:
    rate_hz: float = param(10.0, lo=1.0, hi=100.0)
    inner: Inner = param(Inner())


def test_nested_defaults_and_values():
    assert build_config(Outer, {}) == Outer()
    cfg = build_config(Outer, {"inner": {"size_m": 10}})
    assert cfg.inner.size_m == 10.0 and isinstance(cfg.inner.size_m, float)
    assert cfg.inner.rings == [0.0, 5.0]
    assert Outer().inner is not Outer().inner  # each instance its own copy
    assert defaults(Outer) == {"rate_hz": 10.0, "inner": {"size_m": 8.0, "rings": [0.0, 5.0]}}


@pytest.mark.parametrize(("values", "text"), [
    ({"inner": {"size_m": 3.0}}, "~inner/size_m must be in [4, 50]"),
    ({"inner": {"warp": 1}}, "~inner/warp"),
    ({"inner": 5}, "~inner must be a mapping"),
    ({"inner": {"rings": [1.0, 2.0, 3.0, 4.0]}}, "~inner/rings must hold at most 3 items"),
    ({"inner": {"rings": []}}, "~inner/rings must hold at least 1 items"),
    ({"inner": {"rings": [90.0]}}, "~inner/rings[0] must be in [-60, 60]"),
])
def test_nested_errors_name_the_full_path(values, text):
    with pytest.raises(ConfigError) as info:
        build_config(Outer, values)
    assert text in str(info.value)


def test_yaml_mismatches_recurse():
    assert yaml_mismatches(Outer, {"rate_hz": 10.0, "inner": {"size_m": 8.0, "rings": [0.0, 5.0]}}) == []
    found = yaml_mismatches(Outer, {"rate_hz": 10.0, "inner": {"size_m": 9.0, "extra": 1}})
    assert sorted(found) == ["inner/extra: in the yaml but not a parameter",
                             "inner/rings: missing from the yaml (default [0.0, 5.0])",
                             "inner/size_m: yaml says 9.0, the default is 8.0"]
