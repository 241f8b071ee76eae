#!/usr/bin/env python3
"""dashboard_node seen through headless Chromium: while two robots' topics and /robot_status carry changing
values, the shown numbers, charts and fleet table change without a reload; safety reasons, health
components and alerts (firing, then resolved) appear; a robot whose safety status stops is flagged; garbage
on every input is counted on the page and the node keeps serving. Screenshots (light and dark) are kept
under the test results directory. Waits are in ROS time."""

import math
import tempfile
import threading
import unittest
import urllib.request
from pathlib import Path

import rospkg
import rospy
import rostest
from diag_recorder import NodeDiagnostics
from selenium.webdriver.common.by import By
from std_msgs.msg import String

from vla_monitoring.browser import open_chromium, screenshot_page, set_color_scheme
from vla_msgs import json_forms, names
from vla_msgs.msg import InferenceStats
from vla_msgs.waiting import wait_until

ROBOTS = ("robot_1", "robot_2")
JSON_TOPICS = (names.METRICS_JSON, names.RESOURCES_JSON, names.SAFETY_STATUS_JSON, names.HEALTH_JSON,
               names.ALERTS_JSON)
FEED_HZ = 5.0
WAIT_S = 30.0
# A field shown on the page must take this many different values while the test watches.
CHANGES = 3


class Feeder:
    """Publishes every input of the dashboard for each robot, values changing at every step."""

    def __init__(self):
        self.step = 0
        self.silent: set[str] = set()  # robots whose topics stop (their values go stale)
        self.pubs = {r: {t: rospy.Publisher(f"{r}/{t}", String, queue_size=10) for t in JSON_TOPICS} for r in ROBOTS}
        self.stats = {r: rospy.Publisher(f"{r}/{names.INFERENCE_STATS}", InferenceStats, queue_size=10)
                      for r in ROBOTS}
        self.fleet = rospy.Publisher(names.ROBOT_STATUS_JSON, String, queue_size=10)

    def wait_connected(self):
        pubs = [p for r in ROBOTS for p in (*self.pubs[r].values(), self.stats[r])] + [self.fleet]
        wait_until(lambda: all(p.get_num_connections() > 0 for p in pubs), WAIT_S, "dashboard_node subscribed",
                   clock=rospy.get_time)

    def run(self):
        rate = rospy.Rate(FEED_HZ)
        while not rospy.is_shutdown():
            self.publish_step(self.step)
            self.step += 1
            rate.sleep()

    def publish_step(self, k: int) -> None:
        now = rospy.get_time()
        for i, robot in enumerate(ROBOTS):
            if robot in self.silent:
                continue
            pub = self.pubs[robot]
            p50 = 20.0 + k % 7 + 10 * i
            self.stats[robot].publish(InferenceStats(
                mode="edge", model_version="2.0.0", current_task="go to the red cube", window_s=2.0,
                fps=8.0 + (k % 5) * 0.5 + i, inference_ms_mean=p50 + 1.0, inference_ms_p50=p50,
                inference_ms_p99=p50 + 15.0 + k % 3, inference_count=10 * k, action_count=10 * k,
                error_count=k // 4))
            pub[names.METRICS_JSON].publish(String(data=json_forms.METRICS.build(
                timestamp=now, inference_count=10 * k, error_count=k // 4, action_count=10 * k, uptime_seconds=k,
                performance_summary={}, error_rate=(k % 4) / 20.0)))
            pub[names.RESOURCES_JSON].publish(String(data=json_forms.RESOURCES.build(
                timestamp=now, cpu_percent=20.0 + (7 * k + 13 * i) % 60, memory_percent=40.0 + k % 10,
                disk_percent=50.0, gpu_percent=None, gpu_memory_percent=None, nodes={})))
            limited = (k // 10) % 2 == 1
            pub[names.SAFETY_STATUS_JSON].publish(String(data=json_forms.SAFETY_STATUS.build(
                timestamp=now, status="LIMITED" if limited else "OK",
                reason=f"obstacle at {0.5 + (k % 10) / 10:.1f} m: speed scaled" if limited else "",
                emergency_stop=False)))
            components = {"vision": True, "language": True, "action": (k // 10) % 3 != 2, "communication": True}
            pub[names.HEALTH_JSON].publish(String(data=json_forms.HEALTH.build(
                timestamp=now, components=components, overall_status=all(components.values()),
                level="healthy" if all(components.values()) else "degraded",
                details={c: {"healthy": ok, "reason": "" if ok else "no vla/action for 1.2 s"}
                         for c, ok in components.items()})))
            self.fleet.publish(String(data=json_forms.ROBOT_STATUS.build(
                timestamp=now, robot_id=robot, status="busy", position=[math.cos(k / 10) + i, math.sin(k / 10), 0.0],
                battery=max(5.0, 95.0 - 0.5 * k - 20 * i), current_task_id=f"task-{k // 10}",
                capabilities=["navigation"])))


class DashboardBrowserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.url = rospy.get_param("~url")
        cls.results = Path(rospkg.get_test_results_dir()) / "vla_monitoring"
        cls.diag = NodeDiagnostics("dashboard_node")
        cls.feeder = Feeder()
        cls.feeder.wait_connected()
        threading.Thread(target=cls.feeder.run, daemon=True).start()
        wait_until(cls._serving, WAIT_S, f"the page at {cls.url}", clock=rospy.get_time)
        cls.profile = tempfile.TemporaryDirectory(prefix="dashboard_chromium_")
        cls.driver = open_chromium(Path(cls.profile.name))
        cls.driver.get(cls.url)
        set_color_scheme(cls.driver, "light")
        cls.light_bg = cls.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        # Survives only as long as the page is not reloaded.
        cls.driver.execute_script("window.__loadedOnce = 'yes';")

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.profile.cleanup()

    @classmethod
    def _serving(cls) -> bool:
        try:
            with urllib.request.urlopen(cls.url + "healthz", timeout=2.0) as resp:
                return resp.status == 200
        except OSError:
            return False

    # ---- reading the page ----
    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def shown(self, name: str) -> str:
        return self.js("const e = document.querySelector(`[data-field=\"${arguments[0]}\"]`);"
                       "return e ? e.textContent.trim() : null;", name)

    def wait_page(self, condition, what: str, timeout_s: float = WAIT_S):
        return wait_until(condition, timeout_s, what, clock=rospy.get_time, poll_s=0.1)

    def wait_changes(self, fields: tuple[str, ...]) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {f: set() for f in fields}

        def changed_enough() -> bool:
            for f in fields:
                text = self.shown(f)
                if text and text != "—":
                    seen[f].add(text)
            return all(len(v) >= CHANGES for v in seen.values())
        try:
            self.wait_page(changed_enough, f"{CHANGES} different values of each of {fields}", 60.0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; seen {seen}") from None
        return seen

    def chart_points(self, chart: str) -> int:
        return self.js("const c = Chart.getChart(arguments[0]); return c.data.datasets[0].data.length;", chart)

    def select(self, robot: str) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f'.tab[data-robot="{robot}"]').click()
        self.wait_page(lambda: self.shown("safety_status") and
                       self.driver.find_element(By.ID, "robot-name").text == robot, f"{robot} selected")

    def screenshot(self, scheme: str) -> Path:
        """The whole page in the light or dark scheme, once the page has taken up its colours."""
        set_color_scheme(self.driver, scheme)
        bg = "return getComputedStyle(document.body).backgroundColor"
        self.wait_page(lambda: (self.js(bg) == self.light_bg) == (scheme == "light"), f"{scheme} colours")
        return screenshot_page(self.driver, self.results / f"dashboard_{scheme}.png")

    def publish_alert(self, robot: str, state: str) -> None:
        self.feeder.pubs[robot][names.ALERTS_JSON].publish(String(data=json_forms.ALERTS.build(
            timestamp=rospy.get_time(), level="ERROR", type="error_rate", alert_id="error_rate_high", state=state,
            message="error rate 15 % above 10 %" if state == "firing" else "error rate back to 2 %",
            value=0.15 if state == "firing" else 0.02)))

    # ---- the scenario ----
    def test_1_page_is_live_without_reload(self):
        self.wait_page(lambda: self.shown("cpu_percent") not in (None, "—"), "the first values on the page")
        self.select("robot_1")
        seen = self.wait_changes(("cpu_percent", "fps", "latency_ms_p50", "latency_ms_p99", "error_rate_percent",
                                  "now"))
        rospy.loginfo("values shown over time: %s", {k: sorted(v) for k, v in seen.items()})

        points = self.chart_points("chart-resources")
        self.wait_page(lambda: self.chart_points("chart-resources") >= points + 3, "the CPU chart grows")
        for chart in ("chart-latency", "chart-fps", "chart-errors"):
            self.assertGreater(self.chart_points(chart), 3, chart)

        battery = self.wait_page(lambda: self.js(
            "return Array.from(document.querySelectorAll('#fleet-table [data-fleet=battery]'))"
            ".map(e => e.textContent);"), "the fleet table")
        self.assertEqual(len(battery), len(ROBOTS))
        self.wait_page(lambda: self.js(
            "return document.querySelector('#fleet-table [data-fleet=battery]').textContent") != battery[0],
            "battery shown to change")

        self.wait_page(lambda: self.shown("safety_status") == "LIMITED" and
                       "obstacle at" in (self.shown("safety_reason") or ""), "a safety state shown with its reason")
        self.wait_page(lambda: self.js("return document.querySelector('[data-field=health_components] .chip.bad')"
                                       " ?.textContent") == "✕ action", "a health component shown down")

        self.publish_alert("robot_1", "firing")
        active = "return document.querySelector('#alerts-active tbody').textContent"
        self.wait_page(lambda: "error_rate_high" in self.js(active), "the alert shown active")
        self.assertIn("ERROR", self.js(active))
        shots = [self.screenshot("light"), self.screenshot("dark")]
        self.screenshot("light")
        rospy.loginfo("dashboard screenshots: %s", " ".join(map(str, shots)))
        print(f"dashboard screenshots: {' '.join(map(str, shots))}")

        self.publish_alert("robot_1", "resolved")
        self.wait_page(lambda: "error_rate_high" not in self.js(active), "the alert resolved")
        self.assertIn("resolved", self.js("return document.querySelector('#alerts-recent').textContent").lower())

        self.select("robot_2")
        self.wait_changes(("cpu_percent", "fps"))
        self.feeder.silent.add("robot_2")  # its safety status stops: never shown as fine
        self.wait_page(lambda: "stale" in (self.driver.find_element(By.ID, "tile-safety").get_attribute("class")),
                       "robot_2's safety status shown stale")
        self.assertIn("dot-error", self.driver.find_element(
            By.CSS_SELECTOR, '.tab[data-robot="robot_2"] .dot').get_attribute("class"))
        self.feeder.silent.discard("robot_2")
        self.select("robot_1")

        self.assertEqual(self.js("return window.__loadedOnce"), "yes", "the page was reloaded")

    def test_2_garbage_is_counted_and_shown(self):
        garbage = ["", "not json", '{"timestamp": NaN}', "[]", '{"timestamp": 1, "status": "FINE"}']
        topics = [f"/robot_1/{t}" for t in JSON_TOPICS] + [names.ROBOT_STATUS_JSON]
        before = int(self.shown("bad_input_total"))
        pubs = [*(self.feeder.pubs["robot_1"][t] for t in JSON_TOPICS), self.feeder.fleet]
        for pub in pubs:
            for text in garbage:
                pub.publish(String(data=text))
        self.feeder.stats["robot_1"].publish(InferenceStats(fps=math.nan))
        self.feeder.stats["robot_1"].publish(InferenceStats(fps=-4.0))
        expected = before + len(garbage) * len(topics) + 2
        self.wait_page(lambda: int(self.shown("bad_input_total")) >= expected, f"{expected} dropped inputs shown")
        counts = self.js("return window.vlaDashboard.snapshot().bad_input.by_source")
        for topic in [*topics, f"/robot_1/{names.INFERENCE_STATS}"]:
            self.assertGreaterEqual(counts.get(topic, 0), 2 if "inference" in topic else len(garbage), topic)
        source = f"/robot_1/{names.METRICS_JSON}"
        self.wait_page(lambda: int((self.diag.values("inputs") or {}).get(f"dropped {source}", 0)) >= len(garbage),
                       "the dropped inputs on /diagnostics")
        self.assertTrue(self.diag.values("inputs")[f"last bad {source}"].startswith(f"{names.METRICS_JSON}: "))
        self.assertEqual(self.diag.message("dashboard"), f"serving {self.url}")
        self.wait_changes(("now", "cpu_percent"))  # still serving, still fed
        self.assertEqual(self.js("return window.__loadedOnce"), "yes", "the page was reloaded")


if __name__ == "__main__":
    rospy.init_node("dashboard_browser_test")
    rostest.rosrun("vla_monitoring", "dashboard_browser", DashboardBrowserTest)
