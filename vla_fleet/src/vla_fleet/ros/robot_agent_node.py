"""robot_agent_node: one robot's member of the fleet. Feeds odom, battery_state, emergency_stop,
vla_health, sim/state (or a real robot's done topic) and /task_assignment into RobotAgent; publishes
/robot_status, /fleet/robot_status, /task_feedback, the robot's task_command and /diagnostics.

Runs in the robot's namespace (per-robot names relative, fleet names absolute); time is ROS time, so
the simulator's /clock drives the status rate and the task timeouts.
"""

from __future__ import annotations

import threading

import rospy
from geometry_msgs.msg import Point
from nav_msgs.msg import Odometry
from sensor_msgs.msg import BatteryState
from std_msgs.msg import Bool, String

from vla_fleet.agent import AgentConfig, Outputs, RobotAgent
from vla_fleet.agent import Status as AgentStatus
from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import ERROR, OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.json_forms import ProtocolError
from vla_msgs.msg import InferenceStats, RobotStatus
from vla_msgs.states import RobotState

_BAD_INPUT = (ValueError, TypeError, KeyError, AttributeError, UnicodeError, ProtocolError)
# One simulator per master, in the root namespace: its state is absolute from inside a robot's namespace.
SIM_STATE_TOPIC = "/" + names.SIM_STATE
_DIAG_LEVEL = {RobotState.AVAILABLE: OK, RobotState.BUSY: OK, RobotState.CHARGING: WARN,
               RobotState.ERROR: ERROR, RobotState.OFFLINE: ERROR}


class RobotAgentNode:
    def __init__(self, config: AgentConfig):
        self.cfg = config
        self.clock = rospy.get_time
        self.agent = RobotAgent(config)
        self.bad = BadInputCounter()
        self.lock = threading.Lock()
        self.feedback_sent = 0

        self.json_pub = rospy.Publisher(names.ROBOT_STATUS_JSON, String, queue_size=10)
        self.typed_pub = rospy.Publisher(names.ROBOT_STATUS, RobotStatus, queue_size=10)
        # Feedback is the manager's only news of a task's end: a deep queue, never dropped for lack of room.
        self.feedback_pub = rospy.Publisher(names.TASK_FEEDBACK, String, queue_size=100)
        self.command_pub = rospy.Publisher(names.TASK_COMMAND, String, queue_size=10)

        sources = [names.ODOM, names.BATTERY_STATE, names.EMERGENCY_STOP, names.HEALTH_JSON, names.TASK_ASSIGNMENT,
                   names.INFERENCE_STATS]
        rospy.Subscriber(names.ODOM, Odometry, self._on_odom, queue_size=1)
        rospy.Subscriber(names.BATTERY_STATE, BatteryState, self._on_battery, queue_size=1)
        rospy.Subscriber(names.EMERGENCY_STOP, Bool, self._on_estop, queue_size=5)
        rospy.Subscriber(names.HEALTH_JSON, String, self._on_health, queue_size=5)
        rospy.Subscriber(names.TASK_ASSIGNMENT, String, self._on_assignment, queue_size=100)
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self._on_stats, queue_size=1)
        if config.success_condition == "sim":
            sources.append(SIM_STATE_TOPIC)
            rospy.Subscriber(SIM_STATE_TOPIC, String, self._on_sim_state, queue_size=1, buff_size=1 << 20)
        elif config.success_condition == "topic":
            sources.append(config.success_topic)
            rospy.Subscriber(config.success_topic, Bool, self._on_done, queue_size=5)

        self.diag = Diagnostics(config.robot_id, period_s=1.0)
        self.diag.task("agent", self._diag_agent)
        self.diag.bad_input(self.bad, sources)
        self.timer = rospy.Timer(rospy.Duration(1.0 / config.status_rate), self._on_tick)

    @counted_callback(names.ODOM, _BAD_INPUT)
    def _on_odom(self, msg: Odometry) -> None:
        p = msg.pose.pose.position
        with self.lock:
            self.agent.note_position(self.clock(), p.x, p.y, p.z)

    @counted_callback(names.BATTERY_STATE, _BAD_INPUT)
    def _on_battery(self, msg: BatteryState) -> None:
        with self.lock:
            self.agent.note_battery(self.clock(), msg.percentage)

    @counted_callback(names.EMERGENCY_STOP, _BAD_INPUT)
    def _on_estop(self, msg: Bool) -> None:
        with self.lock:
            self.agent.note_estop(msg.data)
            self._step()  # hand the task back now, not at the next tick

    @counted_callback(names.HEALTH_JSON, _BAD_INPUT)
    def _on_health(self, msg: String) -> None:
        doc = json_forms.HEALTH.parse(msg.data)
        with self.lock:
            self.agent.note_health(doc)

    @counted_callback(names.INFERENCE_STATS, _BAD_INPUT)
    def _on_stats(self, msg: InferenceStats) -> None:
        with self.lock:
            self.agent.note_policy_task(msg.current_task)

    @counted_callback(SIM_STATE_TOPIC, _BAD_INPUT)
    def _on_sim_state(self, msg: String) -> None:
        doc = json_forms.SIM_STATE.parse(msg.data)
        with self.lock:
            self.agent.note_sim_state(self.clock(), doc)

    @counted_callback("success_topic", _BAD_INPUT)
    def _on_done(self, msg: Bool) -> None:
        with self.lock:
            self.agent.note_done_signal(self.clock(), msg.data)

    @counted_callback(names.TASK_ASSIGNMENT, _BAD_INPUT)
    def _on_assignment(self, msg: String) -> None:
        doc = json_forms.TASK_ASSIGNMENT.parse(msg.data)
        with self.lock:
            self._send(self.agent.note_assignment(self.clock(), doc))

    def _on_tick(self, _event: rospy.timer.TimerEvent) -> None:
        try:
            with self.lock:
                self._step()
                status = self.agent.status(self.clock())
            if status is not None:
                self._publish_status(status)
        except Exception:  # an exception would end rospy's timer thread: log it, report on the next tick
            rospy.logerr_throttle(5.0, "robot_agent_node: tick failed", exc_info=True)

    def _step(self) -> None:
        self._send(self.agent.tick(self.clock()))

    def _send(self, out: Outputs) -> None:
        for text in out.commands:
            self.command_pub.publish(String(data=text))
        now = self.clock()
        for fb in out.feedback:
            # a coordinated task's step says which task and phase it belongs to (extra fields of the form)
            extra = ({"coordinated_task": fb.coordination.get("task"), "phase": fb.coordination.get("phase")}
                     if fb.coordination else {})
            self.feedback_pub.publish(String(data=json_forms.TASK_FEEDBACK.build(
                timestamp=now, robot_id=self.cfg.robot_id, task_id=fb.task_id, state=fb.state.value,
                reason=fb.reason, **extra)))
            self.feedback_sent += 1

    def _publish_status(self, s: AgentStatus) -> None:
        now = rospy.Time.now()
        self.json_pub.publish(String(data=json_forms.ROBOT_STATUS.build(
            timestamp=now.to_sec(), robot_id=s.robot_id, status=s.status.value, position=list(s.position),
            battery=round(s.battery_percent, 2), current_task_id=s.current_task_id or None,
            capabilities=list(s.capabilities), reason=s.reason,
            last_task_id=s.last_task.task_id if s.last_task else None,
            last_task_state=s.last_task.state.value if s.last_task else None,
            last_task_reason=s.last_task.reason if s.last_task else None)))
        msg = RobotStatus(robot_id=s.robot_id, status=s.status.value, position=Point(*s.position),
                          battery=s.battery_percent / 100.0, current_task_id=s.current_task_id)
        msg.header.stamp = now
        self.typed_pub.publish(msg)

    def _diag_agent(self, stat: Status) -> Status:
        with self.lock:
            s = self.agent.status(self.clock())
        if s is None:
            stat.summary(WARN, "waiting for odom and battery_state")
            return stat
        stat.summary(_DIAG_LEVEL[s.status], s.status.value + (f": {s.reason}" if s.reason else ""))
        stat.add("current task", s.current_task_id or "none")
        stat.add("battery [%]", f"{s.battery_percent:.1f}")
        stat.add("feedback sent", str(self.feedback_sent))
        stat.add("success condition", self.cfg.success_condition)
        return stat


def main() -> None:
    rospy.init_node(names.ROBOT_AGENT_NODE)
    config = load_config(AgentConfig)
    bridge_logging(("vla_fleet", "vla_msgs"), VlaLogs(rospy.get_name(), config.robot_id))
    RobotAgentNode(config)
    rospy.loginfo("robot_agent_node up: %s, capabilities %s, success by %s", config.robot_id,
                  config.capabilities, config.success_condition)
    rospy.spin()
