"""The suite's state enums: integer ones built from the .msg constants, string ones for JSON forms."""

from __future__ import annotations

from enum import IntEnum, StrEnum

from vla_msgs.msg import Alert, SafetyStatus


def _from_constants(name: str, msg_type: type, members: tuple[str, ...]) -> type[IntEnum]:
    return IntEnum(name, {m: getattr(msg_type, m) for m in members})


# SafetyStatus.level: OK, LIMITED, STOPPED, EMERGENCY_STOP (its `status` string is the member's name).
SafetyState = _from_constants("SafetyState", SafetyStatus, ("OK", "LIMITED", "STOPPED", "EMERGENCY_STOP"))
# Alert.level: INFO, WARNING, ERROR, CRITICAL.
AlertLevel = _from_constants("AlertLevel", Alert, ("INFO", "WARNING", "ERROR", "CRITICAL"))


class HealthLevel(StrEnum):
    """`level` of vla_health and `overall_status` of vla_msgs/HealthStatus."""
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"


class RobotState(StrEnum):
    """`status` of /robot_status and vla_msgs/RobotStatus."""
    AVAILABLE = "available"
    BUSY = "busy"
    CHARGING = "charging"
    ERROR = "error"
    OFFLINE = "offline"


class TaskState(StrEnum):
    """`state` of /task_feedback."""
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class UpdateState(StrEnum):
    """`status` of /vla_updates and vla_msgs/UpdateStatus."""
    CHECKING = "checking"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    APPLYING = "applying"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class InferenceMode(StrEnum):
    """What inference_node/set_mode accepts."""
    EDGE = "edge"
    CLOUD = "cloud"
    HYBRID = "hybrid"


class AlertState(StrEnum):
    """`state` of a vla_alerts event: an alert starts (or repeats) firing, or it resolved."""
    FIRING = "firing"
    RESOLVED = "resolved"


class LogType(StrEnum):
    """`type` of a vla_logs entry."""
    INFERENCE = "inference"
    ACTION = "action"
    ERROR = "error"
    LOG = "log"


MAINTENANCE_TASKS: tuple[str, ...] = ("health_check", "log_cleanup", "full_backup", "performance_review",
                                      "deep_maintenance", "security_scan", "restore_backup")
