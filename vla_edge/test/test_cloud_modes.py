#!/usr/bin/env python3
"""~set_mode switches where chunks are computed at run time, against a real cloud server.

edge: edge chunks; cloud: cloud chunks only; the server SIGKILLed in cloud mode: the robot is stopped
(the last cmd_vel_vla is a zero twist, no action is published while steps keep coming, counted as
starved) and never driven by the edge; hybrid: the edge drives although the server is gone; edge again;
an unknown mode is refused and the mode in force kept. Waits are on ROS time, except the server's start-up
(a separate process) in wall time.
"""

import ctypes
import signal
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from urllib.parse import urlparse

import requests
import rospy
import rostest
from edge_harness import Camera, Performance, Recorder, wait_for_subscriber
from geometry_msgs.msg import Twist
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.launching import free_port
from vla_msgs.msg import Action
from vla_msgs.srv import SetMode
from vla_msgs.waiting import wait_until

SERVER_START_WALL_S = 240.0
LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: the forked child only makes the call
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the server's child process: SIGKILL when this test ends however it ends (a time limit too)."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
STARVED_WHILE_STOPPED = 10   # control steps without an action that show the robot is held stopped


def moving(t: Twist) -> bool:
    return abs(t.linear.x) + abs(t.linear.y) + abs(t.angular.z) > 1e-6


class CloudModes(unittest.TestCase):
    def test_set_mode_at_run_time(self):
        url = rospy.get_param(names.INFERENCE_NODE + "/cloud_url")
        model = rospy.get_param(names.INFERENCE_NODE + "/model_path")
        port = urlparse(url).port
        self.log = Path(tempfile.mkdtemp(prefix="vla_cloud_modes_")) / "server.log"
        with self.log.open("w") as out:
            server = subprocess.Popen([sys.executable, "-m", "vla_edge.cloud", "--model", model, "--host", "127.0.0.1",
                                       "--http-port", str(port), "--ws-port", str(free_port()), "--torch-threads", "1"],
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      preexec_fn=_die_with_parent)
        try:
            self._run(server, port)
        finally:
            server.kill()
            server.wait(30.0)

    def _healthy(self, server: subprocess.Popen, port: int) -> bool:
        self.assertIsNone(server.poll(), f"cloud server exited:\n{self.log.read_text(errors='replace')[-3000:]}")
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200
        except requests.RequestException:
            return False

    def _run(self, server: subprocess.Popen, port: int) -> None:
        actions = Recorder(names.ACTION, Action)
        commands = Recorder(names.CMD_VEL_VLA, Twist)
        results = Recorder(names.CLOUD_RESULT, String)
        perf = Performance()
        tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
        wait_for_subscriber(tasks)
        rospy.wait_for_service(names.INFERENCE_SET_MODE, timeout=60.0)
        set_mode = rospy.ServiceProxy(names.INFERENCE_SET_MODE, SetMode)
        cam = Camera("rgb8").start()
        try:
            tasks.publish(String(data="go to the red cube"))
            actions.wait_for(lambda m: m.source == "edge", 30.0, "an edge action in edge mode")
            wait_until(lambda: self._healthy(server, port), SERVER_START_WALL_S, "the cloud server's /health",
                       wall_limit_s=SERVER_START_WALL_S)

            reply = set_mode("cloud")
            self.assertTrue(reply.success, reply.message)
            self.assertEqual(reply.mode, "cloud")
            cloud_mark = len(actions.snapshot())
            wait_until(lambda: any(m.source == "cloud" for m in actions.snapshot()[cloud_mark:]), 60.0,
                       "a cloud action in cloud mode", clock=rospy.get_time)
            first_cloud = next(i for i, m in enumerate(actions.snapshot()) if i >= cloud_mark and m.source == "cloud")

            server.kill()  # SIGKILL, a crash: connections reset, then refused
            before = perf.wait_for(lambda d: d["mode"] == "cloud", 30.0, "vla_performance in cloud mode")
            held = perf.wait_for(lambda d: d["starved_steps"] >= before["starved_steps"] + STARVED_WHILE_STOPPED,
                                 60.0, f"{STARVED_WHILE_STOPPED} steps without an action after the kill")
            count_held = len(actions.snapshot())
            later = perf.wait_for(lambda d: d["starved_steps"] >= held["starved_steps"] + STARVED_WHILE_STOPPED,
                                  60.0, "more steps held stopped")
            self.assertEqual(len(actions.snapshot()), count_held, "cloud mode published actions without its server")
            self.assertEqual(later["action_count"], held["action_count"])
            last_command = commands.snapshot()[-1]
            self.assertFalse(moving(last_command), f"the robot was left moving in cloud mode: {last_command}")
            self.assertNotIn("edge", {m.source for m in actions.snapshot()[first_cloud:]},
                             "cloud mode was served by the edge model")
            errors = [json_forms.CLOUD_RESULT.parse(m.data) for m in results.snapshot()]
            self.assertTrue(any(e.get("error") and e["source"] == "none" for e in errors),
                            "no cloud error reported on cloud_vla_result")
            # a killed server is an outage, not an overload: reported as such
            self.assertFalse(any(e["overloaded"] or e.get("error_type") == "cloud_overloaded" for e in errors),
                             "an outage was reported as an overload")
            self.assertEqual(later["cloud_overloaded"], 0)
            self.assertGreater(later["cloud_errors"], 0)

            reply = set_mode("hybrid")
            self.assertTrue(reply.success and reply.mode == "hybrid", reply.message)
            hybrid_mark = len(actions.snapshot())
            wait_until(lambda: sum(m.source == "edge" for m in actions.snapshot()[hybrid_mark:]) >= 10, 30.0,
                       "ten edge actions in hybrid mode without a server", clock=rospy.get_time)
            self.assertTrue(moving(commands.snapshot()[-1]), "hybrid mode did not drive the robot")

            refused = set_mode("warp")
            self.assertFalse(refused.success)
            self.assertEqual(refused.mode, "hybrid")
            reply = set_mode("edge")
            self.assertTrue(reply.success and reply.mode == "edge", reply.message)
            perf.wait_for(lambda d: d["mode"] == "edge", 30.0, "vla_performance in edge mode")
        finally:
            cam.stop()


if __name__ == "__main__":
    rospy.init_node("test_cloud_modes")
    rostest.rosrun("vla_edge", "cloud_modes", CloudModes)
