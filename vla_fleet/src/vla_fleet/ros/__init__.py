"""ROS wrappers of vla_fleet: the only modules of the package that import rospy."""
