"""Alert rules: the rule file is checked like a node's parameters, each error naming the rule and field;
metric paths; the default rules are the seed's three plus the suite's."""

import pytest

from vla_monitoring.alert_rules import (
    DEFAULT_RULES,
    MissingValueError,
    compile_path,
    default_rules,
    load_rule_file,
    parse_rule_file,
)
from vla_monitoring.config import ConfigError

GOOD = """
rules:
  high_cpu:
    input: vla_resources
    path: cpu_percent
    op: ">"
    threshold: 90
    clear_threshold: 85
    for_s: 5
    severity: WARNING
  estop:
    input: vla_safety_status
    path: emergency_stop
    op: "=="
    threshold: true
    severity: CRITICAL
"""


def rule_file(**fields):
    lines = "\n".join(f"    {k}: {v}" for k, v in fields.items())
    return f"rules:\n  my_rule:\n{lines}\n"


BASE = dict(input="vla_resources", path="cpu_percent", op="'>'", threshold=90)


def test_a_good_file_in_order():
    rules = parse_rule_file(GOOD)
    assert [r.name for r in rules] == ["high_cpu", "estop"]
    cpu, estop = (r.rule for r in rules)
    assert (cpu.threshold, cpu.clear_threshold, cpu.for_s, cpu.cooldown_s) == (90, 85, 5.0, 60.0)
    assert (estop.threshold, estop.op, estop.severity) == (True, "==", "CRITICAL")


@pytest.mark.parametrize(("fields", "error"), [
    ({**BASE, "severity": "LOUD"}, r"~rules/my_rule/severity must be one of \['INFO'"),
    ({**BASE, "for_s": -1}, r"~rules/my_rule/for_s must be in \[0, 86400\], got -1"),
    ({**BASE, "cooldown_s": "soon"}, r"~rules/my_rule/cooldown_s must be a number"),
    ({**BASE, "input": "vla_weather"}, r"~rules/my_rule/input must be one of"),
    ({**BASE, "op": "'=~'"}, r"~rules/my_rule/op must be one of"),
    ({**BASE, "treshold": 3}, r"unknown parameter\(s\) ~rules/my_rule/treshold"),
    ({k: v for k, v in BASE.items() if k != "threshold"}, r"~rules/my_rule/threshold is missing"),
    ({k: v for k, v in BASE.items() if k != "input"}, r"~rules/my_rule/input must be one of"),
    ({**BASE, "path": "''"}, r"~rules/my_rule/path must not be empty"),
    ({**BASE, "path": "a..b"}, r"~rules/my_rule: path 'a..b': '' is not a key"),
    ({**BASE, "path": "a.*.b.*"}, r"~rules/my_rule: path .* at most one '\*'"),
    ({**BASE, "path": "'a / *'"}, r"~rules/my_rule: path .* not allowed in a ratio"),
    ({**BASE, "threshold": "[1, 2]"}, r"~rules/my_rule: threshold must be a finite number, true/false or a string"),
    ({**BASE, "threshold": ".nan"}, r"~rules/my_rule: threshold must be a finite number"),
    ({**BASE, "threshold": "high"}, r"~rules/my_rule: op '>' needs a numeric threshold"),
    ({**BASE, "path": "'@age_s'", "op": "'=='", "threshold": "old"}, r"~rules/my_rule: path '@age_s' is a number"),
    ({**BASE, "clear_threshold": 95}, r"~rules/my_rule: clear_threshold 95 must lie on the clear side"),
    ({**BASE, "op": "'=='", "clear_threshold": 80}, r"~rules/my_rule: clear_threshold must be a number, and only"),
    ({**BASE, "message": "'{value} {nope}'"}, r"~rules/my_rule: message .* does not format"),
    ({**BASE, "message": "'{value:d} %'"}, r"~rules/my_rule: message .* does not format"),  # numbers are floats
    ({**BASE, "message": "'{value.real.x}'"}, r"~rules/my_rule: message .* does not format"),
])
def test_errors_name_the_rule_and_the_field(fields, error):
    with pytest.raises(ConfigError, match=error):
        parse_rule_file(rule_file(**fields), "alerts.yaml")


@pytest.mark.parametrize(("text", "error"), [
    ("rules: {}\n", "~rules must be a non-empty mapping"),
    ("rule:\n  a: {}\n", "expected one top-level key 'rules'"),
    ("- a\n", "expected one top-level key 'rules'"),
    ("rules:\n  BadName: {}\n", "~rules/BadName: a rule name is lower_case"),
    ("rules:\n  a: 3\n", "~rules/a must be a mapping of fields"),
    ("rules:\n  a: {input: vla_resources, path: x, threshold: 1}\n  a: {input: vla_health, path: x, threshold: 1}\n",
     "'a' appears twice"),
    ("rules: [\n", "not YAML"),
])
def test_file_level_errors(text, error):
    with pytest.raises(ConfigError, match=error) as info:
        parse_rule_file(text, "alerts.yaml")
    assert str(info.value).startswith("alerts.yaml: ")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_rule_file(tmp_path / "nope.yaml")
    path = tmp_path / "alerts.yaml"
    path.write_text(GOOD)
    assert [r.name for r in load_rule_file(path)] == ["high_cpu", "estop"]


def test_paths():
    doc = {"a": {"b": 2, "c": {"x": True, "y": False}}, "n": 3, "z": 0}
    assert compile_path("a.b").values(doc, 0.0) == [("", 2)]
    assert compile_path(" a . b ").values(doc, 0.0) == [("", 2)]
    assert compile_path("a.c.*").values(doc, 0.0) == [("x", True), ("y", False)]
    assert compile_path("a.b / n").values(doc, 0.0) == [("", 2 / 3)]
    assert compile_path("n / z").values(doc, 0.0) == [("", None)]
    assert compile_path("@age_s").values(doc, 4.5) == [("", 4.5)]
    with pytest.raises(MissingValueError, match="no 'q'"):
        compile_path("a.q").values(doc, 0.0)
    with pytest.raises(MissingValueError, match="expects an object"):
        compile_path("n.*").values(doc, 0.0)
    with pytest.raises(MissingValueError, match="finite number"):
        compile_path("a.c / n").values(doc, 0.0)


def test_default_rules_are_the_seeds_three_and_the_suites():
    rules = {r.name: r.rule for r in default_rules()}
    assert list(rules) == list(DEFAULT_RULES)
    seed = {name: (r.input, r.path, r.op, r.threshold, r.severity) for name, r in rules.items()}
    assert seed["inference_latency"] == ("vla_metrics", "performance_summary.avg_inference_time", ">", 0.1, "WARNING")
    assert seed["error_rate"] == ("vla_metrics", "error_rate", ">", 0.1, "ERROR")
    assert seed["high_cpu"] == ("vla_resources", "cpu_percent", ">", 90.0, "WARNING")
    assert seed["emergency_stop"] == ("vla_safety_status", "emergency_stop", "==", True, "CRITICAL")
    assert seed["health_component_down"] == ("vla_health", "components.*", "==", False, "ERROR")
    assert seed["no_action"] == ("activity", "action_gap_s", ">", 2.0, "ERROR")
    assert seed["robot_offline"] == ("/robot_status", "status", "==", "offline", "WARNING")
