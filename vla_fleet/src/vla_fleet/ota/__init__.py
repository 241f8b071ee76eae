"""Signed over-the-air updates: packages and their signatures, the robot's updater, the update server.

ROS-free: `vla_fleet.ros.ota_updater_node` wraps `updater.Updater` for one robot; `server` is a plain
ASGI app (`rosrun vla_fleet update_server`); `vla_fleet.release` builds and signs packages.
"""
