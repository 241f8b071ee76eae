"""The post-install watch: a new release passes when vla_health and the manifest's checks hold for a window.

Safety first: any unhealthy report in the window fails it, and so does silence (no vla_health heard at
all by the window's end); `file` checks are decided at once from the release's files.
"""

from __future__ import annotations

import threading
from pathlib import Path

from vla_fleet.ota.package import Manifest


class HealthWatch:
    """Fed vla_health documents (parsed JSON forms) with their receipt time; thread-safe."""

    def __init__(self, manifest: Manifest, release_dir: Path, start: float, window_s: float):
        self.start, self.end = start, start + window_s
        self.checks = manifest.checks or ({"kind": "health_overall"},)
        self.heard = 0
        self._failure = ""
        self._lock = threading.Lock()
        for check in self.checks:
            if check["kind"] == "file" and not (release_dir / check["path"]).is_file():
                self._failure = f"post-install check: {check['path']} is not in the release"

    def feed(self, doc: dict, now: float) -> None:
        if now < self.start:
            return
        with self._lock:
            self.heard += 1
            if self._failure:
                return
            for check in self.checks:
                if check["kind"] == "health_overall" and not doc.get("overall_status", False):
                    self._failure = f"vla_health unhealthy (level {doc.get('level', '?')}) {now - self.start:.1f} s " \
                                    "after the switch"
                elif check["kind"] == "component" and not (doc.get("components") or {}).get(check["name"], False):
                    self._failure = f"vla_health component {check['name']} unhealthy or missing " \
                                    f"{now - self.start:.1f} s after the switch"

    def verdict(self, now: float) -> tuple[bool, str] | None:
        """None while undecided; (passed, why) once decided."""
        with self._lock:
            if self._failure:
                return False, self._failure
            if now < self.end:
                return None
            if not self.heard:
                return False, f"no vla_health heard in the {self.end - self.start:.0f} s window (unknown is a failure)"
            return True, f"healthy through the {self.end - self.start:.0f} s window ({self.heard} reports)"
