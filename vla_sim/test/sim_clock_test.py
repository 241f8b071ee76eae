#!/usr/bin/env python3
"""sim_node with ~real_time_factor 0.5: simulated time (/clock) advances at about half wall speed."""

import time
import unittest

import rospy
import rostest

from vla_msgs.waiting import wait_until

SIM_WINDOW_S = 2.0


class ClockTest(unittest.TestCase):
    def test_simulated_time_runs_at_half_wall_speed(self):
        rospy.init_node("sim_clock_test")
        # wall-time limits: what is measured here is how simulated time relates to wall time
        wait_until(lambda: rospy.get_time() > 0.0, 30.0, "the first /clock message")
        sim0, wall0 = rospy.get_time(), time.monotonic()
        wait_until(lambda: rospy.get_time() - sim0 >= SIM_WINDOW_S, 20.0, f"{SIM_WINDOW_S} s of simulated time")
        sim_s, wall_s = rospy.get_time() - sim0, time.monotonic() - wall0
        factor = sim_s / wall_s
        # 0.5 asked for: the simulator never runs ahead of it (a poll's lag aside), and a loaded machine
        # may slow it somewhat; a simulator ignoring the factor would run at about 1.0.
        self.assertLess(factor, 0.6, f"{sim_s:.2f} s simulated in {wall_s:.2f} s of wall time")
        self.assertGreater(factor, 0.3, f"{sim_s:.2f} s simulated in {wall_s:.2f} s of wall time")


if __name__ == "__main__":
    rostest.rosrun("vla_sim", "sim_clock_real_time_factor", ClockTest)
