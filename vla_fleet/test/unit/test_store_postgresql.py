"""Two fleet managers on one real PostgreSQL server (started here on loopback, in a temporary
directory) under load: 500 tasks, 20 fake robots; no task is claimed twice, no robot holds two
tasks, every task succeeds once, and the managers' claims did collide (a round rolled back) rather
than merely taking turns, so the race the store guards against was run."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from vla_fleet.manager import FleetManager, FleetManagerConfig
from vla_fleet.store import SUCCEEDED, open_store
from vla_monitoring.config import build_config
from vla_msgs.launching import POSTGRES_BIN, postgres_server

pytestmark = pytest.mark.skipif(not (POSTGRES_BIN / "initdb").exists(), reason="Debian postgresql-15 is not installed")

TASKS, ROBOTS, MANAGERS = 500, 20, 2


class FakeFleet:
    """Robots that take any assignment at once and finish it two rounds later; a robot handed a
    second task while it holds one records a violation."""

    def __init__(self):
        self.lock = threading.Lock()
        self.current = {f"robot_{i}": None for i in range(ROBOTS)}
        self.rounds_left = {}
        self.violations = []
        self.feedback = [[] for _ in range(MANAGERS)]  # every manager hears every feedback, as on /task_feedback

    def statuses(self, now):
        with self.lock:
            return [{"robot_id": rid, "status": "busy" if task else "available",
                     "position": [float(i), 0.0, 0.0], "battery": 80.0, "current_task_id": task,
                     "capabilities": []} for i, (rid, task) in enumerate(sorted(self.current.items()))]

    def take(self, robot_id, task_id):
        with self.lock:
            if self.current[robot_id] is not None:
                self.violations.append((robot_id, self.current[robot_id], task_id))
                return
            self.current[robot_id] = task_id
            self.rounds_left[robot_id] = 2
            for queue in self.feedback:
                queue.append({"robot_id": robot_id, "task_id": task_id, "state": "started"})

    def step(self):
        with self.lock:
            for rid, task in self.current.items():
                if task is not None:
                    self.rounds_left[rid] -= 1
                    if self.rounds_left[rid] <= 0:
                        self.current[rid] = None
                        for queue in self.feedback:
                            queue.append({"robot_id": rid, "task_id": task, "state": "succeeded"})

    def drain(self, n):
        with self.lock:
            out, self.feedback[n] = self.feedback[n], []
        return out


class SlowManager(FleetManager):
    """Decides as slowly as a large round would, so that the two managers' claiming transactions overlap."""

    def _decide(self, pending, busy, robots):
        time.sleep(0.005)
        return super()._decide(pending, busy, robots)


def run_manager(n, url, fleet, stop, claimed, lost, errors):
    try:
        cfg = build_config(FleetManagerConfig, {"db_url": url, "manager_id": f"m{n}", "robot_timeout_s": 600.0,
                                                "ack_timeout_s": 600.0})
        mgr = SlowManager(open_store(url), cfg, time.monotonic)
        while not stop.is_set():
            now = time.monotonic()
            for doc in fleet.statuses(now):
                mgr.on_robot_status(doc, now)
            for doc in fleet.drain(n):
                with contextlib.suppress(ValueError):  # the other manager recorded it first
                    mgr.on_feedback(doc, now)
            for task in mgr.tick(now).assigned:
                claimed[n].append(task.id)
                fleet.take(task.robot_id, task.id)
            fleet.step()
        lost[n] = mgr.store.lost_rounds
        mgr.store.close()
    except Exception as exc:  # reported by the test, not lost in the thread
        errors.append(repr(exc))


def test_two_managers_never_assign_a_task_twice():
    with postgres_server() as url:
        store = open_store(url)
        ids = [store.submit(f"task {i}", i % 5, float(i)).id for i in range(TASKS)]
        fleet, stop, errors = FakeFleet(), threading.Event(), []
        claimed, lost = [[] for _ in range(MANAGERS)], [0] * MANAGERS
        threads = [threading.Thread(target=run_manager, args=(n, url, fleet, stop, claimed, lost, errors))
                   for n in range(MANAGERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120.0
        while store.count(SUCCEEDED) < TASKS and time.monotonic() < deadline and not errors:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
        assert errors == []
        assert fleet.violations == []
        all_claims = claimed[0] + claimed[1]
        assert len(all_claims) == len(set(all_claims)) == TASKS
        # the race was run: claiming transactions overlapped on a robot and the loser rolled back.
        # Not how the tasks were split: one manager may win every race (a 500/0 split was seen on a
        # loaded machine, 250/250 on a quiet one) and that is correct, only slower than sharing.
        assert sum(lost) > 0, f"no round lost a race; claims split {[len(c) for c in claimed]}"
        assert store.count(SUCCEEDED) == TASKS
        for task_id in ids[::25]:
            assert [a[3] for a in store.attempts(task_id)] == [SUCCEEDED]
        store.close()
