"""fleet_manager_node: FleetManager behind /fleet_manager/{submit_task,cancel_task,list_tasks}, the JSON
submit topic, /robot_status and /task_feedback in, /task_assignment and /vla_coordination out.

Rounds run on a ROS timer (the simulator's /clock drives them); every callback takes the one lock
around the core and goes through counted_callback, so bad input is counted and dropped.
"""

from __future__ import annotations

import sys
import threading
import time

import rospy
from std_msgs.msg import String

from vla_fleet.coordination import GroupChange, coordination_fields
from vla_fleet.manager import (
    FleetManager,
    FleetManagerConfig,
    RoundResult,
    TaskRejectedError,
    load_places,
    parse_submit_document,
    task_document,
)
from vla_fleet.store import ACTIVE_STATES, PENDING, StoredTask, StoreError, open_store
from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.config import CONFIG_EXIT_CODE, ConfigError
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import ERROR, OK, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.msg import Task
from vla_msgs.srv import (
    CancelTask,
    CancelTaskResponse,
    ListTasks,
    ListTasksResponse,
    SubmitTask,
    SubmitTaskResponse,
)

HARDWARE_ID = "fleet"
_BAD_INPUT = (ValueError, TypeError, KeyError, AttributeError, UnicodeError)


class FleetManagerNode:
    def __init__(self, config: FleetManagerConfig, manager: FleetManager):
        self.cfg = config
        self.core = manager
        self.lock = threading.Lock()
        self.bad = BadInputCounter(clock=rospy.get_time)
        self.last_round_ms = 0.0
        self.last_error = ""

        self.assign_pub = rospy.Publisher(names.TASK_ASSIGNMENT, String, queue_size=100)
        self.coordination_pub = rospy.Publisher(names.COORDINATION, String, queue_size=100)
        self.diag = Diagnostics(HARDWARE_ID)
        self.diag.task("fleet manager", self._diag_fleet)
        self.diag.bad_input(self.bad, (names.FLEET_SUBMIT_TASK, names.FLEET_CANCEL_TASK, names.FLEET_LIST_TASKS,
                                       names.FLEET_SUBMIT_JSON, names.ROBOT_STATUS_JSON, names.TASK_FEEDBACK,
                                       names.SIM_STATE))
        rospy.Service(names.FLEET_SUBMIT_TASK, SubmitTask, self._on_submit)
        rospy.Service(names.FLEET_CANCEL_TASK, CancelTask, self._on_cancel)
        rospy.Service(names.FLEET_LIST_TASKS, ListTasks, self._on_list)
        rospy.Subscriber(names.FLEET_SUBMIT_JSON, String, self._on_submit_json, queue_size=100)
        rospy.Subscriber(names.ROBOT_STATUS_JSON, String, self._on_status, queue_size=1000)
        rospy.Subscriber(names.TASK_FEEDBACK, String, self._on_feedback, queue_size=1000)
        rospy.Subscriber(names.SIM_STATE, String, self._on_sim_state, queue_size=1)
        self.timer = rospy.Timer(rospy.Duration(config.assign_period_s), self._on_tick)

    # -- services: a refusal is an answer (success false, the reason), and counted --------------

    def _on_submit(self, req) -> SubmitTaskResponse:
        try:
            with self.lock:
                task, new = self.core.submit_once(req.description, req.priority, req.robot_id, req.parameters_json)
        except TaskRejectedError as exc:
            self.bad.reject(names.FLEET_SUBMIT_TASK, str(exc))
            return SubmitTaskResponse(success=False, message=f"rejected: {exc}", task_id="")
        except StoreError as exc:
            return SubmitTaskResponse(success=False, message=f"store error: {exc}", task_id="")
        if not new:  # its submit_key names this task: the same submit again (an answer was lost), not a new one
            return SubmitTaskResponse(success=True, message=f"already submitted with this submit_key ({task.state})",
                                      task_id=task.id)
        return SubmitTaskResponse(success=True, message=f"queued at priority {task.priority}", task_id=task.id)

    def _on_cancel(self, req) -> CancelTaskResponse:
        with self.lock:
            was, message = self.core.cancel(req.task_id)
            changes = self.core.take_changes()
        self._publish_changes(changes)
        if was is None:
            self.bad.reject(names.FLEET_CANCEL_TASK, message)
            return CancelTaskResponse(success=False, message=message)
        if was.state in ACTIVE_STATES and was.robots == 1:
            self._send(was, "cancelled")
        return CancelTaskResponse(success=was.state in (PENDING, *ACTIVE_STATES), message=message)

    def _on_list(self, req) -> ListTasksResponse:
        try:
            with self.lock:
                tasks = self.core.list_tasks(req.state)
        except ValueError as exc:
            self.bad.reject(names.FLEET_LIST_TASKS, str(exc))
            return ListTasksResponse(tasks=[])
        return ListTasksResponse(tasks=[_task_msg(t) for t in tasks])

    # -- topics -------------------------------------------------------------------------------

    @counted_callback(names.FLEET_SUBMIT_JSON, _BAD_INPUT)
    def _on_submit_json(self, msg: String) -> None:
        description, priority, robot_id, params = parse_submit_document(msg.data)
        with self.lock:
            self.core.submit(description, priority, robot_id, params)

    @counted_callback(names.ROBOT_STATUS_JSON, _BAD_INPUT)
    def _on_status(self, msg: String) -> None:
        doc = json_forms.ROBOT_STATUS.parse(msg.data)
        with self.lock:
            stale = self.core.on_robot_status(doc, rospy.get_time())
            changes = self.core.take_changes()
        self._publish_changes(changes)
        for task_id in stale:
            # the robot runs a task that is no longer its own: tell it to stop
            task = self.core.store.get(task_id)
            if task is not None:
                self._send(task, "cancelled", robot_id=doc["robot_id"])
            else:
                self._publish(doc["robot_id"], {"id": task_id, "state": "cancelled"})

    @counted_callback(names.TASK_FEEDBACK, _BAD_INPUT)
    def _on_feedback(self, msg: String) -> None:
        doc = json_forms.TASK_FEEDBACK.parse(msg.data)
        with self.lock:
            self.core.on_feedback(doc, rospy.get_time())
            changes = self.core.take_changes()
        self._publish_changes(changes)

    @counted_callback(names.SIM_STATE, _BAD_INPUT)
    def _on_sim_state(self, msg: String) -> None:
        doc = json_forms.SIM_STATE.parse(msg.data)
        places = {str(o["name"]): (float(o["x"]), float(o["y"])) for o in doc["objects"]}
        with self.lock:
            self.core.set_places(places)

    def _on_tick(self, _event: rospy.timer.TimerEvent) -> None:
        try:
            start = time.perf_counter()
            with self.lock:
                result: RoundResult = self.core.tick(rospy.get_time())
            self.last_round_ms = (time.perf_counter() - start) * 1e3
            self._publish_changes(result.groups)
            for task in (*result.assigned, *result.resend):
                self._send(task)
            self.last_error = ""
        except StoreError as exc:
            self.last_error = str(exc)
            rospy.logerr_throttle(5.0, f"fleet_manager_node: store error, round skipped: {exc}")
        except Exception as exc:  # an exception would end rospy's timer thread: log it, try next round
            self.last_error = f"{type(exc).__name__}: {exc}"
            rospy.logerr_throttle(5.0, "fleet_manager_node: round failed", exc_info=True)

    def _publish_changes(self, changes: list[GroupChange]) -> None:
        """A coordinated task's change: /vla_coordination first, then its steps to their robots."""
        for change in changes:
            now = rospy.get_time()
            self.coordination_pub.publish(String(data=json_forms.COORDINATION.build(
                timestamp=now, coordination_time=now, **coordination_fields(change))))
            for step in change.cancelled:
                self._send(step, "cancelled")
            for step in change.assigned:
                self._send(step)

    def _send(self, task: StoredTask, state: str = "", robot_id: str = "") -> None:
        self._publish(robot_id or task.robot_id, task_document(task, state), task.assignment_time)

    def _publish(self, robot_id: str, task: dict, assignment_time: float = 0.0) -> None:
        now = rospy.get_time()
        self.assign_pub.publish(String(data=json_forms.TASK_ASSIGNMENT.build(
            timestamp=now, robot_id=robot_id, task=task, assignment_time=assignment_time or now)))

    def _diag_fleet(self, stat: Status) -> Status:
        with self.lock:
            robots = list(self.core.robots.values())
        online = sum(not v.offline for v in robots)
        stat.summary(ERROR if self.last_error else OK, self.last_error or f"{online} robots online")
        stat.add("robots online", str(online))
        stat.add("robots offline", str(len(robots) - online))
        stat.add("last round [ms]", f"{self.last_round_ms:.1f}")
        stat.add("repeated submits (submit_key known)", str(self.core.repeated_submits))
        stat.add("manager id", self.core.manager_id)
        stat.add("store", self.core.store.dialect)
        stat.add("rounds lost to another manager", str(self.core.store.lost_rounds))
        return stat


def _task_msg(task: StoredTask) -> Task:
    doc = task_document(task)
    return Task(id=task.id, description=task.description, priority=task.priority, scheduled_time=0.0,
                created_time=task.created_time, state=task.state, robot_id=task.robot_id or task.requested_robot,
                parameters_json=doc["parameters_json"])


def main() -> None:
    rospy.init_node(names.FLEET_MANAGER_NODE)
    config = load_config(FleetManagerConfig)
    bridge_logging(("vla_fleet", "vla_monitoring", "vla_msgs"), VlaLogs(rospy.get_name(), HARDWARE_ID))
    try:
        places = load_places(config.places_file) if config.places_file else {}
    except ConfigError as exc:
        rospy.logfatal(f"{rospy.get_name()}: invalid parameter: {exc}")
        sys.exit(CONFIG_EXIT_CODE)
    try:
        store = open_store(config.db_url)
    except StoreError as exc:
        rospy.logfatal(f"{rospy.get_name()}: {exc}")
        sys.exit(1)
    manager = FleetManager(store, config, rospy.get_time, places)
    FleetManagerNode(config, manager)
    rospy.loginfo("fleet_manager_node up: %s store, manager %s, %d places", store.dialect, manager.manager_id,
                  len(places))
    rospy.spin()
