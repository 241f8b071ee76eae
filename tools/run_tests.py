#!/usr/bin/env python3
"""Runs lint, every pytest unit test and every rostest, and prints one closing count line.

Usage: tools/run_tests.py [--only-unit | --only-rostest] [--no-lint] [-k EXPR] [--rostest REGEX]
  -k EXPR         a pytest keyword expression (`safety and not bench`, `a or b`; `a|b` is read as
                  `a or b`): selects unit tests as pytest does, and rostest files by their
                  `pkg/name.test` with the same rules (a word matches a substring, any case)
  --rostest REGEX selects rostest files whose `pkg/name.test` matches REGEX (re.search); given
                  without -k it runs rostests only
The closing line is `N passed, N failed, N skipped`; the exit status is non-zero on any failure.
Each rostest starts its own master on a free port (rostest's default), so they cannot disturb
each other or a roscore the user has running. Each runs in a process group of its own, with
every process it starts tagged in its environment: on a timeout the group is stopped
(vla_msgs.launching.stop_group) and every tagged process still alive (roslaunch puts each node
in a session of its own) is killed too, so nothing is left to load the next test. A rostest
whose launch fails counts as a failure, never a skip. tools/rostest_results/ (first on the
PYTHONPATH of every rostest) makes rosunit's XML report skipped tests and failing subtests.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vla_msgs.launching import ProcessGroup

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.parent.name for p in ROOT.glob("vla_*/package.xml"))
ROSTEST_TIMEOUT_S = 900
RESULTS_PATCH = Path(__file__).resolve().parent / "rostest_results"
TAG = "VLA_RUN_TESTS_TAG"


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

    def line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


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


# ---- selection -------------------------------------------------------------------------------

def keyword_matcher(expr: str) -> Callable[[str], bool]:
    """pytest's -k grammar (`and`, `or`, `not`, parentheses; a word matches a substring of the name,
    case-insensitively) for names that are not pytest items. `|` is taken as `or`."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expr.replace("|", " or "))
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"-k {expr!r}: the expression ends too early")
        pos += 1
        return tokens[pos - 1]

    def parse_or() -> Callable[[str], bool]:
        left = parse_and()
        while peek() == "or":
            take()
            left = (lambda a, b: lambda name: a(name) or b(name))(left, parse_and())
        return left

    def parse_and() -> Callable[[str], bool]:
        left = parse_not()
        while peek() == "and":
            take()
            left = (lambda a, b: lambda name: a(name) and b(name))(left, parse_not())
        return left

    def parse_not() -> Callable[[str], bool]:
        if peek() == "not":
            take()
            inner = parse_not()
            return lambda name: not inner(name)
        token = take()
        if token == "(":
            inner = parse_or()
            if take() != ")":
                raise ValueError(f"-k {expr!r}: unbalanced parentheses")
            return inner
        if token in ("and", "or", ")"):
            raise ValueError(f"-k {expr!r}: unexpected {token!r}")
        word = token.lower()
        return lambda name: word in name.lower()

    matcher = parse_or()
    if pos != len(tokens):
        raise ValueError(f"-k {expr!r}: unexpected {tokens[pos]!r}")
    return matcher


def pytest_keyword(expr: str | None) -> str | None:
    """The -k expression as pytest reads it (`a|b` -> `a or b`)."""
    return None if expr is None else re.sub(r"\s*\|\s*", " or ", expr)


def unit_dirs() -> list[Path]:
    """Every package's test/unit folder, and the root package's."""
    return [d for d in [*sorted(ROOT.glob("vla_*/test/unit")), ROOT / "test" / "unit"] if d.is_dir()]


def rostest_files(keyword: str | None = None, regex: str | None = None) -> list[tuple[str, Path]]:
    found = [("vla_deployment", f) for f in sorted((ROOT / "test").glob("*.test"))]
    for pkg in PACKAGES:
        found += [(pkg, f) for f in sorted((ROOT / pkg / "test").glob("*.test"))]
    if keyword:
        match = keyword_matcher(keyword)
        found = [(p, f) for p, f in found if match(f"{p}/{f.name}")]
    if regex:
        found = [(p, f) for p, f in found if re.search(regex, f"{p}/{f.name}")]
    return found


# ---- processes -------------------------------------------------------------------------------

def tagged_pids(tag_value: str) -> list[int]:
    """Processes whose environment carries `TAG=tag_value`: everything a rostest started."""
    needle = f"{TAG}={tag_value}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:  # gone, or not ours
            continue
    return pids


def kill_tagged(tag_value: str, grace_s: float = 5.0) -> list[str]:
    """SIGTERM, then SIGKILL after `grace_s`, to every tagged process; returns what was found."""
    found = []
    for pid in tagged_pids(tag_value):
        try:
            found.append(f"{pid} {Path(f'/proc/{pid}/comm').read_text().strip()}")
            os.kill(pid, signal.SIGTERM)
        except OSError:
            continue
    deadline = time.monotonic() + grace_s
    while tagged_pids(tag_value) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in tagged_pids(tag_value):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    return found


def run_tagged(cmd: list[str], log: Path, env: dict[str, str], timeout_s: float) -> tuple[int | None, list[str]]:
    """Runs `cmd` in its own process group; after it ends or times out, nothing it started survives.

    Returns (exit code, or None on timeout; the processes that had to be killed afterwards).
    """
    tag_value = uuid.uuid4().hex
    group = ProcessGroup(cmd, log, env={**env, TAG: tag_value}, cwd=ROOT)
    try:
        rc: int | None = group.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        group.stop(grace_s=(20.0, 5.0, 5.0))
    return rc, kill_tagged(tag_value)


# ---- runners ---------------------------------------------------------------------------------

def run_lint() -> Tally:
    print("=== lint (make lint)", flush=True)
    rc = subprocess.call(["make", "--no-print-directory", "lint"], cwd=ROOT)
    return Tally(passed=1) if rc == 0 else Tally(failed=1, failures=["lint"])


def run_unit(keyword: str | None) -> Tally:
    dirs = [str(d) for d in unit_dirs()]
    print(f"=== pytest {' '.join(os.path.relpath(d, ROOT) for d in dirs)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "unit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", f"--junitxml={xml}", *dirs]
        if keyword:
            cmd += ["-k", keyword]
        rc = subprocess.call(cmd, cwd=ROOT)
        if not xml.exists():
            return Tally(failed=1, failures=[f"pytest exited {rc} without a report"])
        tally = junit_tally(xml, "unit")
        # 5: nothing collected (a -k that selects only rostests)
        if rc not in (0, 5) and tally.failed == 0:
            tally.failed += 1
            tally.failures.append(f"pytest exited {rc}")
        return tally


def print_node_logs(log_dir: Path, lines: int = 40) -> None:
    """Shows the end of each node's log: rostest keeps node output out of its own."""
    for log in sorted(log_dir.rglob("*.log")):
        if log.name.startswith(("roslaunch", "master", "rosout", "rostest")):
            continue
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        if tail:
            print(f"----- {log.name} (last {len(tail)} lines)", *tail, sep="\n", flush=True)


def rostest_tally(ros_home: Path, label: str, rc: int | None, timeout_s: float) -> Tally:
    tally = Tally()
    results = sorted((ros_home / "test_results").rglob("*.xml"))
    # rosunit-* hold the test cases of each test node; rostest-* only summarises them,
    # but it is all there is when a test node died before writing its own file.
    per_node = [xml for xml in results if not xml.name.startswith("rostest-")]
    for xml in per_node or results:
        try:
            tally.add(junit_tally(xml, label))
        except ET.ParseError:
            tally.failed += 1
            tally.failures.append(f"{label}: unreadable result {xml.name}")
    if rc is None:
        tally.failed += 1
        tally.failures.append(f"{label}: timed out after {timeout_s:g} s")
    elif rc != 0 and tally.failed == 0:
        tally.failed += 1
        tally.failures.append(f"{label}: rostest exited {rc}")
    if tally.passed + tally.failed + tally.skipped == 0:
        tally.failed += 1
        tally.failures.append(f"{label}: no test reported")
    return tally


def run_one_rostest(pkg: str, test_file: Path, timeout_s: float = ROSTEST_TIMEOUT_S) -> Tally:
    label = f"{pkg}/{test_file.name}"
    with tempfile.TemporaryDirectory() as tmp:
        ros_home = Path(tmp)
        env = dict(os.environ, ROS_HOME=str(ros_home), ROS_LOG_DIR=str(ros_home / "log"),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(RESULTS_PATCH), os.environ.get("PYTHONPATH")])))
        log = ros_home / "rostest.out"
        started = time.monotonic()
        rc, leftovers = run_tagged(["rostest", pkg, test_file.name], log, env, timeout_s)
        elapsed = time.monotonic() - started
        tally = rostest_tally(ros_home, label, rc, timeout_s)
        status = "ok" if tally.failed == 0 else "FAILED"
        print(f"--- rostest {label}: {status} ({tally.line()}, {elapsed:.1f} s)", flush=True)
        if leftovers:
            print(f"    killed {len(leftovers)} process(es) left running: {', '.join(leftovers)}", flush=True)
        if tally.failed:
            print(log.read_text(errors="replace")[-6000:], flush=True)
            print_node_logs(ros_home / "log")
        return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-unit", action="store_true")
    parser.add_argument("--only-rostest", action="store_true")
    parser.add_argument("--no-lint", action="store_true")
    parser.add_argument("-k", dest="keyword", help="pytest keyword expression, for unit tests and rostest files")
    parser.add_argument("--rostest", dest="rostest_regex", metavar="REGEX", help="rostest files matching REGEX")
    args = parser.parse_args(argv)
    try:
        keyword = pytest_keyword(args.keyword)
        if keyword:
            keyword_matcher(keyword)
    except ValueError as exc:
        parser.error(str(exc))

    selecting = keyword is not None or args.rostest_regex is not None
    total = Tally()
    if not (args.no_lint or args.only_unit or args.only_rostest or selecting):
        total.add(run_lint())
    if not args.only_rostest and not (args.rostest_regex is not None and keyword is None):
        total.add(run_unit(keyword))
    if not args.only_unit:
        files = rostest_files(keyword, args.rostest_regex)
        print(f"=== {len(files)} rostest files", flush=True)
        for pkg, test_file in files:
            total.add(run_one_rostest(pkg, test_file))

    for name in total.failures:
        print(f"FAILED {name}")
    print(total.line(), flush=True)
    return 1 if total.failed or total.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
