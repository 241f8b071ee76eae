"""`rosrun vla_fleet update_server`: the OTA update server (a plain HTTP server, no ROS node; see
vla_fleet.ota.server), started like the package's nodes."""

from vla_fleet.ota.server import main

__all__ = ["main"]
