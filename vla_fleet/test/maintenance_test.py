#!/usr/bin/env python3
"""maintenance_node end to end, on simulated time: the daily 02:00 health_check fires when the /clock this
test publishes passes 02:00 UTC (reported on /vla_maintenance in ROS time); on demand through
/maintenance/run_task, health_check answers healthy, log_cleanup deletes an old log, full_backup then
restore_backup bring a changed config file and database back, an unknown task is refused, a failing task
reports failed (and /diagnostics says so) and the next one still runs.
"""

import json
import os
import sqlite3
import tempfile
import threading
import time
import unittest
from datetime import UTC, datetime
from pathlib import Path

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from vla_msgs import json_forms, names
from vla_msgs.launching import ProcessGroup
from vla_msgs.srv import RunMaintenance
from vla_msgs.waiting import wait_until

START_S = datetime(2026, 11, 26, 1, 59, 50, tzinfo=UTC).timestamp()
SLOT_S = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC).timestamp()
SPEED = 10.0    # simulated seconds per wall second
STEP_S = 0.01   # wall seconds between /clock messages
DAY_S = 86400.0


class MaintenanceNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="maintenance_"))
        cls.lock = threading.Lock()
        cls.reports = []
        cls.stop = threading.Event()
        cls.go = threading.Event()  # the clock stands at START_S until the node is up (its start takes wall time)
        cls.diagnostics = {}
        rospy.Subscriber(names.MAINTENANCE, String, cls._on_report, queue_size=100)
        rospy.Subscriber("/diagnostics", DiagnosticArray, cls._on_diagnostics, queue_size=20)
        pub = rospy.Publisher("/clock", Clock, queue_size=10)
        cls.clock = threading.Thread(target=cls._publish_clock, args=(pub,), daemon=True)
        cls.clock.start()
        t = cls.tmp
        (t / "config").mkdir()
        (t / "config" / "safety.yaml").write_text("max_linear_speed: 0.5\n")
        conn = sqlite3.connect(t / "fleet.db")
        conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, description TEXT)")
        conn.executemany("INSERT INTO tasks (description) VALUES (?)", [(f"task {i}",) for i in range(100)])
        conn.commit()
        conn.close()
        old = t / "ros_log" / "old-run" / "node.log"
        old.parent.mkdir(parents=True)
        old.write_text("old\n")
        os.utime(old, (time.time() - 30 * DAY_S,) * 2)
        cls.old_log = old
        params = {
            "db_urls": f"[sqlite:///{t / 'fleet.db'}]", "config_dir": str(t / "config"),
            "releases_dir": str(t / "ota"), "backup_dir": str(t / "backups"), "report_dir": str(t / "reports"),
            "metrics_log_dir": str(t / "vla_logs"), "log_dirs": f"[{t / 'vla_logs'}]", "disk_paths": f"[{t}]",
            "scan_paths": f"[{t}]", "cache_dirs": f"[{t / 'cache'}]", "min_free_disk_percent": "0.0",
            "expected_nodes": f"[{rospy.get_name()}]", "topic_min_rates": "['/clock 5']", "rate_window_s": "5.0",
            "poll_period_s": "0.1", "service_wait_s": "60.0", "state_file": str(t / "state.json"),
            # only the health check on a schedule: the on-demand runs below are not mixed with scheduled ones
            "log_cleanup_cron": "''", "full_backup_cron": "''", "performance_review_cron": "''",
            "deep_maintenance_cron": "''", "security_scan_cron": "''",
        }
        cmd = ["rosrun", "vla_fleet", "maintenance_node", f"__name:={names.MAINTENANCE_NODE}"]
        cmd += [f"_{k}:={v}" for k, v in params.items()]
        cls.node = ProcessGroup(cmd, t / "node.log", env={**os.environ, "ROS_LOG_DIR": str(t / "ros_log")})
        rospy.wait_for_service(names.MAINTENANCE_RUN_TASK, 60)
        cls.run_task = rospy.ServiceProxy(names.MAINTENANCE_RUN_TASK, RunMaintenance)
        cls.go.set()

    @classmethod
    def tearDownClass(cls):
        cls.stop.set()
        cls.node.stop()

    @classmethod
    def _publish_clock(cls, pub):
        wall0 = None
        while not cls.stop.is_set() and not rospy.is_shutdown():
            if wall0 is None and cls.go.is_set():
                wall0 = time.monotonic()
            elapsed = 0.0 if wall0 is None else time.monotonic() - wall0
            pub.publish(Clock(clock=rospy.Time.from_sec(START_S + SPEED * elapsed)))
            cls.stop.wait(STEP_S)  # the clock's own pace, in wall time: this thread is the simulator

    @classmethod
    def _on_report(cls, msg):
        doc = json_forms.MAINTENANCE.parse(msg.data)
        with cls.lock:
            cls.reports.append(doc)

    @classmethod
    def _on_diagnostics(cls, msg):
        with cls.lock:
            cls.diagnostics.update({s.name: s for s in msg.status})

    def diagnostic(self, name):
        with self.lock:
            return self.diagnostics.get(name)

    def found(self, task, status, source):
        with self.lock:
            return [r for r in self.reports
                    if r["task"] == task and r["status"] == status and r["details"].get("source") == source]

    def wait(self, condition, what, timeout_s=60.0):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time, poll_s=0.05)

    def call(self, task):
        resp = self.run_task(task)
        return resp, json.loads(resp.details_json)

    def test_1_daily_health_check_fires_at_its_simulated_time(self):
        done = self.wait(lambda: self.found("health_check", "completed", "schedule"), "the 02:00 health check")
        started = self.found("health_check", "started", "schedule")
        self.assertGreaterEqual(started[0]["timestamp"], SLOT_S)
        self.assertLess(started[0]["timestamp"], SLOT_S + 5.0)  # a poll is 0.1 s of simulated time
        self.assertTrue(done[0]["details"]["healthy"], done[0]["details"]["problems"])
        self.assertEqual(len(started), 1)
        record = json.loads((self.tmp / "state.json").read_text())   # what a restart would start from
        self.assertEqual(record["timeline"], "simulated")
        self.assertGreaterEqual(record["last_run"]["health_check"], SLOT_S)

    def test_2_on_demand(self):
        resp, details = self.call("health_check")
        self.assertTrue(resp.success, resp.message)
        self.assertEqual(resp.message, "completed")
        self.assertTrue(details["healthy"], details["problems"])
        self.assertTrue(details["nodes"][rospy.get_name()]["alive"])
        self.assertGreater(details["topics"]["/clock"]["rate_hz"], 5.0)

        refused = self.run_task("reboot")
        self.assertFalse(refused.success)
        self.assertIn("unknown task", refused.message)

        resp, details = self.call("log_cleanup")
        self.assertTrue(resp.success, resp.message)
        self.assertFalse(self.old_log.exists())
        self.assertEqual(details["deleted"]["files"], 1)

        resp, details = self.call("full_backup")
        self.assertTrue(resp.success, resp.message)
        self.assertEqual(details["by_kind"], {"config": 1, "database": 1, "release": 0})
        archive = Path(details["archive"])
        self.assertTrue(archive.is_file())

        config = self.tmp / "config" / "safety.yaml"
        config.write_text("max_linear_speed: 9.0\n")
        conn = sqlite3.connect(self.tmp / "fleet.db")
        conn.execute("DELETE FROM tasks")
        conn.commit()
        conn.close()
        resp, details = self.call(f"restore_backup {archive.name}")
        self.assertTrue(resp.success, resp.message)
        self.assertEqual(config.read_text(), "max_linear_speed: 0.5\n")
        conn = sqlite3.connect(self.tmp / "fleet.db")
        self.assertEqual(conn.execute("SELECT count(*) FROM tasks").fetchone()[0], 100)
        conn.close()

        # no metrics history: performance_review fails with the reason, and the next task still runs
        resp, details = self.call("performance_review")
        self.assertFalse(resp.success)
        self.assertIn("no metrics history", details["reason"])
        resp, details = self.call("security_scan")
        self.assertTrue(resp.success, resp.message)
        self.wait(lambda: self.found("security_scan", "completed", "request")
                  or self.found("security_scan", "warning", "request"), "the scan reported")
        self.assertTrue(self.found("performance_review", "failed", "request"))
        # /diagnostics says which task failed
        status = self.wait(lambda: (lambda d: d if d and "performance_review" in d.message else None)(
            self.diagnostic(f"{names.MAINTENANCE_NODE}: maintenance")), "the failure in /diagnostics")
        self.assertEqual(status.level, DiagnosticStatus.WARN)


if __name__ == "__main__":
    rospy.init_node("maintenance_test")
    rostest.rosrun("vla_fleet", "maintenance", MaintenanceNodeTest)
