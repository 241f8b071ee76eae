"""config/prometheus/: promtool accepts the scrape config and the rules, the rules behave as their unit tests
say (test/prometheus/vla_alerts_test.yml), every default rule of config/alerts.yaml has its Prometheus twin
with the same severity, `for`, threshold, clear threshold and cooldown, and every series a rule reads is one
monitoring_node's exporter serves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vla_monitoring.exporter import Exporter
from vla_monitoring.metrics import LATENCY_BUCKETS_S

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "config" / "prometheus"
RULES = PROMETHEUS / "vla_alerts.rules.yml"
# vla_resources reports percentages; the exporter serves them as 0..1 ratios (Prometheus base units).
PERCENT_PATHS = {"cpu_percent", "memory_percent", "disk_percent", "gpu_percent", "gpu_memory_percent"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: Debian's prometheus is in ros-deps.txt (make setup installs it)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("args", [("check", "config", str(PROMETHEUS / "prometheus.yml")),
                                  ("check", "rules", str(RULES)),
                                  ("test", "rules", str(ROOT / "test" / "prometheus" / "vla_alerts_test.yml"))],
                         ids=["check config", "check rules", "test rules"])
def test_promtool_accepts(args):
    done = promtool(*args)
    assert done.returncode == 0, done.stdout + done.stderr


def prometheus_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alert_rules() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "config" / "alerts.yaml").read_text())["rules"]


def exported_threshold(rule: dict) -> float:
    """The alerts.yaml threshold in the exported series' units: ratios for percentages, 1/0 for a flag,
    1 for a state string (a one-hot `state` label)."""
    value = rule["threshold"]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        return 1.0
    return value / 100.0 if rule["path"] in PERCENT_PATHS else float(value)


def duration_s(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert match, f"not a Prometheus duration: {text!r}"
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_every_alerts_yaml_rule_has_its_prometheus_twin(name):
    rule = alert_rules()[name]
    twins = [r for r in prometheus_rules() if r.get("labels", {}).get("vla_rule") == name]
    assert len(twins) == 1, f"{name}: {len(twins)} Prometheus rules carry vla_rule={name}"
    twin = twins[0]
    assert twin["labels"]["severity"] == rule["severity"].lower()
    assert duration_s(twin.get("for", "0s")) == rule["for_s"]
    assert duration_s(twin["annotations"]["cooldown"]) == rule["cooldown_s"]
    threshold = exported_threshold(rule)
    assert float(twin["annotations"]["threshold"]) == pytest.approx(threshold)
    numbers = [float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", twin["expr"])]
    assert threshold in numbers, f"{name}: threshold {threshold} not in {twin['expr']!r}"
    if rule.get("clear_threshold") is None:
        assert "clear_threshold" not in twin["annotations"]
        assert "ALERTS" not in twin["expr"]
    else:
        clear = rule["clear_threshold"] / (100.0 if rule["path"] in PERCENT_PATHS else 1.0)
        assert float(twin["annotations"]["clear_threshold"]) == pytest.approx(clear)
        assert clear in numbers and f'ALERTS{{alertname="{twin["alert"]}", alertstate="firing"}}' in twin["expr"]
    if isinstance(rule["threshold"], str):
        assert f'state="{rule["threshold"]}"' in twin["expr"]


def test_no_prometheus_rule_names_a_rule_alerts_yaml_lacks():
    named = {r["labels"]["vla_rule"] for r in prometheus_rules() if "vla_rule" in r.get("labels", {})}
    assert named <= set(alert_rules())


def test_every_series_a_rule_reads_is_exported():
    exporter = Exporter("r", LATENCY_BUCKETS_S, uptime_s=lambda: 0.0, action_age_s=lambda: 0.0,
                        action_gap_s=lambda: 0.0)
    exporter.robot_state("busy")  # labelled series appear with their first value
    exporter.health(True, {"vision": True})
    served = {s.name for family in exporter.registry.collect() for s in family.samples}
    read = {name for r in prometheus_rules() for name in re.findall(r"\bvla_[a-z_]+\b", r["expr"])}
    read -= {"vla_robots"}  # the scrape job's name, not a series
    assert read and read <= served, f"rules read series no exporter serves: {sorted(read - served)}"


def test_scrape_config_targets_the_exporter_ports():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == [RULES.name]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "vla_robots" and job["metrics_path"] == "/metrics"
    ports = [int(t.rsplit(":", 1)[1]) for c in job["static_configs"] for t in c["targets"]]
    assert ports == [9470 + n for n in range(1, len(ports) + 1)]  # fleet.launch: robot n on 9470 + n
