"""JSON forms: every form builds and parses a minimal document, NaN is never written, errors name the field."""

import json
import math

import numpy as np
import pytest

from vla_msgs import json_forms, names
from vla_msgs.json_forms import BOOL, FORMS, INT, LIST, NUM, OBJ, STR, ProtocolError

SAMPLE = {NUM: 1.5, INT: 3, STR: "x", BOOL: True, OBJ: {}, LIST: []}

# Every JSON topic of INTERFACES.md has its form.
JSON_TOPICS = {names.PERFORMANCE, names.CLOUD_RESULT, names.SAFETY_STATUS_JSON, names.HEALTH_JSON,
               names.RESOURCES_JSON, names.METRICS_JSON, names.LOGS_JSON, names.ALERTS_JSON, names.SIM_STATE,
               names.ROBOT_STATUS_JSON, names.TASK_ASSIGNMENT, names.TASK_FEEDBACK, names.COORDINATION,
               names.UPDATES, names.MAINTENANCE}


def minimal(fields):
    """The required fields of a form, each with a value of its kind (the first choice where it has some)."""
    return {f.name: (f.choices[0] if f.choices else SAMPLE[f.kind]) for f in fields if f.required}


def minimal_documents():
    for form in FORMS.values():
        if form.variant_key:
            for variant, extra in form.variants.items():
                doc = minimal(form.fields)
                doc[form.variant_key] = variant
                doc.update(minimal(extra))
                yield pytest.param(form, doc, id=f"{form.topic}:{variant}")
        else:
            yield pytest.param(form, minimal(form.fields), id=form.topic)


def test_every_json_topic_has_a_form():
    assert set(FORMS) == JSON_TOPICS


@pytest.mark.parametrize("form,fields", list(minimal_documents()))
def test_every_form_builds_and_parses_a_minimal_document(form, fields):
    text = form.build(timestamp=1700000000.25, **fields)
    doc = form.parse(text)
    assert doc == {"timestamp": 1700000000.25, **fields}
    assert json.loads(text) == doc


@pytest.mark.parametrize("form,fields", list(minimal_documents()))
def test_every_required_field_is_named_when_missing(form, fields):
    for name in fields:
        if name == form.variant_key:
            continue
        doc = {"timestamp": 1.0, **{k: v for k, v in fields.items() if k != name}}
        with pytest.raises(ProtocolError, match=f"{form.topic}: missing field '{name}'"):
            form.parse(json.dumps(doc))


def health(**over):
    fields = {"components": {"vision": True}, "overall_status": True, "level": "healthy", **over}
    return json_forms.HEALTH.build(timestamp=1.0, **fields)


def test_nan_and_infinity_are_never_written():
    text = health(details={"vision": {"age_s": float("nan")}, "inf": float("inf"), "np": np.float32("nan"),
                           "arr": np.array([1.0, np.nan])})
    assert "NaN" not in text and "Infinity" not in text
    doc = json_forms.HEALTH.parse(text)
    assert doc["details"] == {"vision": {"age_s": None}, "inf": None, "np": None, "arr": [1.0, None]}
    # A NaN where the form needs a number is refused, not written as null into a required field.
    with pytest.raises(ProtocolError, match="field 'uptime_seconds' is null"):
        json_forms.METRICS.build(timestamp=1.0, inference_count=1, error_count=0, action_count=1,
                                 uptime_seconds=math.nan, performance_summary={})
    # Nullable numbers take it as null.
    text = json_forms.ALERTS.build(timestamp=1.0, level="INFO", type="t", message="m", value=float("-inf"))
    assert json.loads(text)["value"] is None
    with pytest.raises(ProtocolError, match="field 'timestamp' must be a finite number"):
        json_forms.HEALTH.build(timestamp=float("nan"), components={}, overall_status=True, level="healthy")


def test_numpy_values_become_json():
    text = json_forms.METRICS.build(timestamp=np.float64(2.0), inference_count=np.int64(3), error_count=0,
                                    action_count=1, uptime_seconds=np.float32(1.5), performance_summary={})
    doc = json_forms.METRICS.parse(text)
    assert doc["inference_count"] == 3 and doc["uptime_seconds"] == 1.5


@pytest.mark.parametrize("text,says", [
    ('{"timestamp": NaN, "components": {}, "overall_status": true, "level": "healthy"}', "not JSON"),
    ('{"timestamp": 1, "components": {}, "overall_status": Infinity, "level": "healthy"}', "not JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ("not json", "not JSON"),
    ('{"components": {}, "overall_status": true, "level": "healthy"}', "missing field 'timestamp'"),
    ('{"timestamp": true, "components": {}, "overall_status": true, "level": "healthy"}',
     "field 'timestamp' must be a finite number"),
    ('{"timestamp": 1, "components": [], "overall_status": true, "level": "healthy"}',
     "field 'components' must be a finite object"),
    ('{"timestamp": 1, "components": {}, "overall_status": "healthy", "level": "healthy"}',
     "field 'overall_status' must be a finite boolean"),
    ('{"timestamp": 1, "components": {}, "overall_status": 1, "level": "healthy"}',
     "field 'overall_status' must be a finite boolean"),
    ('{"timestamp": 1, "components": {}, "overall_status": true, "level": "fine"}',
     "field 'level' is 'fine'; expected one of healthy, degraded, critical"),
    ('{"timestamp": 1, "components": {}, "overall_status": null, "level": "healthy"}',
     "field 'overall_status' is null"),
])
def test_parse_errors_name_the_field(text, says):
    with pytest.raises(ProtocolError, match=says):
        json_forms.HEALTH.parse(text)


def test_integers_choices_and_variants():
    base = {"image_queue_size": 0, "lidar_queue_size": 0, "task_queue_size": 0, "current_task": None,
            "last_action_time": None, "fps": 10.0, "avg_inference_time_ms": None}
    json_forms.PERFORMANCE.build(timestamp=1.0, **base)
    with pytest.raises(ProtocolError, match=r"field 'task_queue_size' must be a finite integer, got 1\.5"):
        json_forms.PERFORMANCE.build(timestamp=1.0, **{**base, "task_queue_size": 1.5})
    with pytest.raises(ProtocolError, match="field 'task_queue_size' must be a finite integer, got True"):
        json_forms.PERFORMANCE.build(timestamp=1.0, **{**base, "task_queue_size": True})
    with pytest.raises(ProtocolError, match="field 'status' is 'FINE'; expected one of OK, LIMITED"):
        json_forms.SAFETY_STATUS.build(timestamp=1.0, status="FINE", reason="", emergency_stop=False)
    with pytest.raises(ProtocolError, match="field 'type' is 'debug'; expected one of"):
        json_forms.LOGS.build(timestamp=1.0, type="debug")
    with pytest.raises(ProtocolError, match="missing field 'message'"):
        json_forms.LOGS.build(timestamp=1.0, type="log", level="INFO", node="n")


def test_extra_fields_are_kept_and_optional_ones_may_be_absent():
    doc = json_forms.HEALTH.parse(health(robot_id="robot_1", details={"vision": {"reason": ""}}))
    assert doc["robot_id"] == "robot_1" and doc["details"] == {"vision": {"reason": ""}}
    with pytest.raises(ProtocolError, match="field 'robot_id' must be a finite string"):
        health(robot_id=3)
    assert "error" not in json_forms.CLOUD_RESULT.parse(json_forms.CLOUD_RESULT.build(
        timestamp=1.0, actions=[[0.0] * 6], model_version="2.0.0", latency_ms=12.5))
