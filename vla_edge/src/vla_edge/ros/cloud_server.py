"""`rosrun vla_edge cloud_server` (or a launch file's `<node>`): the cloud inference server is not a ROS
node; this entry only drops the remapping arguments roslaunch appends (`__name:=`, `__log:=`) and runs
`vla_edge.cloud.server.main` with the rest."""

from __future__ import annotations

import sys

import rospy

from vla_edge.cloud.server import main as server_main


def main() -> None:
    sys.exit(server_main(rospy.myargv(sys.argv)[1:]))
