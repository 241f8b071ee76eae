"""Every vla_msgs message and service type survives serialisation with every field set."""

from io import BytesIO

import pytest
from msg_fill import MSG_NAMES, SRV_NAMES, fill, message_classes, service_classes


def roundtrip(msg):
    buf = BytesIO()
    msg.serialize(buf)
    out = type(msg)()
    out.deserialize(buf.getvalue())
    return out


@pytest.mark.parametrize("name", MSG_NAMES)
def test_message_roundtrip(name):
    msg = fill(message_classes()[name]())
    assert roundtrip(msg) == msg


@pytest.mark.parametrize("name", SRV_NAMES)
def test_service_roundtrip(name):
    srv = service_classes()[name]
    for part in (srv._request_class(), srv._response_class()):
        filled = fill(part)
        assert roundtrip(filled) == filled


def test_fill_sets_non_default_values():
    msg = fill(message_classes()["SafetyStatus"]())
    assert msg.reason and msg.speed_scale != 0 and msg.commanded.linear.x != 0
    assert msg.header.stamp.secs != 0
