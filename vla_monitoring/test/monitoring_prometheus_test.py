#!/usr/bin/env python3
"""A real Prometheus scrapes monitoring_node: started on loopback (temporary folder, free port, 1 s scrape
interval), it must report the exporter up and return the counts the test published through /api/v1/query.
Every wait is bounded; the Prometheus process group is stopped after the test."""

import json
import shutil
import tempfile
import unittest
import urllib.parse
import urllib.request
from pathlib import Path

import rospy
import rostest
from monitoring_harness import MonitoringOutputs, action, log_entry, wait_subscribed
from std_msgs.msg import String

from vla_msgs import names
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.msg import Action
from vla_msgs.waiting import wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
INFERENCES, ACTIONS = 12, 7
SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: vla_robots
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


class PrometheusScrapeTest(unittest.TestCase):
    def setUp(self):
        self.out = MonitoringOutputs()
        self.action_pub = rospy.Publisher(names.ACTION, Action, queue_size=100)
        self.log_pub = rospy.Publisher(names.LOGS_JSON, String, queue_size=100)
        wait_subscribed((self.action_pub, self.log_pub))
        self.tmp = Path(tempfile.mkdtemp(prefix="vla_prometheus_"))
        (self.tmp / "prometheus.yml").write_text(SCRAPE_CONFIG.format(port=self.out.exporter_port()))
        self.api = f"http://127.0.0.1:{free_port()}"
        self.prometheus = ProcessGroup(
            [PROMETHEUS, f"--config.file={self.tmp / 'prometheus.yml'}", f"--storage.tsdb.path={self.tmp / 'data'}",
             f"--web.listen-address={self.api.removeprefix('http://')}", "--log.level=warn"],
            self.tmp / "prometheus.log")

    def tearDown(self):
        self.prometheus.stop(grace_s=(10.0, 5.0, 5.0))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def get(self, path: str) -> dict | None:
        try:
            with urllib.request.urlopen(self.api + path, timeout=5) as response:
                return json.loads(response.read().decode()) if path.startswith("/api/") else {}
        except OSError:
            return None  # not listening yet

    def query(self, promql: str) -> list:
        doc = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        return doc["data"]["result"] if doc and doc.get("status") == "success" else []

    def wait_value(self, promql: str, want: float, timeout_s: float = 30.0) -> dict:
        def holds():
            result = self.query(promql)
            return result[0] if len(result) == 1 and float(result[0]["value"][1]) == want else None
        try:
            return wait_until(holds, timeout_s, f"{promql} == {want:g} in Prometheus", clock=rospy.get_time,
                              poll_s=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it answers {self.query(promql)}; log: {self.prometheus.tail()}") from None

    def test_prometheus_scrapes_and_answers(self):
        wait_until(lambda: self.prometheus.alive() and self.get("/-/ready") is not None, 30.0,
                   "Prometheus ready", clock=rospy.get_time, poll_s=0.25)
        up = self.wait_value('up{job="vla_robots"}', 1.0)
        self.assertEqual(up["metric"]["instance"], f"127.0.0.1:{self.out.exporter_port()}")

        for i in range(INFERENCES):
            self.log_pub.publish(log_entry("inference", inference_time_ms=10.0, sequence_number=i))
        for _ in range(ACTIONS):
            self.action_pub.publish(action())

        series = self.wait_value('vla_inferences_total{robot_id="prom_robot"}', INFERENCES)
        self.assertEqual(series["metric"]["job"], "vla_robots")
        self.wait_value('vla_actions_total{robot_id="prom_robot"}', ACTIONS)
        self.wait_value('vla_inference_latency_seconds_count{robot_id="prom_robot"}', INFERENCES)
        self.wait_value('vla_inference_latency_seconds_bucket{robot_id="prom_robot",le="0.01"}', INFERENCES)
        self.wait_value('vla_inference_latency_seconds_bucket{robot_id="prom_robot",le="0.005"}', 0)


if __name__ == "__main__":
    rospy.init_node("monitoring_prometheus_test")
    rostest.rosrun("vla_monitoring", "monitoring_prometheus", PrometheusScrapeTest)
