"""The command line: flags checked by the config idiom (exit 2, the flag named), a policy that fails its
checks (exit 3), and `python -m vla_edge.cloud` as a process: the ready line, answers, a clean stop."""

from __future__ import annotations

import sys

import requests

from vla_edge.cloud.server import LOAD_EXIT_CODE, main
from vla_edge.testing import write_policy
from vla_monitoring.config import CONFIG_EXIT_CODE
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.waiting import wait_until


def test_bad_flags_exit_with_the_flag_named(capsys):
    assert main(["--model", "m.pt", "--max-batch-size", "0"]) == CONFIG_EXIT_CODE
    assert "--max-batch-size must be in [1, 1024], got 0" in capsys.readouterr().err
    assert main(["--http-port", "8080"]) == CONFIG_EXIT_CODE
    assert "--model is required" in capsys.readouterr().err
    assert main(["--model", "m.pt", "--certfile", "c.pem"]) == CONFIG_EXIT_CODE


def test_policy_failing_its_checks_is_refused(tmp_path):
    model = write_policy("mismatch", tmp_path)
    assert main(["--model", str(model), "--http-port", str(free_port()), "--ws-port", str(free_port())]) == \
        LOAD_EXIT_CODE
    token = write_policy("image", tmp_path / "ok")
    assert main(["--model", str(token), "--token-file", str(tmp_path / "missing")]) == LOAD_EXIT_CODE


def test_module_prints_ready_serves_and_stops(tmp_path):
    model = write_policy("image", tmp_path / "model")
    http, ws = free_port(), free_port()
    cmd = [sys.executable, "-m", "vla_edge.cloud", "--model", str(model), "--host", "127.0.0.1",
           "--http-port", str(http), "--ws-port", str(ws)]
    group = ProcessGroup(cmd, tmp_path / "server.log")
    try:
        wait_until(lambda: not group.alive() or "cloud_server ready" in group.log.read_text(errors="replace"),
                   120.0, "ready line")
        assert group.alive(), group.tail()
        assert requests.get(f"http://127.0.0.1:{http}/health", timeout=10).json()["model_version"] == "test-1"
        assert requests.get(f"http://127.0.0.1:{ws}/healthz", timeout=10).status_code == 200
    finally:
        code = group.stop()
    assert code == 0, group.tail()
