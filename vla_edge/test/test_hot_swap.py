#!/usr/bin/env python3
"""Hot swap through ~load_model: the new policy takes over without a missed control period; a corrupt one is
refused. "Missed" is counted by the node itself (vla_performance): steps that found no chunk in time
(starved_steps), due steps that could not run (skipped_steps) and steps on a too-old frame (stale_frames)."""

import tempfile
import unittest
from pathlib import Path

import rospy
import rostest
from edge_harness import Camera, Performance, Recorder, wait_for_subscriber
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_edge.testing import write_policy
from vla_msgs import json_forms, names
from vla_msgs.msg import Action

STEPS_AFTER_SWAP = 20
MISSED = ("starved_steps", "skipped_steps", "stale_frames")


class HotSwap(unittest.TestCase):
    def test_swap_without_missed_period_and_refusal(self):
        actions = Recorder(names.ACTION, Action)
        logs = Recorder(names.LOGS_JSON, String)
        perf = Performance()
        tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
        wait_for_subscriber(tasks)
        rospy.wait_for_service(names.INFERENCE_LOAD_MODEL, timeout=60.0)
        load = rospy.ServiceProxy(names.INFERENCE_LOAD_MODEL, Trigger)
        workdir = Path(tempfile.mkdtemp(prefix="vla_edge_swap_"))
        cam = Camera("rgb8").start()
        try:
            tasks.publish(String(data="go to the red cube"))
            actions.wait_for(lambda m: m.model_version == "test-1", 30.0, "an action of the first policy")
            # a baseline once the task runs: what came before (the first chunk's wait) is not the swap's
            first = perf.wait_for(lambda d: d["action_count"] >= 5, 30.0, "five actions counted")
            before = perf.wait_for(lambda d: d["action_count"] > first["action_count"], 30.0, "a newer count")
            rospy.set_param(names.INFERENCE_NODE + "/model_path", str(write_policy("corrupt", workdir / "bad")))
            refused = load()
            self.assertFalse(refused.success)
            self.assertIn("not a loadable TorchScript model", refused.message)
            rospy.set_param(names.INFERENCE_NODE + "/model_path",
                            str(write_policy("image", workdir / "new", version="test-2")))
            swapped = load()
            self.assertTrue(swapped.success, swapped.message)
            new_first = actions.wait_for(lambda m: m.model_version == "test-2", 30.0, "an action of the new policy")
            after = perf.wait_for(
                lambda d: d["model_version"] == "test-2" and d["action_count"] >= before["action_count"]
                + STEPS_AFTER_SWAP, 60.0, f"{STEPS_AFTER_SWAP} steps after the swap")
        finally:
            cam.stop()
        versions = [m.model_version for m in actions.snapshot()]
        first_new = versions.index("test-2")
        self.assertNotIn("test-1", versions[first_new:], "the old model acted after the swap")
        for key in MISSED:
            self.assertEqual(after[key], before[key], f"{key} grew across the swap: {before[key]} -> {after[key]}")
        self.assertEqual(new_first.chunk_index, 0, "the new policy's first step did not run on its own chunk")
        self._check_logs([json_forms.LOGS.parse(m.data) for m in logs.snapshot()])

    def _check_logs(self, entries: list[dict]) -> None:
        """vla_logs carries the seed's entries: one per forward pass, one per action, the refused load."""
        inference = [e for e in entries if e["type"] == "inference"]
        sequence = [e["sequence_number"] for e in inference]
        self.assertGreater(len(sequence), 10)
        self.assertEqual(sequence, sorted(set(sequence)), "inference sequence numbers are not increasing")
        self.assertTrue(all(len(e["output_action"]) == 6 and e["input_size"] > 0 for e in inference))
        acted = [e for e in entries if e["type"] == "action"]
        self.assertGreater(len(acted), 10)
        self.assertTrue(all(e["task"] == "go to the red cube" and len(e["action"]) == 6 for e in acted))
        refused = [e for e in entries if e["type"] == "error" and e["error_type"] == "load_model_refused"]
        self.assertEqual(len(refused), 1)
        self.assertIn("bad", refused[0]["context"]["model_path"])


if __name__ == "__main__":
    rospy.init_node("test_hot_swap")
    rostest.rosrun("vla_edge", "hot_swap", HotSwap)
