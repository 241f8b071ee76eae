from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from vla_edge.config import ConfigError, InferenceConfig, build_config

YAML = Path(__file__).resolve().parents[3] / "config" / "inference.yaml"


def test_yaml_mirrors_dataclass():
    doc = yaml.safe_load(YAML.read_text())
    defaults = {f.name: f.default for f in fields(InferenceConfig)}
    assert set(doc) == set(defaults)
    assert {k: v for k, v in doc.items() if k != "model_path"} == {
        k: v for k, v in defaults.items() if k != "model_path"}


def test_valid_config_and_int_coercion():
    cfg = build_config({"model_path": "/m.pt", "control_rate": 20, "unknown": 1})
    assert cfg.control_rate == 20.0 and isinstance(cfg.control_rate, float)


@pytest.mark.parametrize("name,value", [
    ("control_rate", 0), ("control_rate", -1.0), ("max_image_age", float("nan")), ("mode", "space"),
    ("inference_timeout", 2.0), ("chunk_refresh", -1), ("image_transport", "jpeg"), ("max_task_length", 0),
    ("temporal_ensembling", "yes"), ("device", "tpu"), ("model_path", ""),
])
def test_rejects_bad_values_naming_the_parameter(name, value):
    params = {"model_path": "/m.pt", name: value}
    with pytest.raises(ConfigError, match=f"~{name}="):
        build_config(params)
