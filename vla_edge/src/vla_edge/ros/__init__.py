"""ROS wrappers of vla_edge: the only modules of the package that import rospy."""
