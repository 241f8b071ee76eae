"""What the fleet system tests watch: /robot_status, /task_feedback and sim/state, recorded with ROS time.

Every document is parsed with its vla_msgs.json_forms form, so a test fails on a message the
protocol would refuse; waits go through vla_msgs.waiting on ROS time.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import rospy
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.waiting import wait_until

TARGETS = ("red cube", "blue ball", "green cylinder", "yellow cone")


class FleetWatch:
    def __init__(self, sim_state_topic: str = "/" + names.SIM_STATE):
        self.lock = threading.Lock()
        self.status: dict[str, dict] = {}             # robot_id -> newest /robot_status
        self.feedback: list[dict] = []                # every /task_feedback, in arrival order
        self.sim: dict | None = None                  # newest sim/state
        self.feedback_at: list[float] = []            # ROS time each feedback arrived
        self.reached_at: dict[tuple[str, str], float] = {}  # (robot, task text) -> first sim time seen reached
        # A trace for the failure message: each robot's pose, target and distance once a simulated second.
        self.trace: list[tuple[float, dict]] = []
        rospy.Subscriber(names.ROBOT_STATUS_JSON, String, self._on_status, queue_size=50)
        rospy.Subscriber(names.TASK_FEEDBACK, String, self._on_feedback, queue_size=200)
        rospy.Subscriber(sim_state_topic, String, self._on_sim, queue_size=1, buff_size=1 << 20)

    def _on_status(self, msg: String) -> None:
        doc = json_forms.ROBOT_STATUS.parse(msg.data)
        with self.lock:
            self.status[doc["robot_id"]] = doc

    def _on_feedback(self, msg: String) -> None:
        doc = json_forms.TASK_FEEDBACK.parse(msg.data)
        with self.lock:
            self.feedback.append(doc)
            self.feedback_at.append(rospy.get_time())

    def _on_sim(self, msg: String) -> None:
        doc = json_forms.SIM_STATE.parse(msg.data)
        with self.lock:
            self.sim = doc
            for robot_id, robot in doc["robots"].items():
                if robot.get("reached") is True and robot.get("task"):
                    self.reached_at.setdefault((robot_id, robot["task"]), doc["timestamp"])
            if not self.trace or doc["timestamp"] >= self.trace[-1][0] + 1.0:
                self.trace.append((doc["timestamp"], {
                    rid: (r.get("x"), r.get("y"), r.get("target"), r.get("distance_to_target"), r.get("collisions"))
                    for rid, r in doc["robots"].items()}))

    # ---- queries ---------------------------------------------------------------------------------
    def robot_status(self, robot_id: str) -> dict:
        with self.lock:
            return dict(self.status.get(robot_id, {}))

    def sim_robot(self, robot_id: str) -> dict:
        with self.lock:
            return dict(((self.sim or {}).get("robots") or {}).get(robot_id) or {})

    def states_of(self, task_id: str) -> list[str]:
        with self.lock:
            return [f["state"] for f in self.feedback if f["task_id"] == task_id]

    def feedback_of(self, task_id: str, state: str) -> list[tuple[dict, float]]:
        """Each feedback of `task_id` in `state`, with the ROS time it arrived."""
        with self.lock:
            return [(f, t) for f, t in zip(self.feedback, self.feedback_at, strict=True)
                    if f["task_id"] == task_id and f["state"] == state]

    def first_reached(self, robot_id: str, task_text: str) -> float | None:
        """Simulated time sim/state first said `robot_id` reached the target of `task_text`."""
        with self.lock:
            return self.reached_at.get((robot_id, task_text))

    def nearest_target(self, robot_id: str, exclude: tuple[str, ...] = ()) -> str:
        """The target object nearest the robot (a short drive keeps a test's scope tight)."""
        robot = self.sim_robot(robot_id)
        with self.lock:
            objects = [o for o in self.sim["objects"] if o["name"] in TARGETS and o["name"] not in exclude]
        return min(objects, key=lambda o: math.hypot(o["x"] - robot["x"], o["y"] - robot["y"]))["name"]

    def explain(self, since: float = 0.0) -> str:
        """The objects, then each robot's pose, target, distance and collisions once a simulated
        second from `since`: what a failure message needs to tell a blocked robot from a slow one."""
        with self.lock:
            objects = [(o["name"], o["x"], o["y"]) for o in (self.sim or {}).get("objects", [])]
            trace = [(t, r) for t, r in self.trace if t >= since]
        lines = ["objects: " + ", ".join(f"{n} ({x:.2f}, {y:.2f})" for n, x, y in objects)]
        for t, robots in trace:
            lines.append(f"t={t:.0f}: " + "; ".join(
                f"{rid} ({x:.2f}, {y:.2f}) {target or '-'} d={d if d is None else round(d, 2)} c={c}"
                for rid, (x, y, target, d, c) in sorted(robots.items())))
        return "\n".join(lines)

    def wait(self, condition: Callable[[], object], timeout_s: float, what: str) -> object:
        return wait_until(condition, timeout_s, what, clock=rospy.get_time)


def assignment(robot_id: str, task_id: str, description: str, **task) -> String:
    """A /task_assignment as the fleet manager sends it."""
    now = rospy.get_time()
    return String(data=json_forms.TASK_ASSIGNMENT.build(
        timestamp=now, robot_id=robot_id, assignment_time=now,
        task={"id": task_id, "description": description, "priority": 0, "parameters_json": "{}", **task}))
