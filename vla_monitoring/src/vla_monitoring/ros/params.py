"""Reads a node's typed config from its `~` parameters: the one place a node refuses to start."""

from __future__ import annotations

import sys
from typing import Any

import rospy

from vla_monitoring.config import CONFIG_EXIT_CODE, ConfigError, build_config

# Parameters a robot's launch file may set once for the whole namespace instead of per node.
INHERITED = ("robot_id",)
# Private parameters that belong to libraries the node uses, not to its config.
FOREIGN = ("diagnostic_period",)


def read_params(cls: type) -> dict[str, Any]:
    """Every private parameter of this node, plus INHERITED ones from the namespace when not private."""
    values = rospy.get_param("~", {})
    values = {k: v for k, v in values.items() if k not in FOREIGN} if isinstance(values, dict) else {}
    for name in INHERITED:
        if name not in values and name in {f for f in getattr(cls, "__dataclass_fields__", {})}:
            found = rospy.search_param(name)
            if found:
                values[name] = rospy.get_param(found)
    return values


def load_config(cls: type) -> Any:
    """The node's config; on an invalid value one logfatal naming the parameter, then exit CONFIG_EXIT_CODE."""
    try:
        return build_config(cls, read_params(cls))
    except ConfigError as exc:
        rospy.logfatal(f"{rospy.get_name()}: invalid parameter: {exc}")
        sys.exit(CONFIG_EXIT_CODE)
