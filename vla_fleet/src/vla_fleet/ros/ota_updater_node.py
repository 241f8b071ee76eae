"""ota_updater_node: one robot's `vla_fleet.ota.updater.Updater` on ROS time.

Checks every ~check_interval and on `ota_updater/check_now`; every step goes out on /vla_updates (JSON)
and /fleet/update_status (vla_msgs/UpdateStatus). After a switch it calls inference_node/load_model and
watches vla_health for ~health_window; a failure rolls back by itself. `ota_updater/rollback` rolls back
on demand. Updates run on one worker thread, so callbacks never wait for a download.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import rospy
from std_msgs.msg import String
from std_srvs.srv import Trigger, TriggerResponse

from vla_fleet.ota.auth import RobotToken, TokenFileError, readable_by_others
from vla_fleet.ota.config import OtaUpdaterConfig
from vla_fleet.ota.download import ServerClient
from vla_fleet.ota.health import HealthWatch
from vla_fleet.ota.package import Caps, PackageError, parse_manifest
from vla_fleet.ota.signing import SignatureError, load_verify_key
from vla_fleet.ota.updater import Pending, UpdateError, Updater
from vla_monitoring.bad_input import BadInputCounter
from vla_monitoring.config import CONFIG_EXIT_CODE
from vla_monitoring.ros.callbacks import counted_callback
from vla_monitoring.ros.diagnostics import ERROR, OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.json_forms import ProtocolError
from vla_msgs.msg import UpdateStatus
from vla_msgs.states import UpdateState

_log = logging.getLogger(__name__)
MB = 1 << 20
PROGRESS_PERIOD_S = 0.5  # progress within one status is published at most this often; status changes always


class _ShutdownError(Exception):
    """The node shuts down mid-watch: the journal keeps the release unconfirmed for the next start."""


class OtaUpdaterNode:
    def __init__(self, config: OtaUpdaterConfig, verify_key, token: RobotToken | None = None):
        self.cfg = config
        self.bad = BadInputCounter(clock=rospy.get_time)
        self.pub_json = rospy.Publisher(names.UPDATES, String, queue_size=50)
        self.pub_typed = rospy.Publisher(names.UPDATE_STATUS, UpdateStatus, queue_size=50)
        self._last_published = (("", ""), 0.0)
        self.last = {"status": "", "version": "", "previous": "", "message": ""}
        self.updater = Updater(Path(config.releases_dir), verify_key, clock=rospy.get_time, report=self._report,
                               max_package_bytes=int(config.max_package_mb * MB), keep_releases=config.keep_releases,
                               caps=Caps(int(config.max_unpacked_mb * MB), config.max_files))
        self.client = ServerClient(config.server_url, config.request_timeout_s, config.ca_file, token or "")
        self._load = rospy.ServiceProxy(names.INFERENCE_LOAD_MODEL, Trigger)
        self._watch: HealthWatch | None = None
        self._busy = threading.Lock()
        self._requests: queue.Queue[str] = queue.Queue(maxsize=1)

        self.diag = Diagnostics(config.robot_id)
        self.diag.task("ota", self._diag)
        self.diag.bad_input(self.bad, (names.HEALTH_JSON,))
        rospy.Subscriber(names.HEALTH_JSON, String, self._on_health, queue_size=10)
        rospy.Service(names.OTA_CHECK_NOW, Trigger, self._on_check_now)
        rospy.Service(names.OTA_ROLLBACK, Trigger, self._on_rollback)
        if config.check_on_start:
            self._request("check")
        # the worker first finishes or undoes what a killed predecessor left, then takes requests
        self._worker = threading.Thread(target=self._work, name="ota_worker", daemon=True)
        self._worker.start()
        rospy.Timer(rospy.Duration(config.check_interval), lambda _e: self._request("check"))

    # ------------------------------------------------------------------ reporting
    def _report(self, status: str, version: str, previous: str, progress: float, message: str) -> None:
        status = str(status)
        now = rospy.get_time()
        # progress alone (same status and message) is thinned out; every new step or message goes out
        if (status, message) == self._last_published[0] and 0.0 < progress < 1.0 \
                and now - self._last_published[1] < PROGRESS_PERIOD_S:
            return
        self._last_published = ((status, message), now)
        self.last = {"status": status, "version": version, "previous": previous, "message": message}
        log = _log.warning if status in (UpdateState.FAILED, UpdateState.ROLLED_BACK) else _log.info
        if not (0.0 < progress < 1.0):
            log("%s %s (from %s): %s", status, version or "-", previous or "-", message)
        self.pub_json.publish(String(data=json_forms.UPDATES.build(
            timestamp=now, status=status, version=version or None, previous_version=previous,
            progress=round(progress, 4), message=message, robot_id=self.cfg.robot_id)))
        msg = UpdateStatus(status=status, version=version, previous_version=previous, progress=progress,
                           message=message)
        msg.header.stamp = rospy.Time.from_sec(now)
        msg.header.frame_id = self.cfg.robot_id
        self.pub_typed.publish(msg)

    # ------------------------------------------------------------------ inputs
    @counted_callback(names.HEALTH_JSON, (ProtocolError,))
    def _on_health(self, msg: String) -> None:
        doc = json_forms.HEALTH.parse(msg.data)
        watch = self._watch
        if watch is not None:
            watch.feed(doc, rospy.get_time())

    def _request(self, what: str) -> bool:
        try:
            self._requests.put_nowait(what)
            return True
        except queue.Full:  # one is waiting already: it will do
            return False

    def _on_check_now(self, _req) -> TriggerResponse:
        if self._busy.locked():
            return TriggerResponse(success=False, message=f"an update is under way ({self.last['status']} "
                                                          f"{self.last['version']}); try again after it")
        queued = self._request("check")
        return TriggerResponse(success=True, message=f"check {'started' if queued else 'already queued'}; "
                                                     f"running {self.updater.current_version()}; "
                                                     f"progress on {names.UPDATES}")

    def _on_rollback(self, _req) -> TriggerResponse:
        if not self._busy.acquire(blocking=False):
            return TriggerResponse(success=False, message=f"an update is under way ({self.last['status']} "
                                                          f"{self.last['version']}); try again after it")
        try:
            current = self.updater.current_version()
            target = self.updater.rollback(current, f"requested on {names.OTA_ROLLBACK}")
            ok, why = self._reload()
            self.updater.tell_server(self.client, self.cfg.robot_id, current, target, UpdateState.ROLLED_BACK,
                                      "rolled back on request")
            return TriggerResponse(success=ok, message=f"rolled back from {current} to {target}"
                                   + ("" if ok else f"; the policy did not reload: {why}"))
        except (UpdateError, OSError) as exc:
            return TriggerResponse(success=False, message=f"not rolled back: {exc}")
        finally:
            self._busy.release()

    # ------------------------------------------------------------------ the worker
    def _reload(self) -> tuple[bool, str]:
        try:
            self._load.wait_for_service(timeout=self.cfg.load_model_timeout_s)
            resp = self._load()
        except (rospy.ROSException, rospy.ServiceException) as exc:
            return False, f"{names.INFERENCE_LOAD_MODEL}: {exc}"
        return bool(resp.success), f"{names.INFERENCE_LOAD_MODEL}: {resp.message}"

    def _watch_health(self, pending: Pending) -> tuple[bool, str]:
        release = self.updater.releases / pending.version
        try:
            manifest = parse_manifest((release / "manifest.json").read_bytes())
        except (OSError, PackageError) as exc:
            return False, f"manifest unreadable: {exc}"
        self._watch = watch = HealthWatch(manifest, release, rospy.get_time(), self.cfg.health_window)
        self._report(UpdateState.APPLYING, pending.version, pending.previous, 0.97,
                     f"watching vla_health for {self.cfg.health_window:g} s")
        try:
            rate = rospy.Rate(10.0)
            while (verdict := watch.verdict(rospy.get_time())) is None:
                if rospy.is_shutdown():
                    raise _ShutdownError
                try:
                    rate.sleep()
                except rospy.ROSInterruptException as exc:
                    raise _ShutdownError from exc
            return verdict
        finally:
            self._watch = None

    def _work(self) -> None:
        what = "recover"
        while not rospy.is_shutdown():
            with self._busy:
                try:
                    if what == "recover":
                        interrupted = self.updater.journal() is not None
                        pending = self.updater.recover()
                        if pending is not None:
                            self.updater.settle(pending, self.client, self.cfg.robot_id, self._reload,
                                                self._watch_health)
                        elif interrupted:  # killed around a switch: the running policy may not be current's
                            ok, why = self._reload()
                            if not ok:
                                _log.warning("after recovering, the policy did not reload: %s", why)
                    else:
                        self.updater.run(self.client, self.cfg.robot_id, self._reload, self._watch_health)
                except _ShutdownError:
                    return
                except Exception:  # the worker must outlive one bad update: the journal keeps the disk consistent
                    _log.exception("update step failed unexpectedly")
                    self._report(UpdateState.FAILED, "", self.updater.current_version(), 0.0,
                                 "internal error; see the node's log")
            what = ""
            while not what and not rospy.is_shutdown():
                try:
                    what = self._requests.get(timeout=1.0)
                except queue.Empty:
                    continue

    def _diag(self, stat: Status) -> Status:
        current = self.updater.current_version()
        status = self.last["status"]
        level = ERROR if status == UpdateState.FAILED else WARN if status == UpdateState.ROLLED_BACK else OK
        stat.summary(level, f"running {current}; last: {status or 'none'} {self.last['version']} "
                            f"{self.last['message']}".strip())
        stat.add("current version", current)
        stat.add("installed", ", ".join(self.updater.installed()))
        stat.add("server", self.cfg.server_url)
        stat.add("token", self.cfg.token_file or "none sent")
        stat.add("refused by the server (401/403)", str(self.client.auth_failures))
        stat.add("busy", str(self._busy.locked()))
        return stat


def main() -> None:
    rospy.init_node(names.OTA_UPDATER_NODE)
    config = load_config(OtaUpdaterConfig)
    bridge_logging(("vla_fleet",), VlaLogs(rospy.get_name(), config.robot_id))
    try:
        verify_key = load_verify_key(Path(config.public_key_file).expanduser())
    except (SignatureError, OSError) as exc:
        rospy.logfatal(f"{rospy.get_name()}: ~public_key_file {config.public_key_file!r}: {exc}")
        raise SystemExit(CONFIG_EXIT_CODE) from exc
    token = None
    if config.token_file:
        try:
            token = RobotToken(config.token_file)
        except TokenFileError as exc:
            rospy.logfatal(f"{rospy.get_name()}: ~token_file: {exc}")
            raise SystemExit(CONFIG_EXIT_CODE) from exc
        if readable_by_others(config.token_file):
            rospy.logwarn(f"~token_file {config.token_file} is readable by group or others: chmod 600 it")
    OtaUpdaterNode(config, verify_key, token)
    rospy.loginfo("ota_updater_node up: %s, server %s, releases in %s", config.robot_id, config.server_url,
                  config.releases_dir)
    rospy.spin()
