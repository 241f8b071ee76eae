import ast
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from vla_safety.config import ConfigError, SafetyConfig, build_config

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "vla_safety" / "src" / "vla_safety"


@pytest.mark.parametrize("name,cls", [("safety.yaml", SafetyConfig)])
def test_yaml_mirrors_the_dataclass(name, cls):
    values = yaml.safe_load((ROOT / "config" / name).read_text())
    assert list(values) == [f.name for f in fields(cls)]
    assert build_config(cls, values) == cls()


@pytest.mark.parametrize("field,value", [
    ("output_rate", 0.0), ("cmd_timeout", -1.0), ("required_sensors", ["lidar"]), ("max_linear_x", -1.0),
    ("collision_threshold", float("inf")), ("prediction_steps", 2.5), ("scan_pose", [0, 0, 0]),
    ("obstacle_max_height", -10.0), ("robot_id", ""), ("trigger_hold", "1"),
])
def test_bad_safety_values_name_the_parameter(field, value):
    with pytest.raises(ConfigError, match=field):
        build_config(SafetyConfig, {field: value})


def test_ints_are_accepted_for_floats():
    assert build_config(SafetyConfig, {"output_rate": 10}).output_rate == 10.0


def test_only_ros_modules_import_rospy():
    for path in SRC.rglob("*.py"):
        if "ros" in path.relative_to(SRC).parts[:-1]:
            continue
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not names & {"rospy", "rosgraph", "genpy"}, path
