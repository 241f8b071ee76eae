"""The config idiom: every field checked against its range, errors that name `~param`, yaml mirroring."""

from dataclasses import dataclass

import pytest

from vla_monitoring.config import CONFIG_EXIT_CODE, ConfigError, build_config, defaults, param, yaml_mismatches


@dataclass
class Cfg:
    robot_id: str = param("robot_1", nonempty=True)
    rate_hz: float = param(10.0, lo=1.0, hi=100.0)
    steps: int = param(30, lo=2, hi=200)
    gain: float = param(0.5, lo=0.0)
    cap: float = param(5.0, hi=10.0)
    free: float = param(1.0)
    enabled: bool = param(True)
    mode: str = param("edge", choices=("edge", "cloud", "hybrid"))
    pose: list[float] = param([0.0, 0.0, 0.0], items=float, length=3, lo=-10.0, hi=10.0)
    names: list[str] = param(["scan"], items=str, nonempty=True, min_length=1, choices=("scan", "odom"))
    lo_s: float = param(0.1, lo=0.0, hi=10.0)
    hi_s: float = param(1.0, lo=0.0, hi=10.0)

    def check(self) -> None:
        if self.lo_s > self.hi_s:
            raise ConfigError(f"~lo_s ({self.lo_s}) must not exceed ~hi_s ({self.hi_s})")


def test_defaults_build_and_lists_are_fresh_per_instance():
    assert build_config(Cfg, {}) == Cfg()
    a, b = Cfg(), Cfg()
    a.pose.append(1.0)
    assert b.pose == [0.0, 0.0, 0.0]
    assert defaults(Cfg)["pose"] == [0.0, 0.0, 0.0] and defaults(Cfg)["mode"] == "edge"
    assert CONFIG_EXIT_CODE == 2


def test_ints_are_taken_for_floats_and_whole_floats_for_ints():
    cfg = build_config(Cfg, {"rate_hz": 20, "pose": [1, 2, 3], "steps": 40.0})
    assert cfg.rate_hz == 20.0 and isinstance(cfg.rate_hz, float)
    assert cfg.pose == [1.0, 2.0, 3.0] and all(isinstance(v, float) for v in cfg.pose)
    assert cfg.steps == 40 and isinstance(cfg.steps, int)
    assert build_config(Cfg, {"pose": (1, 2, 3)}).pose == [1.0, 2.0, 3.0]  # a tuple is a list


@pytest.mark.parametrize("name,value,says", [
    ("rate_hz", 0.5, r"~rate_hz must be in \[1, 100\], got 0.5"),
    ("rate_hz", 101, r"~rate_hz must be in \[1, 100\]"),
    ("rate_hz", float("nan"), "~rate_hz must be in"),
    ("rate_hz", float("inf"), "~rate_hz must be in"),
    ("rate_hz", "10", r"~rate_hz must be a number in \[1, 100\], got '10'"),
    ("rate_hz", True, "~rate_hz must be a number"),
    ("gain", -0.1, "~gain must be >= 0"),
    ("cap", 11.0, "~cap must be <= 10"),
    ("free", float("nan"), "~free must be finite"),
    ("steps", 2.5, r"~steps must be an integer in \[2, 200\], got 2.5"),
    ("steps", 1, r"~steps must be in \[2, 200\]"),
    ("enabled", 1, "~enabled must be true or false"),
    ("mode", "warp", r"~mode must be one of \['edge', 'cloud', 'hybrid'\]"),
    ("mode", 3, "~mode must be a string"),
    ("robot_id", "", "~robot_id must not be empty"),
    ("pose", [0.0, 0.0], "~pose must hold exactly 3 items, got 2"),
    ("pose", [0.0, 0.0, 11.0], r"~pose\[2\] must be in \[-10, 10\]"),
    ("pose", "0 0 0", "~pose must be a list"),
    ("names", [], "~names must hold at least 1 items"),
    ("names", ["scan", "lidar"], r"~names\[1\] must be one of"),
    ("names", ["scan", ""], r"~names\[1\] must not be empty"),
    ("names", ["scan", 3], r"~names\[1\] must be a string"),
])
def test_bad_values_name_the_parameter_and_what_it_allows(name, value, says):
    with pytest.raises(ConfigError, match=says):
        build_config(Cfg, {name: value})


def test_unknown_names_are_errors():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) ~rate, ~zzz; known: .*rate_hz"):
        build_config(Cfg, {"rate": 10.0, "zzz": 1, "rate_hz": 10.0})


def test_check_runs_after_every_field():
    assert build_config(Cfg, {"lo_s": 1.0, "hi_s": 1.0}).lo_s == 1.0
    with pytest.raises(ConfigError, match=r"~lo_s \(2.0\) must not exceed ~hi_s \(1.0\)"):
        build_config(Cfg, {"lo_s": 2.0})
    with pytest.raises(ConfigError, match="~lo_s must be in"):  # the field's own range is checked first
        build_config(Cfg, {"lo_s": -1.0})


def test_yaml_mismatches():
    yaml_values = {k: v for k, v in defaults(Cfg).items() if k != "gain"}
    yaml_values["rate_hz"] = 10  # an int in yaml equals the float default
    assert yaml_mismatches(Cfg, yaml_values) == ["gain: missing from the yaml (default 0.5)"]
    yaml_values.update(gain=0.5, steps=31, extra=1, mode="cloud")
    assert sorted(yaml_mismatches(Cfg, yaml_values)) == [
        "extra: in the yaml but not a parameter",
        "mode: yaml says 'cloud', the default is 'edge'",
        "steps: yaml says 31, the default is 30",
    ]
    assert yaml_mismatches(Cfg, defaults(Cfg)) == []
