"""ROS wrappers of vla_safety: the only modules of the package that import rospy."""
