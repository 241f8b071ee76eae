"""config/*.yaml (what the launch files load) agrees field by field with each node's config dataclass.

The packages' dataclass defaults are the defaults (their own tests never read this folder); the
yaml files are the deployed copy an operator edits, so each must name every field with the
default's value and say in a comment what it does.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from vla_monitoring.alert_rules import default_rules, load_rule_file, rule_fields
from vla_monitoring.config import yaml_mismatches

CONFIG = Path(__file__).resolve().parents[2] / "config"
# config file -> (module, class) of the node that loads it
MIRRORS = {
    "safety.yaml": ("vla_safety.config", "SafetyConfig"),
    "inference.yaml": ("vla_edge.config", "InferenceConfig"),
    "sim.yaml": ("vla_sim.config", "SimNodeConfig"),
    "health.yaml": ("vla_monitoring.health", "HealthConfig"),
    "resources.yaml": ("vla_monitoring.resources", "ResourceConfig"),
    "monitoring.yaml": ("vla_monitoring.metrics", "MonitoringConfig"),
    "dashboard.yaml": ("vla_monitoring.dashboard", "DashboardConfig"),
    "alert.yaml": ("vla_monitoring.alerts", "AlertConfig"),
    "robot_agent.yaml": ("vla_fleet.agent", "AgentConfig"),
    "fleet_manager.yaml": ("vla_fleet.manager", "FleetManagerConfig"),
    "scheduler.yaml": ("vla_fleet.scheduler", "SchedulerConfig"),
    "ota_updater_node.yaml": ("vla_fleet.ota.config", "OtaUpdaterConfig"),
    "maintenance_node.yaml": ("vla_fleet.maintenance.config", "MaintenanceConfig"),
}
# config files that are not one node's parameters, each checked on its own
NOT_PARAMETERS = {
    "alerts.yaml": "alert_node's rule file: test_alert_rules_mirror_the_defaults",
    "diagnostic_analyzers.yaml": "aggregator_node's analyzers: test/diagnostics_aggregator.test",
    "places.yaml": "fleet_manager_node's named places: test/unit/test_places.py",
}


def test_every_config_file_has_its_dataclass():
    assert sorted(p.name for p in CONFIG.glob("*.yaml")) == sorted([*MIRRORS, *NOT_PARAMETERS])


def test_alert_rules_mirror_the_defaults():
    """config/alerts.yaml (what robot.launch gives alert_node) says what the built-in default rules say."""
    def by_name(rules):
        return {r.name: rule_fields(r.rule) for r in rules}

    assert by_name(load_rule_file(CONFIG / "alerts.yaml")) == by_name(default_rules())


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_yaml_mirrors_the_dataclass_defaults(name):
    module, cls_name = MIRRORS[name]
    cls = getattr(importlib.import_module(module), cls_name)
    values = yaml.safe_load((CONFIG / name).read_text())
    assert isinstance(values, dict), f"config/{name} is not a mapping"
    assert yaml_mismatches(cls, values) == [], f"config/{name} disagrees with {module}.{cls_name}"


def uncommented_keys(text: str) -> list[str]:
    """Keys with no comment on their line and no comment line heading their block (lines up to a blank one)."""
    found = []
    block_commented = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            block_commented = False
        elif stripped.startswith("#"):
            block_commented = True
        else:
            match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*):", line)
            if match and "#" not in line and not block_commented:
                found.append(match.group(1))
    return found


@pytest.mark.parametrize("name", sorted(MIRRORS))
def test_every_field_is_commented(name):
    assert uncommented_keys((CONFIG / name).read_text()) == []


def test_comment_check_on_a_sample():
    sample = ("# the robot\nrobot_id: r1\n\nrate: 1.0   # [Hz]\nbare: 3\nworld:   # nested\n  size_m: 8.0\n\n"
              "# clamps [m/s]\nmax_x: 1.0\nmax_y: 0.5\n\nlone: 1\n")
    assert uncommented_keys(sample) == ["bare", "size_m", "lone"]
