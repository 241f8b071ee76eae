#!/usr/bin/env python3
"""kill -9 of ota_updater_node mid-update: killed while watching the switched 1.1.0 (a long health window),
1.1.0 stays active with the journal saying so; the restarted node (short window) reloads the policy, watches
it and reports completed; the server's fleet view has the robot on 1.1.0. Then a rollback cut short after
its journal: the next start finishes it and the inference node serves 1.0.0 again."""

import json
import os
import signal
import time
import unittest
from pathlib import Path

import rospy
import rostest
from ota_harness import Camera, Health, Recorder, UpdateServer, clean, updater_node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_fleet.ota.signing import load_verify_key
from vla_fleet.ota.updater import Updater
from vla_msgs import json_forms, names
from vla_msgs.msg import Action
from vla_msgs.waiting import wait_until


class _Cut(Exception):  # noqa: N818 (not an error: where the test cuts the process short)
    pass


def _cut_at(point: str):
    def hook(at: str) -> None:
        if at == point:
            raise _Cut(at)
    return hook


class OtaRestart(unittest.TestCase):
    def test_kill_9_while_watching_then_restart(self):
        directory = Path(rospy.get_param("/ota_test_dir"))
        server = UpdateServer(directory)
        url = server.url
        actions = Recorder(names.ACTION, Action)
        updates = Recorder(names.UPDATES, String, json_forms.UPDATES.parse)
        health = Health(directory / "robot" / "current")
        tasks = rospy.Publisher(names.TASK_COMMAND, String, queue_size=1, latch=True)
        wait_until(lambda: tasks.get_num_connections() > 0, 60.0, "inference_node on task_command",
                   clock=rospy.get_time)
        cam = Camera()
        node = updater_node(directory, url, health_window=600.0, log_name="updater-1.log")
        try:
            tasks.publish(String(data="go to the red cube"))
            actions.wait_for(lambda m: m.model_version == "1.0.0", 60.0, "an action of release 1.0.0")
            rospy.wait_for_service(names.OTA_CHECK_NOW, timeout=60.0)
            self.assertTrue(rospy.ServiceProxy(names.OTA_CHECK_NOW, Trigger)().success)
            updates.wait_for(lambda d: d["status"] == "applying" and d["message"].startswith("watching"), 120.0,
                             "the watch of 1.1.0")
            os.killpg(node.proc.pid, signal.SIGKILL)
            node.stop()
            self.assertEqual(os.readlink(directory / "robot" / "current"), "releases/1.1.0")
            journal = json.loads((directory / "robot" / "journal.json").read_text())
            self.assertEqual((journal["phase"], journal["version"], journal["previous"]),
                             ("switched", "1.1.0", "1.0.0"))

            node = updater_node(directory, url, health_window=2.0, log_name="updater-2.log")
            done = updates.wait_for(lambda d: d["status"] == "completed" and d["version"] == "1.1.0", 120.0,
                                    "completed 1.1.0 after the restart")
            self.assertEqual(done["previous_version"], "1.0.0")
            actions.wait_for(lambda m: m.model_version == "1.1.0", 30.0, "an action of release 1.1.0")
            self.assertFalse((directory / "robot" / "journal.json").exists())
            fleet = wait_until(lambda: (f := server.fleet()) and f["robots"]["robot_1"].get("version") == "1.1.0"
                               and f, 30.0, "the server's fleet view on 1.1.0", clock=rospy.get_time)
            self.assertEqual(fleet["robots"]["robot_1"]["status"], "completed")

            # a rollback cut off after its journal (the core's test-only crash hook, in this process): 1.1.0 still
            # active and serving; the next start finishes the rollback and reloads the policy
            node.stop()
            interrupted = Updater(directory / "robot", load_verify_key(directory / "keys" / "ota_ed25519.pub"),
                                  clock=time.time, report=lambda *a: None, crash_hook=_cut_at("rolling_back"))
            with self.assertRaises(_Cut):
                interrupted.rollback("1.1.0", "operator")
            self.assertEqual(os.readlink(directory / "robot" / "current"), "releases/1.1.0")
            node = updater_node(directory, url, health_window=2.0, log_name="updater-3.log")
            wait_until(lambda: os.readlink(directory / "robot" / "current") == "releases/1.0.0", 60.0,
                       "the rollback finished", clock=rospy.get_time)
            count = len(actions.snapshot())
            wait_until(lambda: len(actions.snapshot()) > count + 5
                       and actions.snapshot()[-1].model_version == "1.0.0", 60.0, "1.0.0 acting again",
                       clock=rospy.get_time)
        finally:
            cam.stop()
            health.stop()
            node.stop()
            server.stop()
            print(f"ota_updater_node's log after the restart:\n{node.tail(40)}")
            clean(directory)


if __name__ == "__main__":
    rospy.init_node("test_ota_restart")
    rostest.rosrun("vla_deployment", "ota_restart", OtaRestart)
