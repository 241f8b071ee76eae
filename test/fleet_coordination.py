#!/usr/bin/env python3
"""A two-robot coordinated task in simulation (fleet.launch with two robots, the real fleet manager
and agents): submitted through /fleet_manager/submit_task with `robots: 2` and an action sequence of
two phases, each robot to its own object in each phase. Asserted in ROS (simulated) time from
/vla_coordination and /task_feedback:

- the manager announces phase 0 (`started`), then phase 1 (`phase`), then `succeeded`, in that order;
- every step's `started` of phase 1 comes after both steps of phase 0 said `succeeded` (the barrier),
  each step succeeds once, on the robot the coordination named, after sim/state said it reached;
- the coordinated task ends succeeded, its robots available again.
"""

import itertools
import json
import math
import sys
import threading
import unittest
from pathlib import Path

import rospy
import rostest
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.srv import ListTasks, SubmitTask
from vla_msgs.tasks import normalise

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_watch import TARGETS, FleetWatch

ROBOTS = ("robot_1", "robot_2")
STARTUP_S = 240.0   # two policies and sentence models load while the simulator runs
TASK_S = 400.0      # simulated seconds for both phases (a boxed-in step fails after 90 s and is retried)
ROBOT_RADIUS_M = 0.2


def _segment_distance(p, a, b) -> float:
    """Distance from point p to the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2))
    return math.hypot(a[0] + t * dx - p[0], a[1] + t * dy - p[1])


class FleetCoordination(unittest.TestCase):
    def setUp(self):
        self.watch = FleetWatch()
        self.lock = threading.Lock()
        self.coordination: list[tuple[dict, float]] = []  # each /vla_coordination with its arrival ROS time
        rospy.Subscriber(names.COORDINATION, String, self._on_coordination, queue_size=100)
        self.watch.wait(lambda: all(self.watch.robot_status(r).get("status") == "available" for r in ROBOTS)
                        and self.watch.sim is not None, STARTUP_S, "both robots available")
        rospy.wait_for_service(names.FLEET_SUBMIT_TASK, timeout=STARTUP_S)
        self.submit = rospy.ServiceProxy(names.FLEET_SUBMIT_TASK, SubmitTask)
        self.list = rospy.ServiceProxy(names.FLEET_LIST_TASKS, ListTasks)

    def _on_coordination(self, msg: String) -> None:
        doc = json_forms.COORDINATION.parse(msg.data)
        with self.lock:
            self.coordination.append((doc, rospy.get_time()))

    def _events(self, task_id: str) -> list[tuple[str, int, float]]:
        with self.lock:
            return [(d["event"], d["phase"], t) for d, t in self.coordination if d["task"]["id"] == task_id]

    def _plan(self) -> list[list[str]]:
        """The two phases (a target per robot slot in each) whose straight drives stay clearest of every
        other object and robot, the manager's pairing of robots to the first phase's slots (least total
        distance) foreseen: the reference policy drives straight at its target, and a robot whose way
        runs through an object is boxed in, which would test the policy, not the barrier."""
        w = self.watch
        with w.lock:
            objects = {o["name"]: (o["x"], o["y"], o["size"]) for o in w.sim["objects"]}
        start = {r: (w.sim_robot(r)["x"], w.sim_robot(r)["y"]) for r in ROBOTS}

        def stop(at, name):
            """Where a robot driving from `at` stops: at the reach distance, or where it is if already there."""
            x, y, size = objects[name]
            d, keep = math.dist(at, (x, y)), 0.5 + size + ROBOT_RADIUS_M
            return at if d <= keep else (at[0] + (x - at[0]) * (d - keep) / d, at[1] + (y - at[1]) * (d - keep) / d)

        def clearance(a, b, target, robots):
            gaps = [_segment_distance((x, y), a, b) - size - ROBOT_RADIUS_M
                    for name, (x, y, size) in objects.items() if name != target]
            return min(gaps + [_segment_distance(p, a, b) - 2 * ROBOT_RADIUS_M for p in robots])

        plans = []
        for phase0 in itertools.permutations(TARGETS, 2):
            for phase1 in itertools.permutations([t for t in TARGETS if t not in phase0], 2):
                pairs = min(itertools.permutations(ROBOTS), key=lambda rs, p0=phase0: sum(
                    math.dist(start[r], objects[t][:2]) for r, t in zip(rs, p0, strict=True)))
                ends0 = [stop(start[r], phase0[i]) for i, r in enumerate(pairs)]
                ends1 = [stop(ends0[i], phase1[i]) for i in range(2)]
                gaps = []
                for i, r in enumerate(pairs):
                    o = 1 - i
                    gaps.append(clearance(start[r], ends0[i], phase0[i], [start[pairs[o]], ends0[o]]))
                    gaps.append(clearance(ends0[i], ends1[i], phase1[i], [ends0[o], ends1[o]]))
                length = sum(math.dist(start[r], ends0[i]) + math.dist(ends0[i], ends1[i]) for i, r in enumerate(pairs))
                plans.append((-min(gaps), length, [list(phase0), list(phase1)]))
        gap, length, plan = min(plans)
        print(f"plan {plan}: clearance {-gap:.2f} m, {length:.1f} m of driving", flush=True)
        return plan

    def test_two_robot_phases_in_order(self):
        w = self.watch
        plan = self._plan()
        sequence = [[{"description": f"go to the {t}", "place": t} for t in phase] for phase in plan]
        reply = self.submit("visit the four corners in pairs", 1, "",
                            json.dumps({"robots": 2, "action_sequence": sequence}))
        self.assertTrue(reply.success, reply.message)
        task_id = reply.task_id
        w.wait(lambda: any(e == "succeeded" for e, _p, _t in self._events(task_id))
               or any(e in ("failed", "cancelled") for e, _p, _t in self._events(task_id)),
               TASK_S, "the coordinated task ended")
        events = self._events(task_id)
        print(f"coordination events: {[(e, p, round(t, 1)) for e, p, t in events]}", flush=True)
        # a step boxed in fails and is retried on its robot (`retry`): the phases' order is what counts
        self.assertEqual([(e, p) for e, p, _t in events if e != "retry"],
                         [("started", 0), ("phase", 1), ("succeeded", 1)])
        with self.lock:
            docs = [d for d, _t in self.coordination if d["task"]["id"] == task_id]
        robots = docs[0]["robots"]
        self.assertEqual(sorted(robots), sorted(ROBOTS))
        self.assertEqual(docs[-1]["robots"], robots, "phase 1 runs on the robots of phase 0")

        with w.lock:
            steps = [(f, t) for f, t in zip(w.feedback, w.feedback_at, strict=True)
                     if f.get("coordinated_task") == task_id]
        by_phase = {n: [(f, t) for f, t in steps if f["phase"] == n] for n in (0, 1)}
        for n in (0, 1):
            done = [(f, t) for f, t in by_phase[n] if f["state"] == "succeeded"]
            self.assertEqual(sorted(f["robot_id"] for f, _t in done), sorted(ROBOTS), f"phase {n} successes")
            for f, arrived in done:
                slot = robots.index(f["robot_id"])
                description = f"go to the {plan[n][slot]}"
                reached = w.first_reached(f["robot_id"], normalise(description))
                self.assertIsNotNone(reached, f"{f['robot_id']} phase {n} succeeded without sim/state reached")
                self.assertLessEqual(reached, arrived)
            self.assertEqual([f["state"] for f, _t in by_phase[n] if f["state"] not in ("started", "succeeded",
                                                                                      "failed")],
                             [], f"phase {n}: a step was handed back")
        # the barrier: no phase-1 step starts before the last phase-0 step succeeded (ROS time and order)
        phase0_done = max(t for f, t in by_phase[0] if f["state"] == "succeeded")
        phase1_starts = [t for f, t in by_phase[1] if f["state"] == "started"]
        self.assertGreaterEqual(len(phase1_starts), 2)
        self.assertGreaterEqual(min(phase1_starts), phase0_done)
        last0 = max(i for i, (f, _t) in enumerate(steps) if f["phase"] == 0 and f["state"] == "succeeded")
        first1 = min(i for i, (f, _t) in enumerate(steps) if f["phase"] == 1)
        self.assertLess(last0, first1)
        phase_event_at = next(t for e, _p, t in events if e == "phase")
        self.assertGreaterEqual(phase_event_at, phase0_done)

        parent = [t for t in self.list("").tasks if t.id == task_id]
        self.assertEqual(parent[0].state, "succeeded")
        w.wait(lambda: all(w.robot_status(r).get("status") == "available" for r in ROBOTS), 30.0,
               "both robots available again")


if __name__ == "__main__":
    rospy.init_node("fleet_coordination_test")
    rostest.rosrun("vla_deployment", "fleet_coordination", FleetCoordination)
