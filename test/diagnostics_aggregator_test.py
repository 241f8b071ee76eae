#!/usr/bin/env python3
"""/diagnostics_agg groups the suite as config/diagnostic_analyzers.yaml says: real nodes in robot_1's
namespace (safety_node, health_node, alert_node) and sample statuses for the nodes not started here, named
as diagnostic_updater names theirs ("<node>: <task>", the node with its namespace)."""

import threading
import unittest

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from vla_msgs import names
from vla_msgs.waiting import wait_until

# Statuses of nodes this test does not start, named as their Diagnostics tasks are (vla_edge's inference_node,
# vla_sim's sim_node, and the fleet nodes of INTERFACES.md).
SAMPLES = {
    "Edge": ["robot_1/inference_node: policy", "robot_1/inference_node: control loop",
             "robot_1/inference_node: image age"],
    "Simulator": ["sim_node: realtime", "sim_node: robots"],
    "Fleet": ["robot_1/robot_agent_node: agent", "robot_1/ota_updater_node: updates",
              "fleet_manager_node: manager", "scheduler_node: queue", "maintenance_node: tasks"],
}
# What the real nodes publish (their Diagnostics task names).
REAL = {
    "Safety": ["robot_1/safety_node: supervisor", "robot_1/safety_node: inputs",
               "robot_1/safety_node: cmd_vel output rate"],
    "Monitoring": ["robot_1/health_node: health", "robot_1/health_node: inputs", "robot_1/alert_node: alerts",
                   "robot_1/alert_node: rules", "robot_1/alert_node: inputs"],
}
STRANGER = "camera_driver: frames"   # not the suite's: Other


def agg_name(group: str, name: str) -> str:
    """Where the aggregator puts a status: under its group, a '/' of the name (the namespace) as a space."""
    return f"/{group}/{name.replace('/', ' ')}"


class DiagnosticsAggregatorTest(unittest.TestCase):
    def test_groups(self):
        lock = threading.Lock()
        latest: dict[str, DiagnosticStatus] = {}

        def on_agg(msg: DiagnosticArray) -> None:
            with lock:
                latest.clear()
                latest.update({s.name: s for s in msg.status})

        rospy.Subscriber(names.DIAGNOSTICS_AGG, DiagnosticArray, on_agg, queue_size=5)
        pub = rospy.Publisher(names.DIAGNOSTICS, DiagnosticArray, queue_size=5)

        def publish_samples(_event) -> None:
            msg = DiagnosticArray()
            msg.header.stamp = rospy.Time.now()
            msg.status = [DiagnosticStatus(level=DiagnosticStatus.OK, name=name, message="sample",
                                           hardware_id="robot_1")
                          for name in (*[n for group in SAMPLES.values() for n in group], STRANGER)]
            pub.publish(msg)

        rospy.Timer(rospy.Duration(0.5), publish_samples)
        groups = {**SAMPLES, **REAL}

        def missing() -> list[str]:
            with lock:
                have = set(latest)
            return [agg_name(group, name) for group, items in groups.items() for name in items
                    if agg_name(group, name) not in have] + [f"/{g}" for g in groups if f"/{g}" not in have]

        try:
            wait_until(lambda: not missing(), 30.0, "every group and its items on /diagnostics_agg",
                       clock=rospy.get_time)
        except AssertionError as exc:
            with lock:
                have = sorted(latest)
            raise AssertionError(f"{exc}; missing {missing()}; /diagnostics_agg has {have}") from None

        with lock:
            have = dict(latest)
        self.assertIn(agg_name("Other", STRANGER), have, "a status that is not the suite's belongs under Other")
        others = [n for n in have if n.startswith("/Other/") and n != agg_name("Other", STRANGER)]
        self.assertEqual(others, [], "statuses of the suite under Other: the analyzers miss them")
        for group, items in groups.items():
            worst = max(have[agg_name(group, name)].level for name in items)
            self.assertGreaterEqual(have[f"/{group}"].level, worst, f"/{group} hides its worst item")
            for name in items:
                self.assertEqual(have[agg_name(group, name)].hardware_id, "robot_1", name)
        # the samples are all OK, so their groups are; health_node without a camera is not, nor is Monitoring
        self.assertEqual([have[f"/{group}"].level for group in SAMPLES], [DiagnosticStatus.OK] * len(SAMPLES))
        self.assertGreater(have[agg_name("Monitoring", "robot_1/health_node: health")].level, DiagnosticStatus.OK)

if __name__ == "__main__":
    rospy.init_node("diagnostics_aggregator_test")
    rostest.rosrun("vla_deployment", "diagnostics_aggregator", DiagnosticsAggregatorTest)
