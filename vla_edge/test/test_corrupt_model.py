#!/usr/bin/env python3
"""A corrupted model file, one whose sha256 disagrees with its sidecar, and an invalid parameter each stop
the node at start with one clear fatal line and a non-zero exit code."""

import subprocess
import tempfile
import unittest
from pathlib import Path

import rospy
import rostest

from vla_edge.testing import write_policy
from vla_monitoring.config import CONFIG_EXIT_CODE

START_LIMIT_S = 120.0  # a bound on a hung node, not a speed requirement


def run_node(name: str, **params) -> tuple[int, str]:
    args = [f"_{key}:={value}" for key, value in params.items()]
    proc = subprocess.run(["rosrun", "vla_edge", "inference_node", f"__name:={name}", *args],
                          capture_output=True, text=True, timeout=START_LIMIT_S)
    return proc.returncode, proc.stdout + proc.stderr


class CorruptModel(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="vla_edge_corrupt_"))

    def test_corrupted_file_fails_fast(self):
        model = write_policy("corrupt", self.dir)
        rc, output = run_node("inference_corrupt", model_path=model)
        self.assertNotEqual(rc, 0, output)
        fatal = [line for line in output.splitlines() if "refuses to start" in line]
        self.assertEqual(len(fatal), 1, output)
        self.assertIn(str(model), fatal[0])
        self.assertIn("not a loadable TorchScript model", fatal[0])

    def test_checksum_mismatch_fails_fast(self):
        model = write_policy("mismatch", self.dir)
        rc, output = run_node("inference_mismatch", model_path=model)
        self.assertNotEqual(rc, 0, output)
        self.assertIn("sha256 mismatch", output)
        self.assertIn(str(model), output)

    def test_missing_file_fails_fast(self):
        rc, output = run_node("inference_missing", model_path=self.dir / "absent.pt")
        self.assertNotEqual(rc, 0, output)
        self.assertIn("model file not found", output)

    def test_invalid_parameter_names_it(self):
        model = write_policy("image", self.dir)
        for name, params, expected in (
                ("inference_bad_rate", {"control_rate": -1.0}, "~control_rate"),
                ("inference_cloud", {"mode": "cloud"}, "~cloud_url is not set"),
                ("inference_cloud_ca", {"mode": "hybrid", "cloud_url": "https://127.0.0.1:1",
                                        "cloud_ca_file": "/nonexistent/ca.pem"}, "~cloud_ca_file"),
                ("inference_retired", {"max_task_length": 100}, "~max_task_length")):
            rc, output = run_node(name, model_path=model, **params)
            self.assertEqual(rc, CONFIG_EXIT_CODE, output)
            fatal = [line for line in output.splitlines() if "invalid parameter" in line]
            self.assertEqual(len(fatal), 1, output)
            self.assertIn(expected, fatal[0])


if __name__ == "__main__":
    rospy.init_node("test_corrupt_model")
    rostest.rosrun("vla_edge", "corrupt_model", CorruptModel)
