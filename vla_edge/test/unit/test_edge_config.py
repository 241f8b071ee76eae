"""InferenceConfig on vla_monitoring's config idiom: its defaults are vla_edge's defaults (the root's
config/inference.yaml is checked against them by the root's tests, never read here)."""

import pytest

from vla_edge.config import InferenceConfig
from vla_monitoring.config import ConfigError, build_config, defaults


def test_defaults_need_only_a_model():
    cfg = build_config(InferenceConfig, {"model_path": "/m.pt"})
    assert cfg == InferenceConfig(model_path="/m.pt")
    assert set(defaults(InferenceConfig)) == {f for f in InferenceConfig.__dataclass_fields__}
    with pytest.raises(ConfigError, match="~model_path"):
        build_config(InferenceConfig, {})


def test_int_taken_for_float():
    cfg = build_config(InferenceConfig, {"model_path": "/m.pt", "control_rate": 20})
    assert cfg.control_rate == 20.0 and isinstance(cfg.control_rate, float)


def test_unknown_and_retired_parameters_are_errors():
    for name in ("unknown", "max_task_length", "lidar_sectors"):
        with pytest.raises(ConfigError, match=f"~{name}"):
            build_config(InferenceConfig, {"model_path": "/m.pt", name: 1})


@pytest.mark.parametrize("name,value", [
    ("control_rate", 0), ("control_rate", -1.0), ("control_rate", 101.0), ("max_image_age", float("nan")),
    ("mode", "space"), ("inference_timeout", 2.0), ("chunk_refresh", -1), ("image_transport", "jpeg"),
    ("temporal_ensembling", "yes"), ("allow_unstamped_images", 1), ("device", "tpu"), ("model_path", ""),
    ("robot_id", ""), ("language_cache_size", 0), ("stats_rate", 0.0),
])
def test_rejects_bad_values_naming_the_parameter(name, value):
    with pytest.raises(ConfigError, match=f"~{name}"):
        build_config(InferenceConfig, {"model_path": "/m.pt", name: value})


def test_window_must_cover_a_stats_period():
    with pytest.raises(ConfigError, match="~stats_window"):
        build_config(InferenceConfig, {"model_path": "/m.pt", "stats_rate": 0.1, "stats_window": 5.0})


def test_step_wait_and_prefetch_lead_are_capped_by_the_period():
    cfg = build_config(InferenceConfig, {"model_path": "/m.pt", "control_rate": 20.0, "inference_timeout": 0.5,
                                         "prefetch_lead": 0.5})
    assert cfg.step_wait_s == pytest.approx(0.04) and cfg.prefetch_lead_s == pytest.approx(0.025)
    default = InferenceConfig()
    assert default.step_wait_s == pytest.approx(0.08) and default.prefetch_lead_s == pytest.approx(0.03)
