"""maintenance_node: the maintenance tasks behind /maintenance/run_task, on their cron schedule in ROS time,
each run reported on /vla_maintenance.

The service queues the task and waits up to `~service_wait_s` (wall) for its result: a quick task answers
with its details, a long one answers `queued` and its result follows on /vla_maintenance. The tasks run
one at a time on the runner's worker thread, never on a ROS callback thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import rosgraph
import rospy
from rospy.msg import AnyMsg
from std_msgs.msg import String

from vla_fleet.maintenance.catalog import build_tasks
from vla_fleet.maintenance.config import MaintenanceConfig, parse_rate
from vla_fleet.maintenance.health import HealthProbes, TopicRates
from vla_fleet.maintenance.layout import expand
from vla_fleet.maintenance.logs import ros_log_dir
from vla_fleet.maintenance.runner import (
    FAILED,
    WARNING,
    MaintenanceRunner,
    QueueFullError,
    RequestError,
    parse_request,
)
from vla_fleet.maintenance.schedule import MaintenanceSchedule, load_record, save_record
from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.ros.diagnostics import OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.master import check_master, ping_node
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.srv import RunMaintenance, RunMaintenanceResponse

HARDWARE_ID = "fleet"
CLOCK_TOPIC = "/clock"
_log = logging.getLogger(__name__)


class MaintenanceNode:
    def __init__(self, config: MaintenanceConfig):
        self.cfg = config
        self.bad = BadInputCounter(clock=rospy.get_time)
        self.lock = threading.Lock()
        self.sim_time = bool(rospy.get_param("/use_sim_time", False))
        self.timeline = "simulated" if self.sim_time else "wall"
        self.state_file = expand(config.state_file)
        self.schedule = MaintenanceSchedule(config.schedule(), config.timezone,
                                            load_record(self.state_file, self.timeline))
        topics = [parse_rate(pair)[0] for pair in config.topic_min_rates]
        self.rates = TopicRates(topics, config.rate_window_s, rospy.get_time())
        self.clock_wall_s: float | None = None
        self.pub = rospy.Publisher(names.MAINTENANCE, String, queue_size=50, latch=True)

        probes = HealthProbes(master=self._master, ping=self._ping, rates=self._rates, clock=self._clock)
        log_dir = ros_log_dir(dict(os.environ))
        tasks = build_tasks(config, probes, log_dir, lambda: self._protected_logs(log_dir),
                            ros_now=rospy.get_time, wall_now=time.time)
        self.runner = MaintenanceRunner(tasks, self._report, config.queue_size)

        # one subscription per topic, /clock's shared by its rate and its age (AnyMsg: nothing is deserialised)
        for topic in sorted(set(topics) | ({CLOCK_TOPIC} if self.sim_time else set())):
            rospy.Subscriber(topic, AnyMsg, self._on_topic, callback_args=topic, queue_size=100)
        self.diag = Diagnostics(HARDWARE_ID)
        self.diag.task("maintenance", self._diag)
        self.diag.bad_input(self.bad, (names.MAINTENANCE_RUN_TASK,))
        rospy.Service(names.MAINTENANCE_RUN_TASK, RunMaintenance, self._on_run_task)
        self.timer = rospy.Timer(rospy.Duration(config.poll_period_s), self._on_poll)
        rospy.on_shutdown(self.runner.stop)

    # ------------------------------------------------------------------ probes (called on the worker thread)
    def _master(self) -> tuple[bool, str]:
        return check_master(rosgraph.get_master_uri(), rospy.get_name(), self.cfg.ping_timeout_s)

    def _ping(self, node: str) -> tuple[bool, str]:
        return ping_node(rosgraph.get_master_uri(), rospy.get_name(), node, self.cfg.ping_timeout_s)

    def _rates(self) -> dict[str, float | None]:
        with self.lock:
            return self.rates.rates(rospy.get_time())

    def _clock(self) -> dict:
        with self.lock:
            age = None if self.clock_wall_s is None else time.monotonic() - self.clock_wall_s
        return {"ros_time": rospy.get_time(), "wall_time": time.time(), "sim_time": self.sim_time,
                "clock_age_s": None if age is None else round(age, 3)}

    @staticmethod
    def _protected_logs(log_dir: Path) -> list[Path]:
        """The running session's log folders: never cleaned."""
        run_id = rospy.get_param("/run_id", "")
        return [log_dir / "latest"] + ([log_dir / run_id] if run_id else [])

    # ------------------------------------------------------------------ inputs
    def _on_topic(self, _msg: AnyMsg, topic: str) -> None:
        now = rospy.get_time()
        with self.lock:
            if topic in self.rates.last_s:
                self.rates.note(topic, now)
            if topic == CLOCK_TOPIC:
                self.clock_wall_s = time.monotonic()

    def _on_run_task(self, req) -> RunMaintenanceResponse:
        try:
            task, argument = parse_request(req.task)
            run, queued = self.runner.submit(task, argument, "request")
        except (RequestError, QueueFullError) as exc:
            self.bad.reject(names.MAINTENANCE_RUN_TASK, str(exc))
            return RunMaintenanceResponse(success=False, message=f"refused: {exc}", details_json="{}")
        # a wall-clock bound on how long a caller is held; the task itself runs on regardless
        if not run.done.wait(self.cfg.service_wait_s):
            note = "queued" if queued else "already queued"
            return RunMaintenanceResponse(
                success=True, message=f"{note} (run {run.id}); the result follows on {names.MAINTENANCE}",
                details_json=json.dumps({"run_id": run.id, "status": "queued"}))
        problems = run.details.get("problems") or []
        message = run.status + (f": {run.details.get('reason')}" if run.status == FAILED else
                                f", {len(problems)} problem(s): {'; '.join(problems)[:300]}" if problems else "")
        return RunMaintenanceResponse(success=run.status != FAILED, message=message,
                                      details_json=json.dumps(run.details, default=str))

    def _on_poll(self, _event) -> None:
        now = rospy.get_time()
        if now <= 0.0:  # simulated time before the first /clock: no slot can be judged yet
            return
        with self.lock:
            # measured from the first time known (under simulated time the node may start before /clock), and
            # afresh when the clock went backwards
            if now < self.rates.start_s or self.rates.start_s <= 0.0:
                self.rates.restart(now)
        due = self.schedule.due(now)
        for task in due:
            try:
                self.runner.submit(task, "", "schedule")
            except QueueFullError as exc:
                self._report(task, FAILED, {"reason": f"not run: the queue is full ({exc})", "source": "schedule"})
        if due:
            try:
                save_record(self.state_file, self.timeline, self.schedule.last_s)
            except OSError as exc:  # the schedule goes on in memory; only a restart would repeat a slot
                rospy.logwarn(f"maintenance_node: cannot write {self.state_file}: {exc}")

    # ------------------------------------------------------------------ outputs
    def _report(self, task: str, status: str, details: dict) -> None:
        self.pub.publish(String(data=json_forms.MAINTENANCE.build(
            timestamp=rospy.get_time(), task=task, status=status, details=details)))

    def _diag(self, stat: Status) -> Status:
        last = dict(self.runner.last)
        failed = sorted(t for t, run in last.items() if run.status == FAILED)
        found = sorted(t for t, run in last.items() if run.status == WARNING)
        if failed or found:
            stat.summary(WARN, "; ".join(([f"last run failed: {', '.join(failed)}"] if failed else [])
                                         + ([f"problems found by: {', '.join(found)}"] if found else [])))
        else:
            stat.summary(OK, f"{sum(self.runner.counts.values())} tasks run, {self.runner.pending()} waiting")
        running = self.runner.running
        stat.add("running", running.task if running else "none")
        for status, n in self.runner.counts.items():
            stat.add(status, str(n))
        for task, at in sorted(dict(self.schedule.next_s).items()):
            stat.add(f"next {task}", datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        for task, run in sorted(last.items()):
            problems = run.details.get("problems") or []
            stat.add(f"last {task}", run.status + (f": {run.details.get('reason')}" if run.status == FAILED else
                                                   f": {'; '.join(problems)[:200]}" if problems else ""))
        return stat


def main() -> None:
    rospy.init_node(names.MAINTENANCE_NODE)
    config = load_config(MaintenanceConfig)
    bridge_logging(("vla_fleet", "vla_monitoring"), VlaLogs(names.MAINTENANCE_NODE, HARDWARE_ID))
    MaintenanceNode(config)
    rospy.loginfo("maintenance_node up: %s on %s", ", ".join(f"{t} '{c}'" for t, c in config.schedule().items()),
                  "simulated time" if rospy.get_param("/use_sim_time", False) else "wall time")
    rospy.spin()
