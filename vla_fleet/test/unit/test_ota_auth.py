"""The update server's tokens, against the real server on loopback: 401 without or with a wrong token and
nothing recorded, 403 for another robot's id, the fleet-wide token, rotation without restart, a bad token
file refused at start (exit 2), and the robot's updater with its token (and failing cleanly without)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ota_support import Keys, Server, build, loaded, passes, updater

from vla_fleet.ota.auth import RobotToken, RobotTokens, TokenFileError, load_token, parse_tokens
from vla_msgs.launching import ProcessGroup, free_port
from vla_msgs.waiting import wait_until

TOKENS = """# robot tokens of the test fleet
robot_1 tok-robot-1

robot_2   tok-robot-2   # a comment after the token is not allowed: see the parse test
"""
GOOD = "# robot tokens\nrobot_1 tok-robot-1\n\nrobot_2 tok-robot-2\n* tok-fleet\n"


@pytest.fixture
def keys(tmp_path) -> Keys:
    return Keys(tmp_path / "keys")


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(GOOD)
    return path


@pytest.fixture
def server(tmp_path, token_file):
    s = Server(tmp_path / "server", tokens=RobotTokens(token_file))
    yield s
    s.stop()


def call(server: Server, path: str, token: str | None = None, body: dict | None = None,
         scheme: str = "Bearer") -> tuple[int, dict | bytes]:
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(server.url + path, data=data, headers=headers,
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if resp.headers.get_content_type() == "application/json" else raw
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def failed_report(robot_id: str) -> dict:
    return {"robot_id": robot_id, "version": "1.1.0", "previous_version": "1.0.0", "status": "failed",
            "message": "forged"}


def state(server: Server) -> dict:
    path = server.root / "rollout_state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_token_files_parse_and_bad_ones_are_refused(tmp_path):
    assert parse_tokens(GOOD) == {"robot_1": "tok-robot-1", "robot_2": "tok-robot-2", "*": "tok-fleet"}
    bad = {"robot_1 tok a comment\n": "found 4 fields", "robot_1 a\nrobot_1 b\n": "robot_1 has a token already",
           "robot_1\n": "robot_1 has an empty token", "# nothing\n\n": "no tokens",
           "robot_1 same\nrobot_2 same\n": "robot_2's token is robot_1's too"}
    for text, message in bad.items():
        with pytest.raises(TokenFileError, match=message):
            parse_tokens(text, "F")
    with pytest.raises(TokenFileError, match=r"F:4: expected `robot_id token`"):
        parse_tokens(TOKENS, "F")
    with pytest.raises(TokenFileError, match="cannot read token file"):
        RobotTokens(tmp_path / "missing")
    (tmp_path / "robot").write_text("  tok-robot-1\n")
    assert load_token(tmp_path / "robot") == "tok-robot-1"
    (tmp_path / "robot").write_text("\n")
    with pytest.raises(TokenFileError, match="is empty"):
        load_token(tmp_path / "robot")


def test_missing_or_wrong_token_is_401_and_records_nothing(tmp_path, keys, server):
    build(tmp_path, keys, "1.1.0", server.root)
    (server.root / "rollout.json").write_text('{"1.1.0": {"canary": ["robot_1"], "percent": 100}}')
    before = state(server)
    for token, scheme in ((None, "Bearer"), ("tok-wrong", "Bearer"), ("", "Bearer"), ("tok-robot-1", "Basic"),
                          ("tok-robot-1x", "Api-Key")):
        status, doc = call(server, "/api/updates/report", token, failed_report("robot_1"), scheme)
        assert status == 401 and "valid token" in doc["error"], (token, scheme, status, doc)
        status, _ = call(server, "/api/updates/latest?current_version=1.0.0&robot_id=robot_1", token, scheme=scheme)
        assert status == 401
        assert call(server, "/api/fleet", token, scheme=scheme)[0] == 401
        assert call(server, "/packages/vla-1.1.0.tar.gz", token, scheme=scheme)[0] == 401
    assert state(server) == before  # neither a report nor a `seen` was recorded
    status, view = call(server, "/api/fleet", "tok-robot-2")  # any valid token reads the fleet view
    assert status == 200 and view["robots"] == {} and view["rollouts"] == {}
    status, body = call(server, "/packages/vla-1.1.0.tar.gz", "tok-robot-2", scheme="Api-Key")
    assert status == 200 and body == (server.root / "vla-1.1.0.tar.gz").read_bytes()


def test_a_robots_token_speaks_only_for_its_robot(tmp_path, keys, server):
    build(tmp_path, keys, "1.1.0", server.root)
    status, doc = call(server, "/api/updates/report", "tok-robot-2", failed_report("robot_1"))
    assert status == 403 and "robot_2's" in doc["error"], doc
    assert call(server, "/api/updates/latest?current_version=1.0.0&robot_id=robot_1", "tok-robot-2")[0] == 403
    assert "robot_1" not in state(server).get("robots", {})
    assert not state(server).get("releases", {}).get("1.1.0", {}).get("halted")
    status, offer = call(server, "/api/updates/latest?current_version=1.0.0&robot_id=robot_2", "tok-robot-2")
    assert status == 200 and offer["available"], offer
    assert call(server, "/api/updates/report", "tok-robot-2", failed_report("robot_2"))[0] == 200
    assert "robot_2 reported failed" in call(server, "/api/fleet", "tok-robot-1")[1]["rollouts"]["1.1.0"]["halted"]


def test_the_fleet_wide_token_speaks_for_any_robot(tmp_path, keys, server):
    build(tmp_path, keys, "1.1.0", server.root)
    for rid in ("robot_1", "robot_7"):
        status, offer = call(server, f"/api/updates/latest?current_version=1.0.0&robot_id={rid}", "tok-fleet")
        assert status == 200 and offer["available"]
    done = dict(failed_report("robot_7"), status="completed")
    assert call(server, "/api/updates/report", "tok-fleet", done)[0] == 200
    assert server.fleet("tok-fleet")["versions"] == {"1.0.0": ["robot_1"], "1.1.0": ["robot_7"]}


def test_tokens_rotate_without_a_restart(server, token_file):
    latest = "/api/updates/latest?current_version=1.0.0&robot_id=robot_1"
    assert call(server, latest, "tok-robot-1")[0] == 200
    rotated = token_file.with_name("tokens.new")
    rotated.write_text("robot_1 tok-robot-1-b\nrobot_2 tok-robot-2\n")
    os.replace(rotated, token_file)  # as an operator's tool rotates: a new file renamed over the old
    assert call(server, latest, "tok-robot-1")[0] == 401
    assert call(server, latest, "tok-robot-1-b")[0] == 200
    assert call(server, latest.replace("robot_1", "robot_9"), "tok-fleet")[0] == 401  # removed with the rotation
    # a broken rotation is refused whole: the tokens in force stay, nobody is locked out or let in
    token_file.write_text("robot_1 tok-robot-1-c extra\n")
    assert call(server, latest, "tok-robot-1-b")[0] == 200
    assert call(server, latest, "tok-robot-1-c")[0] == 401
    token_file.write_text("robot_1 tok-robot-1-c\n")  # the fixed file (another size: a new stamp) is read
    assert call(server, latest, "tok-robot-1-c")[0] == 200


def _server_cli(tmp_path: Path, *extra: str) -> tuple[ProcessGroup, str]:
    root = tmp_path / "cli-root"
    root.mkdir(exist_ok=True)
    port = free_port()
    group = ProcessGroup([sys.executable, "-m", "vla_fleet.ota.server", "--root", str(root), "--host", "127.0.0.1",
                          "--port", str(port), *extra], tmp_path / f"server-{port}.log")
    return group, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("content", ["robot_1\n", "robot_1 a b\n", "robot_1 a\nrobot_1 b\n", None])
def test_a_bad_token_file_stops_the_server_with_one_error_line(tmp_path, content):
    path = tmp_path / "tokens"
    if content is not None:
        path.write_text(content)
    out = subprocess.run([sys.executable, "-m", "vla_fleet.ota.server", "--root", str(tmp_path), "--port",
                          str(free_port()), "--token-file", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --token-file: "), out.stderr


def test_the_command_line_server_warns_without_tokens_and_checks_them_with(tmp_path, token_file):
    group, url = _server_cli(tmp_path)
    try:
        wait_until(lambda: "the robot endpoints (latest, report, packages, fleet) are unauthenticated"
                   in group.log.read_text(), 60.0, "the warning about unauthenticated endpoints")
        wait_until(lambda: _status(url + "/api/fleet") == 200, 60.0, "the open server to answer")
    finally:
        group.stop()
    token_file.chmod(0o644)
    group, url = _server_cli(tmp_path, "--token-file", str(token_file))
    try:
        wait_until(lambda: _status(url + "/api/fleet") == 401, 60.0, "the guarded server to refuse us")
        assert _status(url + "/api/fleet", "tok-robot-1") == 200
        log = group.log.read_text()
        assert "unauthenticated" not in log and "readable by group or others: chmod 600" in log, log
    finally:
        group.stop()


def _status(url: str, token: str = "") -> int | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.fixture
def robot(tmp_path, keys):
    pkg = build(tmp_path, keys, "1.0.0", tmp_path / "factory")
    up, reports = updater(tmp_path / "robot", keys)
    up.install_file(pkg)
    reports.clear()
    return up, reports


def test_the_updater_with_its_token_updates_and_without_fails_cleanly(tmp_path, keys, server, robot):
    up, reports = robot
    package = build(tmp_path, keys, "1.1.0", server.root)
    for token, code in (("", 401), ("tok-wrong", 401), ("tok-robot-2", 403)):
        client = server.client(token=token)
        outcome = up.run(client, "robot_1", loaded, passes)
        assert outcome.startswith("check failed") and f"HTTP {code}" in outcome, outcome
        assert reports[-1][0] == "failed" and "the server refused us" in reports[-1][4]
        assert client.auth_failures == 1
        assert up.current_version() == "1.0.0" and up.installed() == ["1.0.0"]
        assert list(up.staging.iterdir()) == []
    # with its token, a download cut short is resumed with a Range request that carries the token too
    part = up.staging / "1.1.0.tar.gz.part"
    half = package.stat().st_size // 2
    part.write_bytes(package.read_bytes()[:half])
    token = tmp_path / "robot_1.token"
    token.write_text("tok-robot-1\n")
    outcome = up.run(server.client(token=RobotToken(token)), "robot_1", loaded, passes)
    assert outcome.startswith("completed: 1.1.0"), outcome
    assert [r[4] for r in reports if r[0] == "verifying"] == [f"resumed at byte {half}"]
    view = server.fleet("tok-robot-1")
    assert view["versions"] == {"1.1.0": ["robot_1"]} and view["robots"]["robot_1"]["status"] == "completed"


def test_a_download_refused_is_not_reported_and_installs_nothing(tmp_path, keys, server, robot):
    """latest answered, then the package refused (the token rotated away in between): failed on the robot,
    nothing installed, and the rollout not halted (it was not the release's fault)."""
    up, _ = robot
    build(tmp_path, keys, "1.1.0", server.root)
    tokens = iter(["tok-robot-1"])
    client = server.client(token=lambda: next(tokens, "tok-rotated-away"))
    outcome = up.run(client, "robot_1", loaded, passes)
    assert outcome.startswith("failed") and "HTTP 401" in outcome, outcome
    assert up.current_version() == "1.0.0" and up.installed() == ["1.0.0"]
    assert not server.fleet("tok-fleet")["rollouts"].get("1.1.0", {}).get("halted")
    assert up.run(server.client(token="tok-robot-1"), "robot_1", loaded, passes).startswith("completed: 1.1.0")


def test_the_robots_token_file_is_read_again_when_it_changes(tmp_path):
    path = tmp_path / "robot_1.token"
    path.write_text("tok-a\n")
    token = RobotToken(path)
    assert token() == "tok-a"
    path.write_text("tok-bb\n")
    assert token() == "tok-bb"
    path.write_text("\n")  # emptied by mistake: the token in use stays
    assert token() == "tok-bb"
    path.write_text("tok-ccc\n")
    assert token() == "tok-ccc"
    path.write_text("two tokens\n")
    with pytest.raises(TokenFileError, match="more than one token"):
        load_token(path)
