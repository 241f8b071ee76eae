"""The one bridge from Python `logging` to rosout and to the `vla_logs` topic.

The core packages log with `logging`; a node calls `bridge_logging(...)` once and every record of
the named loggers reaches rosout (so `rqt_console` and `rosout.log` see it) and, from `json_level`
up, `vla_logs` as a `log` entry {level, node, message}. `VlaLogs.entry(...)` publishes the other
entry types (inference, action, error) in their JSON form.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import rospy
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.json_forms import ProtocolError

_ROSOUT = ((logging.CRITICAL, rospy.logfatal), (logging.ERROR, rospy.logerr), (logging.WARNING, rospy.logwarn),
           (logging.INFO, rospy.loginfo))


class VlaLogs:
    """Publishes vla_logs entries of one node; safe from any thread."""

    def __init__(self, node: str, robot_id: str, queue_size: int = 100):
        self.node = node
        self.robot_id = robot_id
        self._pub = rospy.Publisher(names.LOGS_JSON, String, queue_size=queue_size)
        self.dropped = 0  # entries that did not fit their form (a bug in the caller), never published

    def entry(self, entry_type: str, **fields: Any) -> None:
        fields.setdefault("node", self.node)
        fields.setdefault("robot_id", self.robot_id)
        try:
            text = json_forms.LOGS.build(timestamp=rospy.get_time(), type=entry_type, **fields)
        except ProtocolError as exc:
            self.dropped += 1
            rospy.logerr_throttle(10.0, f"vla_logs entry dropped: {exc}")
            return
        self._pub.publish(String(data=text))


class RosLogHandler(logging.Handler):
    """Sends each record to rosout and, from `json_level` up, to vla_logs."""

    def __init__(self, logs: VlaLogs | None, json_level: int = logging.INFO):
        super().__init__()
        self.logs = logs
        self.json_level = json_level
        self._local = threading.local()  # a record logged while publishing one must not loop back

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False):
            return
        self._local.busy = True
        try:
            text = self.format(record)
            for level, log in _ROSOUT:
                if record.levelno >= level:
                    log(text)
                    break
            else:
                rospy.logdebug(text)
            if self.logs is not None and record.levelno >= self.json_level:
                self.logs.entry("log", level=record.levelname, message=text)
        except Exception:  # logging must never take a node down; logging's own hook reports it
            self.handleError(record)
        finally:
            self._local.busy = False


def bridge_logging(loggers: tuple[str, ...], logs: VlaLogs | None = None, level: int = logging.INFO,
                   json_level: int = logging.INFO) -> RosLogHandler:
    """Routes the named loggers (usually the node's packages and `vla_monitoring`) to rosout and vla_logs."""
    handler = RosLogHandler(logs, json_level)
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, RosLogHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return handler
