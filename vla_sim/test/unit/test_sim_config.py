"""sim_node configuration: the dataclass defaults build, every bad value names its parameter and range."""

import pytest

from vla_monitoring.config import ConfigError, build_config, defaults
from vla_sim.config import SimNodeConfig
from vla_sim.scene import WorldConfig


def test_defaults_build_and_nest_the_world():
    cfg = build_config(SimNodeConfig, {})
    assert cfg == SimNodeConfig()
    assert cfg.robots == ["robot_1"] and cfg.real_time_factor == 1.0
    assert isinstance(cfg.world, WorldConfig)
    assert defaults(SimNodeConfig)["world"]["room_size_m"] == 8.0
    cfg = build_config(SimNodeConfig, {"robots": ["a", "b"], "seed": 3, "real_time_factor": 0.5,
                                       "world": {"num_obstacles": 0, "room_size_m": 10}})
    assert (cfg.robots, cfg.seed, cfg.real_time_factor) == (["a", "b"], 3, 0.5)
    assert cfg.world.num_obstacles == 0 and cfg.world.room_size_m == 10.0
    assert cfg.world.robot_radius_m == WorldConfig().robot_radius_m


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"robots": []}, "~robots must hold at least 1 items"),
        ({"robots": "robot_7"}, "~robots must be a list"),
        ({"robots": ["robot 1"]}, "~robots: robot id 'robot 1' must match"),
        ({"robots": ["a", "a"]}, "~robots: robot ids must be unique"),
        ({"robots": [f"r{i}" for i in range(17)]}, "~robots must hold at most 16 items"),
        ({"seed": -3}, "~seed must be in [0,"),
        ({"seed": "x"}, "~seed must be an integer"),
        ({"real_time_factor": 0.0}, "~real_time_factor must be in [0.1, 10]"),
        ({"real_time_factor": 50.0}, "~real_time_factor must be in [0.1, 10]"),
        ({"camera_rate_hz": 0.0}, "~camera_rate_hz must be in [0.1, 1000]"),
        ({"camera_rate_hz": float("nan")}, "~camera_rate_hz must be in [0.1, 1000]"),
        ({"odom_rate_hz": 500.0}, "~odom_rate_hz must not exceed ~physics_rate_hz (100)"),
        ({"cmd_timeout_s": 0.0}, "~cmd_timeout_s must be in [0.05, 60]"),
        ({"warp_speed": 9}, "~warp_speed"),
        ({"world": {"robot_radius_m": 3.0}}, "~world/robot_radius_m must be in [0.05, 0.5]"),
        ({"world": {"warp_speed": 9}}, "~world/warp_speed"),
        ({"world": {"camera_width": 1.5}}, "~world/camera_width must be an integer"),
        ({"world": {"cloud_rings_deg": [0.0, 75.0]}}, "~world/cloud_rings_deg[1] must be in [-60, 60]"),
        ({"world": "big"}, "~world must be a mapping"),
    ],
)
def test_bad_values_name_the_parameter(params, message):
    with pytest.raises(ConfigError) as info:
        build_config(SimNodeConfig, params)
    assert message in str(info.value)
