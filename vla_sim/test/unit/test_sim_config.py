"""sim_node configuration: defaults match config/sim.yaml, bad values name their parameter."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from vla_sim.config import ConfigError, SimNodeConfig, build_config
from vla_sim.world import WorldConfig

YAML = Path(__file__).resolve().parents[3] / "config" / "sim.yaml"


def test_yaml_mirrors_dataclasses():
    data = yaml.safe_load(YAML.read_text())
    assert set(data) == {f.name for f in dataclasses.fields(SimNodeConfig)}
    assert set(data["world"]) == {f.name for f in dataclasses.fields(WorldConfig)}
    cfg = build_config(data)
    defaults = SimNodeConfig()
    assert cfg.world == defaults.world
    for f in dataclasses.fields(SimNodeConfig):
        assert getattr(cfg, f.name) == getattr(defaults, f.name), f.name


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"robots": []}, "robots"),
        ({"robots": ["robot 1"]}, "robots"),
        ({"robots": ["a", "a"]}, "robots"),
        ({"seed": -3}, "seed"),
        ({"seed": "x"}, "seed"),
        ({"camera_rate_hz": 0.0}, "camera_rate_hz"),
        ({"camera_rate_hz": float("nan")}, "camera_rate_hz"),
        ({"odom_rate_hz": 500.0}, "odom_rate_hz"),
        ({"cmd_timeout_s": 0.0}, "cmd_timeout_s"),
        ({"world": {"robot_radius_m": 3.0}}, "world/robot_radius_m"),
        ({"world": {"warp_speed": 9}}, "world/warp_speed"),
        ({"world": {"camera_width": 1.5}}, "world/camera_width"),
    ],
)
def test_bad_values_name_the_parameter(params, param):
    with pytest.raises(ConfigError) as info:
        build_config(params)
    assert info.value.param == param
    assert str(info.value).startswith(f"~{param}:")


def test_single_robot_string_is_accepted():
    assert build_config({"robots": "robot_7"}).robots == ["robot_7"]
