"""Every topic and service name of the suite, typed once (see INTERFACES.md).

Per-robot names are relative, so a `<group ns="robot_1">` moves a whole stack; fleet-wide names
are absolute.
"""

from __future__ import annotations

# Action layout of every policy, supervisor and simulator: a twist, linear then angular.
ACTION_NAMES: tuple[str, ...] = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")
ACTION_DIM = len(ACTION_NAMES)

# Per-robot topics (relative).
CAMERA_IMAGE = "camera/rgb/image_raw"
CAMERA_IMAGE_COMPRESSED = "camera/rgb/image_raw/compressed"
POINTS = "velodyne_points"
SCAN = "scan"
ODOM = "odom"
BATTERY_STATE = "battery_state"
TASK_COMMAND = "task_command"
CMD_VEL_VLA = "cmd_vel_vla"
CMD_VEL = "cmd_vel"
ACTION = "vla/action"
INFERENCE_STATS = "vla/inference_stats"
PERFORMANCE = "vla_performance"
CLOUD_RESULT = "cloud_vla_result"
EMERGENCY_STOP = "emergency_stop"
EMERGENCY_STOP_TRIGGER = "emergency_stop/trigger"
SAFETY_STATUS_JSON = "vla_safety_status"
SAFETY_STATUS = "vla/safety_status"
HEALTH_JSON = "vla_health"
HEALTH = "vla/health"
RESOURCES_JSON = "vla_resources"
RESOURCES = "vla/resources"
METRICS_JSON = "vla_metrics"
LOGS_JSON = "vla_logs"
ALERTS_JSON = "vla_alerts"
ALERTS = "vla/alerts"

# Simulator (relative: one simulator per master, in the root namespace).
SIM_STATE = "sim/state"
SIM_RESET = "sim/reset"

# ROS-wide.
CLOCK = "/clock"
DIAGNOSTICS = "/diagnostics"
DIAGNOSTICS_AGG = "/diagnostics_agg"

# Per-robot services (relative, under the node's name).
SAFETY_RESET = "safety_node/reset"
SAFETY_TRIGGER_ESTOP = "safety_node/trigger_emergency_stop"
INFERENCE_SET_MODE = "inference_node/set_mode"
INFERENCE_LOAD_MODEL = "inference_node/load_model"
OTA_CHECK_NOW = "ota_updater/check_now"
OTA_ROLLBACK = "ota_updater/rollback"

# Fleet-wide topics (absolute).
ROBOT_STATUS_JSON = "/robot_status"
ROBOT_STATUS = "/fleet/robot_status"
TASK_ASSIGNMENT = "/task_assignment"
TASK_FEEDBACK = "/task_feedback"
COORDINATION = "/vla_coordination"
UPDATES = "/vla_updates"
UPDATE_STATUS = "/fleet/update_status"  # vla_msgs/UpdateStatus, the typed twin of /vla_updates
MAINTENANCE = "/vla_maintenance"

# Fleet-wide services (absolute, whatever the node's own name).
FLEET_SUBMIT_TASK = "/fleet_manager/submit_task"
FLEET_CANCEL_TASK = "/fleet_manager/cancel_task"
FLEET_LIST_TASKS = "/fleet_manager/list_tasks"
# the JSON form of submit_task for `rostopic pub` (std_msgs/String: description, priority, robot_id, parameters)
FLEET_SUBMIT_JSON = "/fleet_manager/submit"
SCHEDULER_SCHEDULE_TASK = "/scheduler/schedule_task"
SCHEDULER_CANCEL_TASK = "/scheduler/cancel_task"
MAINTENANCE_RUN_TASK = "/maintenance/run_task"

# Node names.
INFERENCE_NODE = "inference_node"
SAFETY_NODE = "safety_node"
HEALTH_NODE = "health_node"
SIM_NODE = "sim_node"
RESOURCE_MONITOR_NODE = "resource_monitor_node"
MONITORING_NODE = "monitoring_node"
ALERT_NODE = "alert_node"
DASHBOARD_NODE = "dashboard_node"
ROBOT_AGENT_NODE = "robot_agent_node"
FLEET_MANAGER_NODE = "fleet_manager_node"
SCHEDULER_NODE = "scheduler_node"
OTA_UPDATER_NODE = "ota_updater_node"
MAINTENANCE_NODE = "maintenance_node"
