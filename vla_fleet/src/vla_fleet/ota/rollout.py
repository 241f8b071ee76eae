"""The server's staged rollout and its fleet view (no HTTP here: `server` wraps it).

Per release a plan from `<root>/rollout.json` (`{"1.2.0": {"canary": ["robot_1"], "percent": 50}}`;
a release without a plan goes to everyone): first the canary robots; once each has reported
`completed`, the robots whose stable hash of (version, robot id) falls below the percentage; once each
of those the server knows has completed, everyone. One `failed` or `rolled_back` report halts the
release for every robot not yet on it, and the fleet view says so and why. The state survives a server
restart (a JSON file written atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

CANARY, PERCENT, ALL = "canary", "percent", "all"
COMPLETED, FAILED, ROLLED_BACK = "completed", "failed", "rolled_back"
REPORT_STATUSES = (COMPLETED, FAILED, ROLLED_BACK)


class RolloutError(ValueError):
    """A plan file or a report that is refused; the message says why."""


@dataclass
class Plan:
    canary: list[str] = field(default_factory=list)
    percent: float = 100.0


@dataclass
class ReleaseRollout:
    version: str
    stage: str = CANARY
    halted: str = ""            # why, once halted
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    offered: list[str] = field(default_factory=list)


def bucket(version: str, robot_id: str) -> float:
    """A robot's stable place 0..100 in a release's percentage stage."""
    digest = hashlib.sha256(f"{version}/{robot_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * 100.0


def load_plans(path: Path) -> dict[str, Plan]:
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
        plans = {str(v): Plan([str(r) for r in p.get("canary", [])], float(p.get("percent", 100.0)))
                 for v, p in doc.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise RolloutError(f"{path}: not a rollout plan ({exc})") from exc
    for v, p in plans.items():
        if not 0.0 <= p.percent <= 100.0:
            raise RolloutError(f"{path}: {v}: percent {p.percent} is outside 0..100")
    return plans


class Rollouts:
    """Who may have which release, who runs what; thread-safe, persisted at state_path."""

    def __init__(self, plans_path: Path, state_path: Path, clock):
        self.plans_path, self.state_path, self.clock = plans_path, state_path, clock
        self._lock = threading.Lock()
        self.releases: dict[str, ReleaseRollout] = {}
        self.robots: dict[str, dict] = {}
        if state_path.exists():
            doc = json.loads(state_path.read_text())
            self.releases = {v: ReleaseRollout(**r) for v, r in doc.get("releases", {}).items()}
            self.robots = doc.get("robots", {})

    def _save(self) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps({"releases": {v: asdict(r) for v, r in self.releases.items()},
                                   "robots": self.robots}, indent=1))
        os.replace(tmp, self.state_path)

    def _release(self, version: str, plan: Plan) -> ReleaseRollout:
        r = self.releases.get(version)
        if r is None:
            r = self.releases[version] = ReleaseRollout(version, CANARY if plan.canary else
                                                        (PERCENT if plan.percent < 100.0 else ALL))
        return r

    def _advance(self, r: ReleaseRollout, plan: Plan) -> None:
        if r.halted:
            return
        if r.stage == CANARY and all(c in r.completed for c in plan.canary):
            r.stage = PERCENT if plan.percent < 100.0 else ALL
        if r.stage == PERCENT:
            in_stage = [rid for rid in self.robots if bucket(r.version, rid) < plan.percent or rid in plan.canary]
            if all(rid in r.completed for rid in in_stage):
                r.stage = ALL

    def seen(self, robot_id: str, version: str) -> None:
        with self._lock:
            robot = self.robots.setdefault(robot_id, {"status": "", "message": ""})
            robot.update(version=version, last_seen=self.clock())
            self._save()

    def may_have(self, version: str, robot_id: str) -> tuple[bool, str]:
        """Whether robot_id is offered version now; if not, why."""
        plan = load_plans(self.plans_path).get(version, Plan())
        with self._lock:
            r = self._release(version, plan)
            self._advance(r, plan)
            if r.halted:
                ok, why = False, f"rollout of {version} halted: {r.halted}"
            elif r.stage == CANARY:
                ok, why = robot_id in plan.canary, f"{version} is with its canary robots first"
            elif r.stage == PERCENT:
                ok = robot_id in plan.canary or bucket(version, robot_id) < plan.percent
                why = f"{version} is with {plan.percent:g}% of the fleet first"
            else:
                ok, why = True, ""
            if ok and robot_id not in r.offered:
                r.offered.append(robot_id)
            self._save()
            return ok, "" if ok else why

    def report(self, robot_id: str, version: str, previous: str, status: str, message: str) -> None:
        if status not in REPORT_STATUSES:
            raise RolloutError(f"status {status!r} is not one of {', '.join(REPORT_STATUSES)}")
        plan = load_plans(self.plans_path).get(version, Plan())
        with self._lock:
            r = self._release(version, plan)
            robot = self.robots.setdefault(robot_id, {})
            robot.update(status=status, message=message, last_seen=self.clock(), reported_version=version)
            if status == COMPLETED:
                robot["version"] = version
                if robot_id not in r.completed:
                    r.completed.append(robot_id)
            else:
                robot["version"] = previous
                r.failed[robot_id] = message
                if not r.halted:
                    r.halted = f"{robot_id} reported {status}: {message}"
            self._advance(r, plan)
            self._save()

    def view(self) -> dict:
        """The fleet-wide view: each robot's version and last report, each release's stage."""
        with self._lock:
            versions: dict[str, list[str]] = {}
            for rid, robot in sorted(self.robots.items()):
                versions.setdefault(robot.get("version", "?"), []).append(rid)
            return {"robots": dict(sorted(self.robots.items())), "versions": versions,
                    "rollouts": {v: asdict(r) for v, r in self.releases.items()}}
