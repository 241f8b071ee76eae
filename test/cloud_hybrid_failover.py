#!/usr/bin/env python3
"""Hybrid mode against a real cloud server that is killed mid-episode and restarted.

The test runs `python -m vla_edge.cloud` itself (same policy file as the robot, on the port of the
inference node's ~cloud_url), waits for cloud-computed actions, SIGKILLs the server's process group,
and checks that the edge model drives on: every control step still publishes an action (the node's own
counters of missed periods, starved_steps, skipped_steps and stale_frames, do not move from before the
kill to after the return), the actions after the kill come from the edge, and once the server is
restarted chunks come from the cloud again. Node-side times are ROS time (the simulator's /clock);
only the server's start-up, a separate process, is waited for in wall time.
"""

import ctypes
import signal
import subprocess
import tempfile
import threading
import unittest
from pathlib import Path
from urllib.parse import urlparse

import requests
import rospy
import rostest
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.launching import free_port
from vla_msgs.msg import Action
from vla_msgs.waiting import wait_until

MISSED = ("starved_steps", "skipped_steps", "stale_frames")
CLOUD_ACTIONS_FIRST = 10       # cloud-computed actions before the kill
EDGE_ACTIONS_AFTER_KILL = 30   # actions after the kill, all of them judged
SERVER_START_WALL_S = 240.0    # torch and the sentence model load in ~30 s on a loaded 2-core machine


LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: the forked child only makes the call
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the server's child process: SIGKILL when this test process ends however it ends (a rostest
    time limit included), so that no server outlives the test and holds its port."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class CloudServerProcess:
    """`python -m vla_edge.cloud` as a child of this test, in its process group."""

    def __init__(self, model: str, port: int, log_dir: Path):
        self.model, self.port, self.log_dir = model, port, log_dir
        self.proc: subprocess.Popen | None = None
        self.log: Path | None = None

    def start(self) -> None:
        self.log = self.log_dir / f"cloud_server_{len(list(self.log_dir.iterdir())) + 1}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                ["python3", "-m", "vla_edge.cloud", "--model", self.model, "--host", "127.0.0.1",
                 "--http-port", str(self.port), "--ws-port", str(free_port()), "--torch-threads", "1"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        wait_until(self._healthy, SERVER_START_WALL_S, "the cloud server's /health",
                   wall_limit_s=SERVER_START_WALL_S)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"cloud server exited:\n{self.log.read_text(errors='replace')[-3000:]}")
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL, as a crash: no graceful shutdown, the kernel resets its sockets
        self.proc.wait(30.0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20.0)
            except subprocess.TimeoutExpired:
                self.kill()


class HybridFailover(unittest.TestCase):
    def setUp(self):
        self.lock = threading.Lock()
        self.actions: list[Action] = []
        self.results: list[dict] = []
        self.perf: dict = {}
        rospy.Subscriber(names.ACTION, Action, self._on_action, queue_size=100)
        rospy.Subscriber(names.CLOUD_RESULT, String, self._on_result, queue_size=100)
        rospy.Subscriber(names.PERFORMANCE, String, self._on_perf, queue_size=10)
        self.tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
        url = rospy.get_param(names.INFERENCE_NODE + "/cloud_url")
        model = rospy.get_param(names.INFERENCE_NODE + "/model_path")
        self.server = CloudServerProcess(model, urlparse(url).port, Path(tempfile.mkdtemp(prefix="vla_cloud_")))

    def tearDown(self):
        self.server.stop()

    def _on_action(self, msg: Action) -> None:
        with self.lock:
            self.actions.append(msg)

    def _on_result(self, msg: String) -> None:
        with self.lock:
            self.results.append(json_forms.CLOUD_RESULT.parse(msg.data))

    def _on_perf(self, msg: String) -> None:
        with self.lock:
            self.perf = json_forms.PERFORMANCE.parse(msg.data)

    def _count(self, store: list) -> int:
        with self.lock:
            return len(store)

    def _since(self, store: list, mark: int) -> list:
        with self.lock:
            return store[mark:]

    def _wait(self, condition, timeout_s: float, what: str):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)

    def _perf_after(self, action_count: int) -> dict:
        """The first vla_performance that counts at least action_count actions."""
        return self._wait(lambda: self.perf if self.perf.get("action_count", -1) >= action_count else None,
                          60.0, f"vla_performance counting {action_count} actions")

    def test_edge_takes_over_without_a_missed_period_and_cloud_comes_back(self):
        self.server.start()
        self.tasks.publish(String(data="go to the red cube"))
        self._wait(lambda: sum(a.source == "cloud" for a in self._since(self.actions, 0)) >= CLOUD_ACTIONS_FIRST,
                   120.0, f"{CLOUD_ACTIONS_FIRST} actions computed by the cloud")
        before = dict(self._perf_after(self.perf.get("action_count", 0) + 1))

        kill_mark, result_mark = self._count(self.actions), self._count(self.results)
        self.server.kill()
        self._wait(lambda: self._count(self.actions) >= kill_mark + EDGE_ACTIONS_AFTER_KILL, 60.0,
                   f"{EDGE_ACTIONS_AFTER_KILL} actions after the kill")
        after_kill = self._since(self.actions, kill_mark)[:EDGE_ACTIONS_AFTER_KILL]
        sources = [a.source for a in after_kill]
        first_edge = sources.index("edge")
        # a chunk the server computed before dying may serve a step or two; after the first edge step, edge only
        self.assertLessEqual(first_edge, 3, f"the edge took over only after {first_edge} steps: {sources}")
        self.assertNotIn("cloud", sources[first_edge:], f"cloud actions while the server was dead: {sources}")
        self.assertTrue(any(abs(a.twist.linear.x) + abs(a.twist.angular.z) > 1e-3 for a in after_kill[first_edge:]),
                        "the edge model did not drive the robot")
        errors = [r for r in self._since(self.results, result_mark) if r.get("error")]
        self.assertTrue(errors, "no cloud error reported on cloud_vla_result after the kill")
        self.assertTrue(all(r["source"] == "edge" for r in errors), "a failed hybrid request not served by the edge")

        restart_mark = self._count(self.actions)
        self.server.start()
        self._wait(lambda: any(a.source == "cloud" for a in self._since(self.actions, restart_mark)), 120.0,
                   "an action computed by the restarted cloud server")
        back = self._since(self.actions, restart_mark)
        after = self._perf_after(self.perf.get("action_count", 0) + 1)
        for key in MISSED:
            self.assertEqual(after[key], before[key], f"{key} grew across the kill and the restart: "
                                                      f"{before[key]} -> {after[key]}")
        self.assertGreater(after["cloud_fallbacks"], before["cloud_fallbacks"])
        self.assertGreater(after["edge_actions"], before["edge_actions"])
        self.assertGreater(after["cloud_actions"], before["cloud_actions"])
        self.assertTrue(all(a.source in ("edge", "cloud") for a in back))
        ok = [r for r in self._since(self.results, result_mark) if not r.get("error")]
        self.assertTrue(ok and ok[-1]["model_version"] and len(ok[-1]["actions"][0]) == 6)


if __name__ == "__main__":
    rospy.init_node("test_cloud_hybrid_failover")
    rostest.rosrun("vla_deployment", "cloud_hybrid_failover", HybridFailover)
