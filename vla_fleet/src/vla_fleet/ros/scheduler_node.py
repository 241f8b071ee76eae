"""scheduler_node: the `Scheduler` behind /scheduler/schedule_task and /scheduler/cancel_task.

Due schedules are looked for on a ROS timer (so the simulator's /clock drives them) and handed to
/fleet_manager/submit_task; the manager unreachable is a failed submit, retried with backoff. Every try of
a slot carries the slot's `submit_key` (the core adds it), so a try whose answer was lost is not a second task.
A call unanswered within `~submit_timeout_s` is such a lost answer: its connection is shut and the slot tried
again after its backoff; while a call's connection cannot be shut (it hangs before the manager's handshake),
no other call is made.
/task_feedback on a schedule's last task is kept with the schedule (its `last_outcome`).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import rospy
from std_msgs.msg import String

from vla_fleet.schedule_store import ACTIVE, Schedule, ScheduleStore, StoreError
from vla_fleet.scheduler import (
    Request,
    ScheduleError,
    Scheduler,
    SchedulerConfig,
    SubmitError,
    SubmitRejectedError,
)
from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.config import CONFIG_EXIT_CODE
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import ERROR, OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.json_forms import ProtocolError
from vla_msgs.srv import (
    CancelTask,
    CancelTaskResponse,
    ScheduleTask,
    ScheduleTaskResponse,
    SubmitTask,
    SubmitTaskRequest,
)

HARDWARE_ID = "fleet"
_log = logging.getLogger(__name__)


class SchedulerNode:
    def __init__(self, config: SchedulerConfig, store: ScheduleStore):
        self.cfg = config
        self.core = Scheduler(store, config)
        self.bad = BadInputCounter(clock=rospy.get_time)
        self.last_submit_error = ""
        self._call: Future | None = None   # the newest submit_task call, answered or not

        self.diag = Diagnostics(HARDWARE_ID)
        self.diag.task("schedules", self._diag_schedules)
        self.diag.bad_input(self.bad, (names.SCHEDULER_SCHEDULE_TASK, names.SCHEDULER_CANCEL_TASK,
                                       names.TASK_FEEDBACK))
        rospy.Subscriber(names.TASK_FEEDBACK, String, self._on_feedback, queue_size=100)
        rospy.Service(names.SCHEDULER_SCHEDULE_TASK, ScheduleTask, self._on_schedule)
        rospy.Service(names.SCHEDULER_CANCEL_TASK, CancelTask, self._on_cancel)
        rospy.Timer(rospy.Duration(config.poll_period_s), self._on_poll)

    # ------------------------------------------------------------------ services
    def _on_schedule(self, req) -> ScheduleTaskResponse:
        request = Request(req.description, req.priority, req.scheduled_time, req.robot_id, req.parameters_json)
        try:
            schedule, note = self.core.add(request, rospy.get_time())
        except ScheduleError as exc:
            self.bad.reject(names.SCHEDULER_SCHEDULE_TASK, str(exc))
            return ScheduleTaskResponse(success=False, message=f"refused: {exc}", task_id="")
        except StoreError as exc:
            _log.error("schedule_task: %s", exc)
            return ScheduleTaskResponse(success=False, message=f"not stored, try again: {exc}", task_id="")
        message = f"scheduled {schedule.kind} at {schedule.due:.3f}" + (f" ({note})" if note else "")
        return ScheduleTaskResponse(success=True, message=message, task_id=schedule.id)

    def _on_cancel(self, req) -> CancelTaskResponse:
        try:
            ok, message = self.core.cancel(req.task_id.strip())
        except StoreError as exc:
            _log.error("cancel_task: %s", exc)
            return CancelTaskResponse(success=False, message=f"not cancelled, try again: {exc}")
        if not ok:
            self.bad.reject(names.SCHEDULER_CANCEL_TASK, message)
        return CancelTaskResponse(success=ok, message=message)

    @counted_callback(names.TASK_FEEDBACK, (ProtocolError, StoreError))
    def _on_feedback(self, msg: String) -> None:
        """Keeps the newest report on each schedule's last task (most feedback is on tasks of no schedule)."""
        doc = json_forms.TASK_FEEDBACK.parse(msg.data)
        reason = doc.get("reason") or ""
        self.core.store.feedback(doc["task_id"], f"{doc['state']}: {reason}" if reason else doc["state"])

    # ------------------------------------------------------------------ submitting
    def submit(self, schedule: Schedule) -> str:
        """The manager's task id for `schedule`; SubmitError when it cannot be reached, SubmitRejectedError
        when it refuses."""
        if self._call is not None and not self._call.done():
            raise SubmitError(f"{names.FLEET_SUBMIT_TASK}: an earlier call is still unanswered")
        # persistent: the proxy keeps the call's connection, so that a call past its timeout can be shut
        proxy = rospy.ServiceProxy(names.FLEET_SUBMIT_TASK, SubmitTask, persistent=True)
        request = SubmitTaskRequest(description=schedule.description, priority=schedule.priority,
                                    robot_id=schedule.robot_id, parameters_json=schedule.parameters_json)
        # no wait for the service: unregistered, the call fails at once and the slot is retried with backoff
        self._call = _in_thread(proxy.call, request)
        try:
            resp = self._call.result(timeout=self.cfg.submit_timeout_s)
        except FutureTimeout as exc:
            raise SubmitError(f"{names.FLEET_SUBMIT_TASK}: no answer within {self.cfg.submit_timeout_s:g} s "
                              "(tried again with the same submit_key)") from exc
        except (rospy.ROSException, rospy.ServiceException) as exc:
            raise SubmitError(f"{names.FLEET_SUBMIT_TASK}: {exc}") from exc
        finally:
            proxy.close()  # after a timeout: shuts the socket down, the waiting call ends with an error
        if not resp.success:
            # fleet_manager_node says `rejected: <why>` for a task it will never take; any other refusal (its
            # store busy, say) may pass, so the slot stays due rather than being lost
            if resp.message.startswith("rejected"):
                raise SubmitRejectedError(resp.message)
            raise SubmitError(f"{names.FLEET_SUBMIT_TASK} answered: {resp.message or 'no reason'}")
        return resp.task_id

    def _on_poll(self, _event) -> None:
        # rospy runs one Timer's callbacks one after another: a slow poll delays the next, never overlaps it
        try:
            for outcome in self.core.run_due(rospy.get_time(), self.submit):
                if outcome.retry:
                    self.last_submit_error = outcome.error
        except StoreError as exc:  # the database busy or gone: every schedule stays as stored, the next poll tries
            rospy.logwarn_throttle(10.0, f"scheduler_node: poll skipped: {exc}")
        except Exception:  # a poll must not end the timer: log the bug (the schedules stay due) and go on
            _log.exception("poll failed; the due schedules stay due")

    def _diag_schedules(self, stat: Status) -> Status:
        try:
            active = self.core.store.count(ACTIVE)
            next_ready = self.core.store.next_ready()
        except StoreError as exc:
            stat.summary(ERROR, f"database unreadable: {exc}")
            return stat
        if self.core.failed_submits and self.last_submit_error:
            stat.summary(WARN, f"{active} active; submits failing: {self.last_submit_error}")
        else:
            stat.summary(OK, f"{active} active schedules")
        stat.add("active", str(active))
        stat.add("next ready in s", "none" if next_ready is None else f"{next_ready - rospy.get_time():.3f}")
        stat.add("submitted", str(self.core.submitted))
        stat.add("failed submits (retried)", str(self.core.failed_submits))
        stat.add("refused by the manager", str(self.core.rejected))
        return stat


def _in_thread(call, request) -> Future:
    """`call(request)` on a daemon thread of its own (a call that never returns must not keep the node from
    exiting); its answer or exception in the future."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(call(request))
        except BaseException as exc:  # handed to the caller, who decides (a thread has no one else to tell)
            future.set_exception(exc)

    threading.Thread(target=run, name="submit_task call", daemon=True).start()
    return future


def main() -> None:
    rospy.init_node(names.SCHEDULER_NODE)
    config = load_config(SchedulerConfig)
    bridge_logging(("vla_fleet", "vla_monitoring"), VlaLogs(names.SCHEDULER_NODE, HARDWARE_ID))
    try:
        store = ScheduleStore(config.db_url)
    except StoreError as exc:
        rospy.logfatal(f"{rospy.get_name()}: cannot open ~db_url {config.db_url!r}: {exc}")
        raise SystemExit(CONFIG_EXIT_CODE) from exc
    SchedulerNode(config, store)
    rospy.loginfo("scheduler_node up: %s, polling every %.3g s", config.db_url, config.poll_period_s)
    rospy.spin()
    store.close()
