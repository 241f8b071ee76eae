#!/usr/bin/env python3
"""OTA end to end on a real master: update_server and ota_updater_node (started here), inference_node
loading from current/. 1.1.0 is installed on `check_now` and served with no missed control period; 1.2.0
fails its vla_health watch and is rolled back by itself (the policy back to 1.1.0); `rollback` then goes
back to 1.0.0 on request. The server wants tokens: the node starts with a wrong one in its ~token_file (a
failed check, HTTP 401, nothing installed) and goes on once the file holds its token (read again on change).
vla_health is this test's own publisher: it decides which release is healthy."""

import os
import shutil
import unittest
from pathlib import Path

import rospy
import rostest
from diagnostic_msgs.msg import DiagnosticArray
from ota_harness import BAD_RELEASE, Camera, Health, Recorder, UpdateServer, clean, updater_node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_msgs import json_forms, names
from vla_msgs.msg import Action, UpdateStatus
from vla_msgs.waiting import wait_until

MISSED = ("starved_steps", "skipped_steps", "stale_frames")


class OtaUpdate(unittest.TestCase):
    def setUp(self):
        self.dir = Path(rospy.get_param("/ota_test_dir"))
        self.server = UpdateServer(self.dir, tokens={"robot_1": "tok-robot-1", "robot_2": "tok-robot-2"})
        self.token_file = Path(str(self.dir) + "-logs") / "robot_1.token"
        self.token_file.write_text("tok-not-robot-1\n")
        self.updater = updater_node(self.dir, self.server.url, health_window=3.0, token_file=self.token_file)

    def tearDown(self):
        self.updater.stop()
        self.server.stop()
        print(f"ota_updater_node's log:\n{self.updater.tail(40)}")
        clean(self.dir)

    def test_update_hot_swap_rollback(self):
        actions = Recorder(names.ACTION, Action)
        perf = Recorder(names.PERFORMANCE, String, json_forms.PERFORMANCE.parse)
        updates = Recorder(names.UPDATES, String, json_forms.UPDATES.parse)
        typed = Recorder(names.UPDATE_STATUS, UpdateStatus)
        diagnostics = Recorder(names.DIAGNOSTICS, DiagnosticArray)
        health = Health(self.dir / "robot" / "current")
        tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
        wait_until(lambda: tasks.get_num_connections() > 0, 60.0, "inference_node on task_command",
                   clock=rospy.get_time)
        cam = Camera()
        try:
            tasks.publish(String(data="go to the red cube"))
            actions.wait_for(lambda m: m.model_version == "1.0.0", 60.0, "an action of release 1.0.0")
            first = perf.wait_for(lambda d: d["action_count"] >= 5, 30.0, "five actions counted")
            before = perf.wait_for(lambda d: d["action_count"] > first["action_count"], 30.0, "a newer count")

            rospy.wait_for_service(names.OTA_CHECK_NOW, timeout=60.0)
            check = rospy.ServiceProxy(names.OTA_CHECK_NOW, Trigger)
            # a wrong token: a clear failed check, nothing installed; the right one written: the update goes on
            self.assertTrue(check().success)
            refused = updates.wait_for(lambda d: d["status"] == "failed" and "HTTP 401" in d["message"], 60.0,
                                       "the check refused with HTTP 401")
            self.assertIn("the server refused us", refused["message"])
            diagnostics.wait_for(lambda m: any(kv.key == "refused by the server (401/403)" and kv.value == "1"
                                               for st in m.status for kv in st.values), 30.0,
                                 "the refusal counted on the updater's diagnostics")
            self.assertEqual(os.readlink(self.dir / "robot" / "current"), "releases/1.0.0")
            self.token_file.write_text("tok-robot-1\n")
            wait_until(lambda: check().success, 30.0, "the updater to take the next check", clock=rospy.get_time)
            done = self._wait_status(updates, "completed", "1.1.0")
            self.assertEqual(done["previous_version"], "1.0.0")
            actions.wait_for(lambda m: m.model_version == "1.1.0", 30.0, "an action of release 1.1.0")
            after = perf.wait_for(lambda d: d["model_version"] == "1.1.0"
                                  and d["action_count"] >= before["action_count"] + 20, 60.0, "20 steps on 1.1.0")
            for key in MISSED:
                self.assertEqual(after[key], before[key], f"{key} grew across the update")
            steps = [d["status"] for d in updates.snapshot()]
            for step in ("checking", "downloading", "verifying", "applying", "completed"):
                self.assertIn(step, steps)
            typed.wait_for(lambda m: m.status == "completed" and m.version == "1.1.0"
                           and m.previous_version == "1.0.0", 10.0, "the typed completed status")
            versions = [m.model_version for m in actions.snapshot()]
            self.assertNotIn("1.0.0", versions[versions.index("1.1.0"):], "the old policy acted after the swap")

            # 1.2.0 makes vla_health critical: rolled back by itself, 1.1.0 serving again
            for suffix in ("", ".sig"):
                shutil.copy(self.dir / "later" / f"vla-1.2.0.tar.gz{suffix}", self.dir / "server")
            self.assertTrue(check().success)
            back = self._wait_status(updates, "rolled_back", BAD_RELEASE)
            self.assertEqual(back["previous_version"], "1.1.0")
            self.assertIn("vla_health unhealthy", back["message"])
            self.assertEqual(os.readlink(self.dir / "robot" / "current"), "releases/1.1.0")
            count = len(actions.snapshot())
            wait_until(lambda: len(actions.snapshot()) > count + 5 and
                       actions.snapshot()[-1].model_version == "1.1.0", 30.0, "1.1.0 acting after the rollback",
                       clock=rospy.get_time)
            fleet = self.server.fleet()
            self.assertIn("robot_1 reported rolled_back", fleet["rollouts"][BAD_RELEASE]["halted"])

            # on request, back to 1.0.0
            result = rospy.ServiceProxy(names.OTA_ROLLBACK, Trigger)()
            self.assertTrue(result.success, result.message)
            self.assertIn("from 1.1.0 to 1.0.0", result.message)
            count = len(actions.snapshot())
            wait_until(lambda: len(actions.snapshot()) > count + 5 and
                       actions.snapshot()[-1].model_version == "1.0.0", 30.0, "1.0.0 acting after the rollback",
                       clock=rospy.get_time)
        finally:
            cam.stop()
            health.stop()

    def _wait_status(self, updates: Recorder, status: str, version: str) -> dict:
        return updates.wait_for(lambda d: d["status"] == status and d["version"] == version, 120.0,
                                f"{status} {version}")


if __name__ == "__main__":
    rospy.init_node("test_ota_update")
    rostest.rosrun("vla_deployment", "ota_update", OtaUpdate)
