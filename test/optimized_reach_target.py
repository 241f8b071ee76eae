#!/usr/bin/env python3
"""An optimised policy (by default the shipped reference_policy_fast.onnx), run by inference_node through
safety_node, is the one the node loaded (its sidecar's version in vla/inference_stats) and reaches the
named object in at least ~required of ~episodes seeded episodes — edge_reach_target's episodes, judged
the same way (reach_episode), on the simulator's clock. Then a torch int8 variant (dynamic, linear
layers) is built from the reference by vla_edge.optimize, hot-swapped in through
inference_node/load_model, and reaches at least ~swap_required of ~swap_episodes further episodes; then
so do the shipped channel-pruned (~pruned_path) and distilled (~distilled_path) variants, each swapped
in the same way (pre-built beside the reference: a distillation takes minutes of rollouts, more than a
test may spend; vla_sim's unit tests check their sha256 and lineage back to the reference). The swaps
skip a layout that starts within reach of its target (nothing to drive, so it would fail every model).
"""

import json
import sys
import tempfile
from pathlib import Path

import rospy
import rostest
from std_msgs.msg import String

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_reach_target import FIRST_SEED, STARTUP_S, TARGETS, ReachTarget
from std_srvs.srv import Trigger

from vla_edge.optimize.quantize import quantize
from vla_msgs import names
from vla_msgs.srv import ResetSim
from vla_sim.rollout import ROBOT_ID, make_world


class OptimizedReachTarget(ReachTarget):
    def test_reaches_named_object(self):
        model = Path(rospy.get_param("~model_path"))
        episodes, required = int(rospy.get_param("~episodes")), int(rospy.get_param("~required"))
        version = json.loads(model.with_suffix(".json").read_text())["version"]
        self._wait(lambda: self.state is not None and self.stats is not None and self.tasks.get_num_connections() >= 2,
                   STARTUP_S, "the stack (sim/state, inference stats, task_command subscribers)")
        self.assertEqual(self.stats.model_version, version, f"inference_node runs another model than {model.name}")
        rospy.wait_for_service(names.SIM_RESET, timeout=30.0)
        reset = rospy.ServiceProxy(names.SIM_RESET, ResetSim)
        results = [self._episode(reset, FIRST_SEED + e, TARGETS[e % len(TARGETS)], e) for e in range(episodes)]
        self.tasks.publish(String(data="standby"))
        self.assertGreaterEqual(sum(results), required, f"{model.name} reached {sum(results)}/{episodes}: {results}")
        with tempfile.TemporaryDirectory(prefix="optimized_reach_") as tmp:
            int8 = Path(tmp) / "reference_policy_int8_linear.pt"
            version = quantize(Path(rospy.get_param("~reference_path")), int8, "torch-dynamic")["version"]
            first = self._swap_and_drive(reset, int8, version, episodes)
        for key in ("~pruned_path", "~distilled_path"):
            shipped = Path(rospy.get_param(key))
            version = json.loads(shipped.with_suffix(".json").read_text())["version"]
            first = self._swap_and_drive(reset, shipped, version, first)

    def _swap_and_drive(self, reset, model: Path, version: str, first: int) -> int:
        """Points inference_node at `model`, hot-swaps it in, and drives ~swap_episodes episodes from episode
        `first` on; returns the episode after the last one driven."""
        swap_episodes, swap_required = int(rospy.get_param("~swap_episodes")), int(rospy.get_param("~swap_required"))
        rospy.set_param(names.INFERENCE_NODE + "/model_path", str(model))
        rospy.wait_for_service(names.INFERENCE_LOAD_MODEL, timeout=30.0)
        answer = rospy.ServiceProxy(names.INFERENCE_LOAD_MODEL, Trigger)()
        self.assertTrue(answer.success, f"{model.name}: {answer.message}")
        self._wait(lambda: self.stats.model_version == version, 30.0, f"vla/inference_stats naming {version}")
        chosen = _drivable(first, swap_episodes)
        results = [self._episode(reset, FIRST_SEED + e, TARGETS[e % len(TARGETS)], e) for e in chosen]
        self.tasks.publish(String(data="standby"))
        self.assertGreaterEqual(sum(results), swap_required,
                                f"{model.name} reached {sum(results)}/{swap_episodes} (episodes {chosen}): {results}")
        return chosen[-1] + 1


def _drivable(first: int, count: int) -> list[int]:
    """The next `count` episodes from `first` whose layout does not start within reach of the target: such an
    episode (100010's green cylinder) never shows the robot driving, so it judges no model."""
    chosen, e = [], first
    while len(chosen) < count:
        if not make_world(FIRST_SEED + e, TARGETS[e % len(TARGETS)], "").reached(ROBOT_ID):
            chosen.append(e)
        e += 1
    return chosen


if __name__ == "__main__":
    rospy.init_node("optimized_reach_target")
    rostest.rosrun("vla_deployment", "optimized_reach_target", OptimizedReachTarget)
