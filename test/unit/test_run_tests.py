"""tools/run_tests.py: skips and failing subtests of a rostest are counted as such, -k selects like
pytest, and a timed-out test leaves no process behind (not even one in a session of its own)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vla_msgs.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import run_tests

ROSTEST_SCRIPT = textwrap.dedent("""
    import sys
    import unittest

    import rostest

    class Case(unittest.TestCase):
        def test_passes(self):
            pass

        def test_skips(self):
            self.skipTest("no GPU here")

        def test_subtests(self):
            for name in ("Action", "Alert.v2", "Task"):
                with self.subTest(message=name):
                    self.assertNotEqual(name, "Alert.v2")

    if __name__ == "__main__":
        rostest.rosrun("vla_deployment", "case", Case, sysargs=sys.argv)
""")


def run_rostest_script(tmp_path: Path, patched: bool) -> run_tests.Tally:
    """Runs a rostest-style script the way rostest does (--gtest_output), without a master."""
    script = tmp_path / "case.py"
    script.write_text(ROSTEST_SCRIPT)
    xml = tmp_path / ("patched.xml" if patched else "plain.xml")
    paths = [str(run_tests.RESULTS_PATCH)] if patched else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script), f"--gtest_output=xml:{xml}"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a subtest failed
    return run_tests.junit_tally(xml, "case")


def test_rostest_skip_and_subtest_failure_are_reported_as_such(tmp_path):
    tally = run_rostest_script(tmp_path, patched=True)
    assert (tally.passed, tally.failed, tally.skipped) == (1, 1, 1)
    assert tally.failures == ["case::__main__.Case.test_subtests (message='Alert.v2')"]


def test_plain_rosunit_counts_both_as_passes(tmp_path):
    """Why tools/rostest_results exists: without it, rosunit's XML says three passes."""
    tally = run_rostest_script(tmp_path, patched=False)
    assert (tally.passed, tally.failed, tally.skipped) == (3, 0, 0)


def test_rostest_tally_names_a_timeout_and_a_silent_crash(tmp_path):
    tally = run_tests.rostest_tally(tmp_path, "pkg/x.test", None, 5.0)
    assert tally.failures == ["pkg/x.test: timed out after 5 s"]
    tally = run_tests.rostest_tally(tmp_path, "pkg/x.test", 1, 5.0)
    assert tally.failures == ["pkg/x.test: rostest exited 1"]
    tally = run_tests.rostest_tally(tmp_path, "pkg/x.test", 0, 5.0)
    assert tally.failures == ["pkg/x.test: no test reported"]


@pytest.mark.parametrize(("expr", "names", "expected"), [
    ("edge", ["vla_deployment/edge_standby.test", "vla_safety/safety_clamps.test"], [True, False]),
    ("EDGE_standby", ["vla_deployment/edge_standby.test"], [True]),
    ("edge or clamps", ["vla_deployment/edge_standby.test", "vla_safety/safety_clamps.test", "x/y.test"],
     [True, True, False]),
    ("edge|clamps", ["vla_deployment/edge_standby.test", "vla_safety/safety_clamps.test"], [True, True]),
    ("safety and not (clamps or latch)", ["vla_safety/safety_clamps.test", "vla_safety/safety_collision.test",
                                          "vla_safety/safety_latch_reset.test"], [False, True, False]),
])
def test_keyword_expression_selects_like_pytest(expr, names, expected):
    match = run_tests.keyword_matcher(expr)
    assert [match(n) for n in names] == expected


@pytest.mark.parametrize("expr", ["a and", "(a or b", "a b", "or a"])
def test_bad_keyword_expression_is_refused(expr):
    with pytest.raises(ValueError):
        run_tests.keyword_matcher(expr)


def test_pipe_reaches_pytest_as_or():
    assert run_tests.pytest_keyword("edge|safety_clamps") == "edge or safety_clamps"


def test_every_package_unit_folder_is_collected():
    root = run_tests.ROOT
    expected = {d for d in root.glob("vla_*/test/unit") if d.is_dir()} | {root / "test" / "unit"}
    assert set(run_tests.unit_dirs()) == expected


def test_timeout_leaves_no_process_behind(tmp_path):
    # the grandchild moves to a session of its own, as roslaunch does with every node
    cmd = ["bash", "-c", "setsid sleep 300 & sleep 300"]
    rc, leftovers = run_tests.run_tagged(cmd, tmp_path / "out.log", dict(os.environ), timeout_s=0.5)
    assert rc is None
    assert len(leftovers) == 1 and leftovers[0].endswith(" sleep"), leftovers
    pid = int(leftovers[0].split()[0])

    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
        except OSError:
            return True

    wait_until(gone, 10.0, f"process {pid} to end")


def test_finished_command_reports_its_exit_code(tmp_path):
    rc, leftovers = run_tests.run_tagged(["bash", "-c", "exit 3"], tmp_path / "out.log", dict(os.environ), 30.0)
    assert (rc, leftovers) == (3, [])
