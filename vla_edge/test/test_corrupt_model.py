#!/usr/bin/env python3
"""A corrupted model file (and one whose sha256 disagrees with its sidecar) fails fast with a clear message."""

import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import rospy
import rostest
from vla_edge.testing import write_policy

START_LIMIT_S = 30.0


def run_node(model: Path, name: str) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(["rosrun", "vla_edge", "inference_node", f"__name:={name}", f"_model_path:={model}"],
                          capture_output=True, text=True, timeout=START_LIMIT_S)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


class CorruptModel(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="vla_edge_corrupt_"))

    def test_corrupted_file_fails_fast(self):
        model = write_policy("corrupt", self.dir)
        rc, output, elapsed = run_node(model, "inference_corrupt")
        self.assertNotEqual(rc, 0, output)
        self.assertLess(elapsed, START_LIMIT_S)
        fatal = [line for line in output.splitlines() if "refuses to start" in line]
        self.assertEqual(len(fatal), 1, output)
        self.assertIn(str(model), fatal[0])
        self.assertIn("not a loadable TorchScript model", fatal[0])

    def test_checksum_mismatch_fails_fast(self):
        model = write_policy("mismatch", self.dir)
        rc, output, _ = run_node(model, "inference_mismatch")
        self.assertNotEqual(rc, 0, output)
        self.assertIn("sha256 mismatch", output)
        self.assertIn(str(model), output)

    def test_missing_file_fails_fast(self):
        rc, output, _ = run_node(self.dir / "absent.pt", "inference_missing")
        self.assertNotEqual(rc, 0, output)
        self.assertIn("model file not found", output)


if __name__ == "__main__":
    rospy.init_node("test_corrupt_model")
    rostest.rosrun("vla_edge", "corrupt_model", CorruptModel)
