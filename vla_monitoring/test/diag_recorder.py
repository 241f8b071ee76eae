"""One node's /diagnostics as the rostests see it: the latest status of each of its tasks, and a wait in
ROS time for a task's values to meet a condition. The vla_monitoring rostests share it (before, each of
five harnesses parsed /diagnostics with a copy of its own)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import rospy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from vla_msgs import names
from vla_msgs.waiting import wait_until


class NodeDiagnostics:
    """Statuses named `<node>: <task>` (the node's namespace ignored), the latest per task."""

    def __init__(self, node: str):
        self.node = node
        self._lock = threading.Lock()
        self._latest: dict[str, DiagnosticStatus] = {}
        self._hardware_ids: set[str] = set()
        rospy.Subscriber(names.DIAGNOSTICS, DiagnosticArray, self._on_diag, queue_size=50)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._lock:
            for status in msg.status:
                node, _, task = status.name.partition(": ")
                if node.split("/")[-1] == self.node:
                    self._latest[task] = status
                    self._hardware_ids.add(status.hardware_id)

    def values(self, task: str) -> dict[str, str] | None:
        """The task's latest key/values; None before its first status."""
        with self._lock:
            status = self._latest.get(task)
        return None if status is None else {kv.key: kv.value for kv in status.values}

    def message(self, task: str) -> str | None:
        with self._lock:
            status = self._latest.get(task)
        return None if status is None else status.message

    def level(self, task: str) -> int | None:
        with self._lock:
            status = self._latest.get(task)
        return None if status is None else int(status.level)

    @property
    def hardware_ids(self) -> set[str]:
        with self._lock:
            return set(self._hardware_ids)

    def wait(self, task: str, cond: Callable[[dict[str, str]], object] = bool, what: str = "",
             timeout_s: float = 10.0) -> dict[str, str]:
        """The task's values once cond(values) holds; fails naming the last values seen."""
        def holds():
            values = self.values(task)
            return values if values is not None and cond(values) else None
        try:
            return wait_until(holds, timeout_s, what or f"{self.node} diagnostics {task!r}", clock=rospy.get_time)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last {self.node} diagnostics {task!r}: {self.values(task)}") from None
