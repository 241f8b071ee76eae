"""resource_monitor_node: the machine's and the suite's nodes' resource use on vla_resources, vla/resources
and /diagnostics.

The publishing timer samples without blocking (psutil's cpu_percent against the previous sample);
which of the suite's nodes run on this host, and their pids, is asked of the master on a timer of
its own every `~node_refresh_s`, each call with a timeout, so a hung node never delays a sample.
"""

from __future__ import annotations

import threading

import rosgraph
import rospy
from std_msgs.msg import String

from vla_monitoring.gpu import detect_gpu
from vla_monitoring.resources import (
    ResourceConfig,
    ResourceSample,
    ResourceSampler,
    assess,
    is_local_uri,
    json_fields,
    local_addresses,
)
from vla_monitoring.ros.diagnostics import OK, WARN, Diagnostics, Status
from vla_monitoring.ros.log_bridge import VlaLogs, bridge_logging
from vla_monitoring.ros.master import LookupFailed, lookup_node, node_pid
from vla_monitoring.ros.params import load_config
from vla_msgs import json_forms, names
from vla_msgs.msg import ResourceUsage

UNKNOWN = -1.0  # vla_msgs/ResourceUsage's value for a reading this machine does not have


class ResourceMonitorNode:
    def __init__(self, config: ResourceConfig):
        self.cfg = config
        self.sampler = ResourceSampler(config, detect_gpu())
        self.sample: ResourceSample | None = None
        self.master_uri = rosgraph.get_master_uri()
        self.addresses = local_addresses()
        # Resolved once: relative names are in this node's namespace (a robot's group), absolute ones as given.
        self.watched = list(dict.fromkeys(rospy.resolve_name(n) for n in config.nodes))
        self._known: dict[str, tuple[str, int]] = {}  # node -> (XML-RPC URI, pid) of the newest lookup
        self.lookup_notes: dict[str, str] = {}        # node -> why it is not followed
        self.lookups = 0
        self._lookup_lock = threading.Lock()

        self.json_pub = rospy.Publisher(names.RESOURCES_JSON, String, queue_size=5)
        self.typed_pub = rospy.Publisher(names.RESOURCES, ResourceUsage, queue_size=5)
        self.diag = Diagnostics(config.robot_id, period_s=1.0)
        self.diag.task("resources", self._diag_resources)
        self.diag.task("nodes", self._diag_nodes)
        self.lookup_timer = rospy.Timer(rospy.Duration(config.node_refresh_s), self._on_lookup)
        self.timer = rospy.Timer(rospy.Duration(1.0 / config.rate), self._on_tick)
        threading.Thread(target=self._on_lookup, args=(None,), name="first_lookup", daemon=True).start()

    def _on_lookup(self, _event: rospy.timer.TimerEvent | None) -> None:
        """Which watched nodes run on this host now, and their pids; a pid is asked again only when the
        node re-registered (a new URI)."""
        if not self._lookup_lock.acquire(blocking=False):
            return  # the previous round is still waiting on a slow peer
        try:
            caller, timeout = rospy.get_name(), self.cfg.lookup_timeout_s
            pids, notes = {}, {}
            for node in self.watched:
                try:
                    uri = lookup_node(self.master_uri, caller, node, timeout)
                    if not is_local_uri(uri, self.addresses):
                        notes[node] = f"runs on another host ({uri})"
                        continue
                    known = self._known.get(node)
                    pid = known[1] if known and known[0] == uri else node_pid(uri, caller, timeout)
                except LookupFailed as exc:
                    notes[node] = str(exc)
                    continue
                self._known[node] = (uri, pid)
                pids[node] = pid
            for node in [n for n in self._known if n not in pids]:
                del self._known[node]
            self.sampler.nodes.track(pids)
            self.lookup_notes = notes
            self.lookups += 1
        except Exception:  # an exception would end rospy's timer thread: log it, look again next period
            rospy.logerr_throttle(30.0, "resource_monitor_node: node lookup failed", exc_info=True)
        finally:
            self._lookup_lock.release()

    def _on_tick(self, _event: rospy.timer.TimerEvent) -> None:
        try:
            sample = self.sampler.sample()
            self.sample = sample
            self._publish(sample)
        except Exception:  # an exception would end rospy's timer thread: log it and sample on the next tick
            rospy.logerr_throttle(5.0, "resource_monitor_node: sample failed", exc_info=True)

    def _publish(self, sample: ResourceSample) -> None:
        now = rospy.Time.now()
        text = json_forms.RESOURCES.build(timestamp=now.to_sec(), robot_id=self.cfg.robot_id, **json_fields(sample))
        self.json_pub.publish(String(data=text))
        msg = ResourceUsage(hostname=sample.hostname, cpu_percent=sample.cpu_percent,
                            memory_percent=sample.memory_percent)
        msg.header.stamp = now
        for name in ("disk_percent", "gpu_percent", "gpu_memory_percent"):
            value = getattr(sample, name)
            setattr(msg, name, UNKNOWN if value is None else value)
        self.typed_pub.publish(msg)

    def _diag_resources(self, stat: Status) -> Status:
        s = self.sample
        if s is None:
            stat.summary(WARN, "no sample yet")
            return stat
        over = assess(s, self.cfg)
        gpu = self.sampler.gpu.description if s.gpus else "no GPU"
        disk = "unknown" if s.disk_percent is None else f"{s.disk_percent:.0f} %"
        stat.summary(WARN if over else OK, "; ".join(over) if over else
                     f"CPU {s.cpu_percent:.0f} %, memory {s.memory_percent:.0f} %, disk {disk}, {gpu}")
        stat.add("cpu_percent", f"{s.cpu_percent:.1f}")
        stat.add("cpu_percent_per_core", " ".join(f"{v:.0f}" for v in s.cpu_percent_per_core))
        stat.add("load_average", " ".join(f"{v:.2f}" for v in s.load_average))
        stat.add("memory_percent", f"{s.memory_percent:.1f}")
        stat.add("disk_percent", disk)
        stat.add("disk_path", s.disk_path)
        if s.gpus:
            for g in s.gpus:
                stat.add(f"gpu {g.index}", f"{g.name}: load {g.percent} %, memory {g.memory_percent} %, "
                                           f"{g.temperature_c} °C")
        else:
            stat.add("gpu", "no GPU")
        for sensor, celsius in sorted(s.temperatures_c.items()):
            stat.add(f"temperature {sensor}", f"{celsius:.1f} °C")
        return stat

    def _diag_nodes(self, stat: Status) -> Status:
        s = self.sample
        followed = s.nodes if s is not None else {}
        stat.summary(OK, f"{len(followed)} of {len(self.watched)} nodes followed on this host")
        for node, usage in sorted(followed.items()):
            stat.add(node, f"pid {usage.pid}: {usage.cpu_percent:.1f} % CPU, {usage.rss_mb:.0f} MB")
        for node, note in sorted(self.lookup_notes.items()):
            stat.add(node, f"not followed: {note}")
        stat.add("lookups", str(self.lookups))
        return stat


def main() -> None:
    rospy.init_node(names.RESOURCE_MONITOR_NODE)
    config = load_config(ResourceConfig)
    bridge_logging(("vla_monitoring", "vla_msgs"), VlaLogs(rospy.get_name(), config.robot_id))
    node = ResourceMonitorNode(config)
    rospy.loginfo(f"resource_monitor_node up: {node.sampler.gpu.description}, disk of {config.disk_path}, "
                  f"watching {len(node.watched)} nodes")
    rospy.spin()
