"""Makes rosunit's XML results tell skips and failing subtests apart from passes.

tools/run_tests.py puts this folder first on PYTHONPATH for every rostest, so Python loads this
module at start-up in each process of the test. rosunit's `_XMLTestResult` has no `addSkip` and
no `addSubTest`: a `skipTest` is written as a passed testcase, and a failing subTest only as a
count on the suite, the test itself passed. When `rosunit.xmlrunner` is imported, this module
teaches it both: a skipped test gets a `<skipped message=...>` element, each failing subtest its
own named `<failure>`/`<error>` testcase (`test_x (message='Action')`), and the parent test stops
counting as a pass. Nothing else is touched, and processes that never import rosunit pay only
for one meta-path lookup per import. Debian's own sitecustomize (apport) still runs afterwards.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_TARGET = "rosunit.xmlrunner"


def _patch(xmlrunner) -> None:
    import unittest
    import xml.etree.ElementTree as ET

    info_cls = xmlrunner._TestInfo
    result_cls = xmlrunner._XMLTestResult

    class _SkippedInfo(info_cls):
        def __init__(self, test, time_taken, reason):
            super().__init__(test, time_taken)
            self._skip_reason = reason

        def xml(self):
            testcase = super().xml()
            ET.SubElement(testcase, "skipped", message=str(self._skip_reason))
            return testcase

        def print_report_text(self, stream):
            stream.write(f"[Testcase: {self._method}] ... skipped: {self._skip_reason}\n")

    def subtest_info(subtest, err, failed: bool):
        info = info_cls.create_failure(subtest, 0.0, err) if failed else info_cls.create_error(subtest, 0.0, err)
        parent = subtest.test_case
        # test.id() of a subtest holds its parameters, which may contain dots: name it by hand
        info._class = f"{type(parent).__module__}.{type(parent).__qualname__}"
        info._method = f"{parent._testMethodName} {subtest._subDescription()}"
        return info

    start_test, stop_test = result_cls.startTest, result_cls.stopTest

    def startTest(self, test):  # noqa: N802 (unittest's name)
        start_test(self, test)
        self._skip_reason = None
        self._subtests_failed = 0

    def stopTest(self, test):  # noqa: N802
        stop_test(self, test)
        info = self._tests[-1]
        if info._failure is None and info._error is None:
            if self._skip_reason is not None:
                self._tests[-1] = _SkippedInfo(test, info._time, self._skip_reason)
            elif self._subtests_failed:
                self._tests.pop()  # its failing subtests stand for it, each by name

    def addSkip(self, test, reason):  # noqa: N802
        unittest.TestResult.addSkip(self, test, reason)
        self._skip_reason = reason

    def addSubTest(self, test, subtest, err):  # noqa: N802
        unittest.TestResult.addSubTest(self, test, subtest, err)
        if err is not None:
            self._subtests_failed += 1
            self._tests.append(subtest_info(subtest, err, issubclass(err[0], test.failureException)))

    def addUnexpectedSuccess(self, test):  # noqa: N802
        unittest.TestResult.addUnexpectedSuccess(self, test)
        self._failure = (AssertionError, AssertionError("unexpected success of an expectedFailure test"), None)

    result_cls.startTest, result_cls.stopTest = startTest, stopTest
    result_cls.addSkip, result_cls.addSubTest = addSkip, addSubTest
    result_cls.addUnexpectedSuccess = addUnexpectedSuccess


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        sys.meta_path.remove(self)
        return spec


def _run_next_sitecustomize() -> None:
    """The sitecustomize this one shadows (Debian's installs apport's hook)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.abspath(entry or ".") != here and os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_next_sitecustomize", candidate)
            if spec and spec.loader:
                try:
                    spec.loader.exec_module(importlib.util.module_from_spec(spec))
                except Exception as exc:  # site.py ignores a failing sitecustomize too; say so, once
                    sys.stderr.write(f"sitecustomize {candidate}: {exc!r}\n")
            return


if "rosunit.xmlrunner" in sys.modules:
    _patch(sys.modules["rosunit.xmlrunner"])
else:
    sys.meta_path.insert(0, _PatchOnImport())
_run_next_sitecustomize()
