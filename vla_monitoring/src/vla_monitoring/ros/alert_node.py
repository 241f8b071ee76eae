"""alert_node: feeds the monitoring topics into AlertEngine; publishes its events on vla_alerts, vla/alerts
and, when configured, a webhook; /diagnostics shows the firing alerts, the rules and the inputs.

Time is ROS time (arrivals, the evaluation timer, for_s, cooldowns), so the simulator's /clock drives
the node. Every input is parsed first (JSON forms, finite numbers); bad input is counted and dropped.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from typing import Any

import rospy
from std_msgs.msg import String

from vla_monitoring.alert_rules import ACTIVITY, INPUTS, default_rules, load_rule_file
from vla_monitoring.alerts import ActivityTracker, AlertConfig, AlertEngine, AlertEvent, numeric
from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.config import CONFIG_EXIT_CODE, ConfigError
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import ERROR, OK, WARN, Diagnostics, Status, report_bad_input
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_monitoring.webhook import WebhookSink
from vla_msgs import json_forms, names
from vla_msgs.msg import Action, Alert, InferenceStats
from vla_msgs.states import AlertLevel, AlertState
from vla_msgs.tasks import parse_task_command

LOG = logging.getLogger("vla_monitoring.alert_node")
_BAD_INPUT = (ValueError, TypeError, AttributeError, UnicodeError)
_DIAG_LEVEL = {AlertLevel.INFO: OK, AlertLevel.WARNING: WARN, AlertLevel.ERROR: ERROR, AlertLevel.CRITICAL: ERROR}
_LOG_LEVEL = {AlertLevel.INFO: logging.INFO, AlertLevel.WARNING: logging.WARNING, AlertLevel.ERROR: logging.ERROR,
              AlertLevel.CRITICAL: logging.CRITICAL}
JSON_INPUTS = tuple(name for name, spec in INPUTS.items() if spec.form is not None)
TOPICS = (*JSON_INPUTS, names.INFERENCE_STATS, names.ACTION, names.TASK_COMMAND)


def message_fields(msg: Any) -> dict[str, Any]:
    """A typed message's plain fields as a document (header left out); a non-finite float is bad input."""
    doc = {}
    for name, kind in zip(msg.__slots__, msg._slot_types, strict=True):
        if kind == "std_msgs/Header":
            continue
        value = getattr(msg, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"field {name} is {value}")
        doc[name] = value
    return doc


def typed_alert(event: AlertEvent) -> Alert:
    """vla/alerts has no state field: a resolved event goes out as INFO, its message saying "resolved"."""
    msg = Alert(type=event.type, message=event.message, robot_id=event.robot_id)
    msg.header.stamp = rospy.Time.from_sec(event.timestamp)
    msg.level = int(AlertLevel.INFO if event.state is AlertState.RESOLVED else event.level)
    value, threshold = numeric(event.value), numeric(event.threshold)
    msg.value = math.nan if value is None else value
    msg.threshold = math.nan if threshold is None else threshold
    return msg


class AlertNode:
    def __init__(self, config: AlertConfig, engine: AlertEngine):
        self.cfg = config
        self.engine = engine
        self.clock = rospy.get_time
        self.activity = ActivityTracker()
        self.bad = BadInputCounter(clock=self.clock)
        self.lock = threading.Lock()
        self.published = 0
        self.webhook = None
        if config.webhook_url:
            self.webhook = WebhookSink(
                config.webhook_url, timeout_s=config.webhook_timeout_s, max_attempts=config.webhook_max_attempts,
                backoff_s=config.webhook_backoff_s, backoff_max_s=config.webhook_backoff_max_s,
                queue_size=config.webhook_queue_size)
            rospy.on_shutdown(self.webhook.close)

        self.json_pub = rospy.Publisher(names.ALERTS_JSON, String, queue_size=50)
        self.typed_pub = rospy.Publisher(names.ALERTS, Alert, queue_size=50)
        self.diag = Diagnostics(config.robot_id, period_s=1.0)
        self.diag.task("alerts", self._diag_alerts)
        self.diag.task("rules", self._diag_rules)
        self.diag.task("inputs", self._diag_inputs)
        if self.webhook is not None:
            self.diag.task("webhook", self._diag_webhook)

        for topic in JSON_INPUTS:
            rospy.Subscriber(topic, String, self._json_callback(topic), queue_size=20)
        rospy.Subscriber(names.INFERENCE_STATS, InferenceStats, self._on_stats, queue_size=5)
        rospy.Subscriber(names.ACTION, Action, self._on_action, queue_size=10)
        rospy.Subscriber(names.TASK_COMMAND, String, self._on_task, queue_size=10)
        self.timer = rospy.Timer(rospy.Duration(1.0 / config.evaluate_rate), self._on_tick)

    # ---- inputs ------------------------------------------------------------------------------------

    def _json_callback(self, topic: str):
        form = INPUTS[topic].form

        @counted_callback(topic, _BAD_INPUT)
        def on_json(self: AlertNode, msg: String) -> None:
            doc = form.parse(msg.data)  # ProtocolError (a ValueError): counted and dropped
            with self.lock:
                self.engine.update(topic, doc, self.clock())

        return lambda msg: on_json(self, msg)

    @counted_callback(names.INFERENCE_STATS, _BAD_INPUT)
    def _on_stats(self, msg: InferenceStats) -> None:
        doc = message_fields(msg)
        with self.lock:
            now = self.clock()
            self.engine.update(names.INFERENCE_STATS, doc, now)
            self.activity.note_task(now, msg.current_task)

    @counted_callback(names.ACTION, _BAD_INPUT)
    def _on_action(self, msg: Action) -> None:
        if not all(math.isfinite(v) for v in msg.values):
            raise ValueError(f"non-finite action values {list(msg.values)}")
        with self.lock:
            self.activity.note_action(self.clock())

    @counted_callback(names.TASK_COMMAND, _BAD_INPUT)
    def _on_task(self, msg: String) -> None:
        task = parse_task_command(msg.data)  # TaskRejectedError (a ValueError): counted and dropped
        if task.robot_id and task.robot_id != self.cfg.robot_id:
            return  # addressed to another robot on a shared topic
        with self.lock:
            self.activity.note_task(self.clock(), "" if task.idle else task.description)

    # ---- evaluation and output ------------------------------------------------------------------------

    def _on_tick(self, _event: rospy.timer.TimerEvent) -> None:
        try:
            with self.lock:
                now = self.clock()
                self.engine.update(ACTIVITY, self.activity.doc(now), now)
                events = self.engine.evaluate(now)
            for event in events:
                self.publish(event)
        except Exception:  # an exception would end rospy's timer thread: log it, evaluate again next tick
            rospy.logerr_throttle(5.0, "alert_node: evaluation failed", exc_info=True)

    def publish(self, event: AlertEvent) -> None:
        text = json_forms.ALERTS.build(timestamp=event.timestamp, **event.fields())
        self.json_pub.publish(String(data=text))
        self.typed_pub.publish(typed_alert(event))
        if self.webhook is not None:
            self.webhook.submit(text)
        self.published += 1
        level = logging.INFO if event.state is AlertState.RESOLVED else _LOG_LEVEL[event.level]
        LOG.log(level, "alert %s %s %s: %s", event.alert_id, event.state.value, event.level.name, event.message)

    # ---- diagnostics -----------------------------------------------------------------------------------

    # The diagnostics run on their own timer thread: the engine is read under the node's lock.
    def _diag_alerts(self, stat: Status) -> Status:
        with self.lock:
            active = sorted(self.engine.active(), key=lambda e: (-int(e.level), e.alert_id))
        worst = max((e.level for e in active), default=AlertLevel.INFO)
        stat.summary(_DIAG_LEVEL[worst] if active else OK,
                     f"{len(active)} firing" + (f", worst {worst.name}" if active else ""))
        for event in active:
            stat.add(event.alert_id, f"{event.level.name}: {event.message}")
        stat.add("events published", str(self.published))
        return stat

    def _diag_rules(self, stat: Status) -> Status:
        with self.lock:
            problems = dict(self.engine.problems)
        stat.summary(WARN if problems else OK,
                     f"{len(self.engine.rules)} rules" + (f", {len(problems)} cannot read their value" if problems
                                                          else ""))
        for named in self.engine.rules:
            rule = named.rule
            state = problems.get(named.name, "ok")
            stat.add(named.name, f"{rule.input} {rule.path} {rule.op} {rule.threshold!r} ({rule.severity}): {state}")
        return stat

    def _diag_inputs(self, stat: Status) -> Status:
        report_bad_input(stat, self.bad, TOPICS)
        with self.lock:
            now = self.clock()
            ages = {topic: self.engine.age_s(topic, now) for topic in (*JSON_INPUTS, names.INFERENCE_STATS)}
        for topic, age in ages.items():
            stat.add(f"age {topic}", "never received" if age is None else f"{age:.1f} s")
        return stat

    def _diag_webhook(self, stat: Status) -> Status:
        hook = self.webhook
        stat.summary(WARN if hook.failed or hook.dropped else OK,
                     f"{hook.sent} sent, {hook.failed} failed, {hook.dropped} dropped")
        stat.add("url", hook.url)
        stat.add("queued", str(hook.queued))
        stat.add("retries", str(hook.retries))
        stat.add("last error", hook.last_error or "none")
        return stat


def load_rules(config: AlertConfig) -> AlertEngine:
    """The engine with the configured rules; an invalid rule file stops the node like an invalid parameter."""
    try:
        rules = load_rule_file(config.rules_file) if config.rules_file else default_rules()
    except ConfigError as exc:
        rospy.logfatal(f"{rospy.get_name()}: invalid alert rules: {exc}")
        sys.exit(CONFIG_EXIT_CODE)
    return AlertEngine(rules, config.robot_id, stale_after_s=config.stale_after_s, fleet_wide=config.fleet_wide)


def main() -> None:
    rospy.init_node(names.ALERT_NODE)
    config = load_config(AlertConfig)
    engine = load_rules(config)
    bridge_logging(("vla_monitoring", "vla_msgs"), VlaLogs(rospy.get_name(), config.robot_id))
    AlertNode(config, engine)
    rospy.loginfo("alert_node up: %d rules from %s, webhook %s", len(engine.rules),
                  config.rules_file or "the built-in defaults", config.webhook_url or "off")
    rospy.spin()
