"""ROS wrappers of vla_sim: the only modules of the package that import rospy."""
