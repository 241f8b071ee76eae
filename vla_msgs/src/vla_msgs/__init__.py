"""vla_msgs: the suite's messages and services, and beside them its protocol in plain Python.

`names` (topic, service and action-axis names), `tasks` (the task_command grammar), `json_forms`
(builders and validating parsers of every JSON topic), `point_cloud` (PointCloud2 reading with
bounds checks), `states` (enums from the .msg constants) and `waiting` (the one wait-until helper).
None of them imports rospy.
"""
