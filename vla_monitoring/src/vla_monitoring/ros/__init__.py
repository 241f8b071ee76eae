"""ROS wrappers of vla_monitoring: the only modules of the package that import rospy."""
