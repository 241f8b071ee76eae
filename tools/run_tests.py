#!/usr/bin/env python3
"""Runs lint, every pytest unit test and every rostest, and prints one closing count line.

Usage: tools/run_tests.py [--only-unit | --only-rostest] [-k PATTERN]
Each rostest starts its own master on a free port (rostest's default), so they cannot
disturb each other or a roscore the user has running. A rostest whose launch fails (a node
that cannot be found, a crash before the test reports) counts as a failure, never a skip.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.parent.name for p in ROOT.glob("vla_*/package.xml"))
ROSTEST_TIMEOUT_S = 900


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.failures += other.failures


def junit_tally(path: Path, label: str) -> Tally:
    """Counts the test cases of one JUnit XML file (pytest's or rostest's)."""
    tally = Tally()
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{label}::{case.get('classname', '')}.{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            tally.failed += 1
            tally.failures.append(name)
        elif case.find("skipped") is not None:
            tally.skipped += 1
        else:
            tally.passed += 1
    return tally


def run_lint() -> Tally:
    print("=== lint (make lint)", flush=True)
    rc = subprocess.call(["make", "--no-print-directory", "lint"], cwd=ROOT)
    return Tally(passed=1) if rc == 0 else Tally(failed=1, failures=["lint"])


def run_unit(pattern: str | None) -> Tally:
    dirs = [str(d) for d in [*sorted(ROOT.glob("*/test/unit")), ROOT / "test" / "unit"] if d.is_dir()]
    print(f"=== pytest {' '.join(os.path.relpath(d, ROOT) for d in dirs)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "unit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", f"--junitxml={xml}", *dirs]
        if pattern:
            cmd += ["-k", pattern]
        rc = subprocess.call(cmd, cwd=ROOT)
        if not xml.exists():
            return Tally(failed=1, failures=[f"pytest exited {rc} without a report"])
        tally = junit_tally(xml, "unit")
        if rc not in (0, 5) and tally.failed == 0:
            tally.failed += 1
            tally.failures.append(f"pytest exited {rc}")
        return tally


def rostest_files(pattern: str | None) -> list[tuple[str, Path]]:
    found = [("vla_deployment", f) for f in sorted((ROOT / "test").glob("*.test"))]
    for pkg in PACKAGES:
        found += [(pkg, f) for f in sorted((ROOT / pkg / "test").glob("*.test"))]
    if pattern:
        found = [(p, f) for p, f in found if re.search(pattern, f"{p}/{f.name}")]
    return found


def print_node_logs(log_dir: Path, lines: int = 40) -> None:
    """Shows the end of each node's log: rostest keeps node output out of its own."""
    for log in sorted(log_dir.rglob("*.log")):
        if log.name.startswith(("roslaunch", "master", "rosout", "rostest")):
            continue
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            print(f"----- {log.name} (last {len(tail)} lines)", *tail, sep="\n", flush=True)


def run_one_rostest(pkg: str, test_file: Path) -> Tally:
    label = f"{pkg}/{test_file.name}"
    with tempfile.TemporaryDirectory() as ros_home:
        env = dict(os.environ, ROS_HOME=ros_home, ROS_LOG_DIR=os.path.join(ros_home, "log"))
        started = time.monotonic()
        try:
            proc = subprocess.run(
                ["rostest", pkg, test_file.name],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, timeout=ROSTEST_TIMEOUT_S,
            )
            output, rc = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as exc:
            partial = exc.stdout or b""
            output = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
            rc = -1
            output += f"\n[run_tests] timed out after {ROSTEST_TIMEOUT_S} s"
        elapsed = time.monotonic() - started
        tally = Tally()
        results = sorted(Path(ros_home, "test_results").rglob("*.xml"))
        # rosunit-* hold the test cases of each test node; rostest-* only summarises them,
        # but it is all there is when a test node died before writing its own file.
        per_node = [xml for xml in results if not xml.name.startswith("rostest-")]
        for xml in per_node or results:
            try:
                tally.add(junit_tally(xml, label))
            except ET.ParseError:
                tally.failed += 1
                tally.failures.append(f"{label}: unreadable result {xml.name}")
        if rc != 0 and tally.failed == 0:
            tally.failed += 1
            tally.failures.append(f"{label}: rostest exited {rc}")
        if tally.passed + tally.failed + tally.skipped == 0:
            tally.failed += 1
            tally.failures.append(f"{label}: no test reported")
        status = "ok" if tally.failed == 0 else "FAILED"
        counts = f"{tally.passed} passed, {tally.failed} failed, {elapsed:.1f} s"
        print(f"--- rostest {label}: {status} ({counts})", flush=True)
        if tally.failed:
            print(output[-6000:], flush=True)
            print_node_logs(Path(ros_home, "log"))
        return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-unit", action="store_true")
    parser.add_argument("--only-rostest", action="store_true")
    parser.add_argument("--no-lint", action="store_true")
    parser.add_argument("-k", dest="pattern", help="select tests by name")
    args = parser.parse_args()

    total = Tally()
    if not (args.no_lint or args.only_unit or args.only_rostest or args.pattern):
        total.add(run_lint())
    if not args.only_rostest:
        total.add(run_unit(args.pattern))
    if not args.only_unit:
        files = rostest_files(args.pattern)
        print(f"=== {len(files)} rostest files", flush=True)
        for pkg, test_file in files:
            total.add(run_one_rostest(pkg, test_file))

    for name in total.failures:
        print(f"FAILED {name}")
    line = f"{total.passed} passed, {total.failed} failed"
    if total.skipped:
        line += f", {total.skipped} skipped"
    print(line, flush=True)
    return 1 if total.failed or total.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
