"""Maintenance of a fleet host, without ROS: the tasks (health check, log cleanup, backup and restore,
performance review, deep maintenance, security scan), their cron schedule on an injected clock, and the
runner that runs them one at a time off the caller's thread. `vla_fleet.ros.maintenance_node` wires
them to /maintenance/run_task and /vla_maintenance.
"""
