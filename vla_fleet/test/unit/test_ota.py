"""OTA updates end to end on real files against the real update server on loopback: the full update, each
refusal leaving the disk as it was, resumed downloads, kill -9 at every step of the apply, automatic
rollback, and the staged rollout halting after its canary rolls back."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from ota_support import Keys, Server, build, crafted, fails, loaded, passes, snapshot, updater

from vla_fleet import release
from vla_fleet.ota.package import Caps, FileEntry, PackageError, verify_tree
from vla_fleet.ota.signing import PUBLIC_KEY_NAME, SignatureError, digest_file, load_signing_key, verify_file
from vla_fleet.ota.updater import CRASH_POINTS, UpdateError

HERE = Path(__file__).resolve().parent


@pytest.fixture
def keys(tmp_path) -> Keys:
    return Keys(tmp_path / "keys")


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "server")
    yield s
    s.stop()


@pytest.fixture
def robot(tmp_path, keys):
    """A robot on 1.0.0, installed from a local package as at the factory."""
    pkg = build(tmp_path, keys, "1.0.0", tmp_path / "factory")
    up, reports = updater(tmp_path / "robot", keys)
    assert up.install_file(pkg) == "1.0.0"
    reports.clear()
    return up, reports


# ---------------------------------------------------------------------------------------------- releases
def test_keygen_and_build_sign_the_package(tmp_path, keys):
    assert stat.S_IMODE(keys.private.stat().st_mode) == 0o600
    assert release.main(["keygen", "--out", str(tmp_path / "keys")]) == 2  # never overwrites a key
    pkg = build(tmp_path, keys, "1.2.0", tmp_path / "out", min_version="1.0")
    with tarfile.open(pkg) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and "model/policy.pt" in names
    signature = Path(str(pkg) + ".sig").read_text()
    verify_file(keys.verify, pkg, signature)
    # plain Ed25519 over the package bytes (INTERFACES): libsodium's one-shot verify accepts it
    keys.verify.verify(pkg.read_bytes(), base64.b64decode(signature))
    pkg.write_bytes(pkg.read_bytes() + b"x")
    with pytest.raises(SignatureError):
        verify_file(keys.verify, pkg, signature)


def test_a_readable_private_key_is_refused(keys):
    os.chmod(keys.private, 0o644)
    with pytest.raises(SignatureError, match="readable by others"):
        load_signing_key(keys.private)


# ---------------------------------------------------------------------------------------------- the update
def test_full_update_switches_reports_and_prunes(tmp_path, keys, server, robot):
    up, reports = robot
    client = server.client()
    assert "up to date" in up.run(client, "robot_1", loaded, passes)
    for version in ("1.1.0", "1.2.0", "1.3.0"):
        build(tmp_path, keys, version, server.root)
        outcome = up.run(client, "robot_1", loaded, passes)
        assert outcome.startswith(f"completed: {version}"), outcome
    assert up.current_version() == "1.3.0"
    assert (up.current_link / "model" / "policy.pt").read_bytes().startswith(b"policy 1.3.0")
    assert up.installed() == ["1.1.0", "1.2.0", "1.3.0"]  # keep_releases=3: 1.0.0 pruned
    steps = [s for i, s in enumerate(reports.statuses()) if i == 0 or s != reports.statuses()[i - 1]]
    assert steps[-5:] == ["checking", "downloading", "verifying", "applying", "completed"], steps
    assert [r for r in reports if r[0] == "completed"][-1][1:3] == ("1.3.0", "1.2.0")
    assert server.fleet()["robots"]["robot_1"]["version"] == "1.3.0"
    assert up.journal() is None and snapshot(up.root)["staging"] == []


def _refused(up, client, match: str, **kw) -> None:
    before = snapshot(up.root)
    outcome = up.run(client, "robot_1", loaded, passes)
    assert outcome.startswith("failed") and match in outcome, outcome
    assert snapshot(up.root) == before, "a refused package changed the disk"
    assert up.current_version() == "1.0.0"


def test_flipped_byte_is_refused(tmp_path, keys, server, robot):
    pkg = build(tmp_path, keys, "1.1.0", server.root)
    data = bytearray(pkg.read_bytes())
    data[-6] ^= 0x01  # in gzip's trailer: the server still reads the manifest and offers the package
    pkg.write_bytes(bytes(data))  # and hashes what it serves, so only the signature can tell
    _refused(robot[0], server.client(), "bad signature")


def test_wrong_key_is_refused(tmp_path, keys, server, robot):
    build(tmp_path, Keys(tmp_path / "other"), "1.1.0", server.root)
    _refused(robot[0], server.client(), "not signed by the trusted key")


def test_downgrade_and_min_version_are_refused(tmp_path, keys, server, robot):
    up, _ = robot
    client = server.client()
    build(tmp_path, keys, "0.9.0", server.root)
    assert "up to date" in up.run(client, "robot_1", loaded, passes)  # the server offers nothing older...
    offer = client.latest("0.1", "robot_1")  # ...and the robot refuses it if offered anyway
    with pytest.raises(UpdateError, match=r"not newer than the running 1\.0\.0"):
        up.check_offer(offer)
    build(tmp_path, keys, "2.0.0", server.root, min_version="1.5.0")
    _refused(up, client, "needs at least 1.5.0")


def test_path_traversal_is_refused(tmp_path, keys, server, robot):
    evil = tarfile.TarInfo("../../evil.sh")
    evil.size = 4
    crafted(server.root / "vla-1.1.0.tar.gz", keys, "1.1.0", [evil], {"../../evil.sh": b"boom"}, [])
    _refused(robot[0], server.client(), "path traversal")
    assert not (tmp_path / "evil.sh").exists()


def test_symlink_escape_is_refused(tmp_path, keys, server, robot):
    link = tarfile.TarInfo("model")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../outside"
    payload = tarfile.TarInfo("model/policy.pt")
    payload.size = 4
    digest = digest_file(_write(tmp_path / "p", b"evil"))
    crafted(server.root / "vla-1.1.0.tar.gz", keys, "1.1.0", [link, payload], {"model/policy.pt": b"evil"},
            [FileEntry("model/policy.pt", digest.sha256, 4)])
    _refused(robot[0], server.client(), "leads outside the release")
    assert not (tmp_path / "outside").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_oversized_packages_are_refused(tmp_path, keys, server):
    pkg = build(tmp_path, keys, "1.0.0", tmp_path / "factory")
    big_package = build(tmp_path, keys, "1.1.0", server.root, extra_bytes=1 << 16)
    up, _ = updater(tmp_path / "robot", keys, max_package_bytes=big_package.stat().st_size - 1)
    up.install_file(pkg)
    _refused(up, server.client(), "over the cap")
    # a small archive that unpacks to more than the cap (a zip bomb's shape): refused while unpacking
    big = tmp_path / "big"
    (big / "model").mkdir(parents=True)
    (big / "model" / "policy.pt").write_bytes(b"\0" * (4 << 20))
    release.build("1.2.0", big, keys.private, server.root / "vla-1.2.0.tar.gz")
    up2, _ = updater(tmp_path / "robot", keys, caps=Caps(max_total_bytes=1 << 20))
    _refused(up2, server.client(), "over the cap of 1048576")


def test_unpack_refuses_links_and_unlisted_files(tmp_path, keys):
    hard = tarfile.TarInfo("model/x")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    crafted(tmp_path / "h.tar.gz", keys, "1.1.0", [hard], {}, [])
    from vla_fleet.ota.package import unpack
    with pytest.raises(PackageError, match="hard link"):
        unpack(tmp_path / "h.tar.gz", tmp_path / "u1", Caps())
    extra = tarfile.TarInfo("model/extra")
    extra.size = 1
    crafted(tmp_path / "e.tar.gz", keys, "1.1.0", [extra], {"model/extra": b"x"}, [])
    with pytest.raises(PackageError, match="not listed in the manifest"):
        unpack(tmp_path / "e.tar.gz", tmp_path / "u2", Caps())


def test_interrupted_download_resumes(tmp_path, keys, server, robot):
    up, reports = robot
    # a package of many chunks: the child is killed a few chunks into its download
    build(tmp_path, keys, "1.1.0", server.root, extra_bytes=1 << 20)
    child = subprocess.run([sys.executable, str(HERE / "ota_crash_child.py"), str(up.root),
                            str(keys.public), server.url, "downloading"], env=_env(), timeout=120)
    assert child.returncode == -9
    part = up.root / "staging" / "1.1.0.tar.gz.part"
    assert 0 < part.stat().st_size < (server.root / "vla-1.1.0.tar.gz").stat().st_size
    assert up.recover() is None and part.exists()  # a partial download survives the restart
    outcome = up.run(server.client(), "robot_1", loaded, passes)
    assert outcome.startswith("completed: 1.1.0"), outcome
    verifying = [r for r in reports if r[0] == "verifying"]
    assert verifying and verifying[-1][4].startswith("resumed at byte "), verifying


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


@pytest.mark.parametrize("point", [p for p in CRASH_POINTS if p != "downloading"])
def test_kill_9_at_each_step_leaves_old_or_new(tmp_path, keys, server, robot, point):
    up, _ = robot
    build(tmp_path, keys, "1.1.0", server.root)
    child = subprocess.run([sys.executable, str(HERE / "ota_crash_child.py"), str(up.root), str(keys.public),
                            server.url, point], env=_env(), timeout=120, capture_output=True, text=True)
    assert child.returncode == -9, child.stdout + child.stderr
    # right after the kill: exactly one complete release active, old or new
    active = up.current_version()
    assert active in ("1.0.0", "1.1.0")
    verify_tree(up.current_link.resolve())
    # the restart finishes or undoes the step
    pending = up.recover()
    if pending is not None:
        assert (pending.version, pending.previous) == ("1.1.0", "1.0.0")
        up.settle(pending, server.client(), "robot_1", loaded, passes)
    final = up.current_version()
    assert up.journal() is None and snapshot(up.root)["staging"] in ([], ["1.1.0.tar.gz.part"])
    verify_tree(up.current_link.resolve())
    expected = {"verified": "1.0.0", "unpacking": "1.0.0", "unpacked": "1.1.0", "switching": "1.1.0",
                "switched": "1.1.0", "health": "1.1.0", "rolling_back": "1.0.0"}[point]
    assert final == expected, (point, final)
    assert set(up.installed()) == {"1.0.0", "1.1.0"} if final == "1.1.0" else up.installed() == ["1.0.0"]
    # and the robot updates cleanly afterwards (unless it rolled 1.1.0 back: then it waits for a newer one)
    if final == "1.0.0" and point != "rolling_back":
        assert up.run(server.client(), "robot_1", loaded, passes).startswith("completed: 1.1.0")


def test_failing_health_check_rolls_back_by_itself(tmp_path, keys, server, robot):
    up, reports = robot
    build(tmp_path, keys, "1.1.0", server.root)
    loads = []
    outcome = up.run(server.client(), "robot_1", lambda: loads.append(up.current_version()) or (True, "ok"), fails)
    assert outcome == "rolled back: vla_health unhealthy"
    assert up.current_version() == "1.0.0" and up.installed() == ["1.0.0"]
    assert loads == ["1.1.0", "1.0.0"], "the policy was not reloaded after the switch and after the rollback"
    assert reports[-1][:3] == ("rolled_back", "1.1.0", "1.0.0")
    again = up.run(server.client(), "robot_1", loaded, passes)  # the rollout is halted: 1.1.0 is not offered again
    assert "halted: robot_1 reported rolled_back" in again, again
    with pytest.raises(UpdateError, match="rolled back on this robot"):  # nor taken if it were
        up.check_offer(server.client().latest("0.5", "robot_9"))
    assert up.current_version() == "1.0.0"


def test_rollback_on_demand(tmp_path, keys, server, robot):
    up, reports = robot
    build(tmp_path, keys, "1.1.0", server.root)
    assert up.run(server.client(), "robot_1", loaded, passes).startswith("completed")
    assert up.rollback(up.current_version(), "operator asked") == "1.0.0"
    assert up.current_version() == "1.0.0" and reports[-1][0] == "rolled_back"
    with pytest.raises(UpdateError, match="no earlier release"):
        up.rollback("1.0.0", "again")


def _canary_rollout(tmp_path, keys, server):
    """Three robots on 1.0.0 and 1.1.0 published with robot_1 as its canary: (updaters, client)."""
    factory = build(tmp_path, keys, "1.0.0", tmp_path / "factory")
    robots = {}
    for rid in ("robot_1", "robot_2", "robot_3"):
        robots[rid], _ = updater(tmp_path / rid, keys)
        robots[rid].install_file(factory)
    (server.root / "rollout.json").write_text('{"1.1.0": {"canary": ["robot_1"], "percent": 100}}')
    build(tmp_path, keys, "1.1.0", server.root)
    return robots, server.client()


def test_staged_rollout_halts_after_the_canary_rolls_back(tmp_path, keys, server):
    robots, client = _canary_rollout(tmp_path, keys, server)
    assert "canary robots first" in robots["robot_2"].run(client, "robot_2", loaded, passes)
    assert robots["robot_1"].run(client, "robot_1", loaded, fails).startswith("rolled back")
    for rid in ("robot_2", "robot_3"):
        outcome = robots[rid].run(client, rid, loaded, passes)
        assert "halted: robot_1 reported rolled_back" in outcome, outcome
        assert robots[rid].current_version() == "1.0.0"
    view = server.fleet()
    assert view["versions"] == {"1.0.0": ["robot_1", "robot_2", "robot_3"]}
    assert "robot_1 reported rolled_back" in view["rollouts"]["1.1.0"]["halted"]


def test_staged_rollout_goes_on_after_the_canary_succeeds(tmp_path, keys, server):
    robots, client = _canary_rollout(tmp_path, keys, server)
    assert "canary robots first" in robots["robot_3"].run(client, "robot_3", loaded, passes)
    assert robots["robot_1"].run(client, "robot_1", loaded, passes).startswith("completed")
    for rid in ("robot_2", "robot_3"):
        assert robots[rid].run(client, rid, loaded, passes).startswith("completed"), rid
    assert server.fleet()["versions"] == {"1.1.0": ["robot_1", "robot_2", "robot_3"]}


def test_server_refuses_bad_queries(server):
    import urllib.error
    import urllib.request
    for query in ("current_version=x.y&robot_id=r", "current_version=1.0"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{server.url}/api/updates/latest?{query}", timeout=30)
        assert err.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server.url}/packages/..%2F..%2Fetc%2Fpasswd", timeout=30)
    assert err.value.code == 404
    assert PUBLIC_KEY_NAME == "ota_ed25519.pub"


def test_update_over_tls(tmp_path, keys, robot):
    """The server on https with a certificate of its own CA: the robot trusts it through ~ca_file, and a
    robot without that CA refuses the connection."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=120)
    server = Server(tmp_path / "tls-server", certfile=cert, keyfile=key)
    try:
        build(tmp_path, keys, "1.1.0", server.root)
        up, _ = robot
        assert "certificate verify failed" in up.run(server.client(), "robot_1", loaded, passes)
        assert up.run(server.client(ca_file=str(cert)), "robot_1", loaded, passes).startswith("completed: 1.1.0")
    finally:
        server.stop()


def test_health_watch_fails_on_silence_on_unhealthy_and_on_missing_files(tmp_path):
    from vla_fleet.ota.health import HealthWatch
    from vla_fleet.ota.package import Manifest

    healthy = {"overall_status": True, "components": {"vision": True}, "level": "healthy"}
    overall = Manifest("1.1.0", "0", (), ({"kind": "health_overall"},))
    watch = HealthWatch(overall, tmp_path, start=10.0, window_s=5.0)
    assert watch.verdict(12.0) is None
    ok, why = watch.verdict(15.0)
    assert not ok and "no vla_health heard" in why  # silence is not health
    watch = HealthWatch(overall, tmp_path, start=10.0, window_s=5.0)
    watch.feed(healthy, 9.0)  # before the switch: not counted
    watch.feed(healthy, 11.0)
    assert watch.verdict(14.9) is None and watch.verdict(15.0) == (True, "healthy through the 5 s window (1 reports)")
    watch.feed({**healthy, "overall_status": False, "level": "critical"}, 12.0)
    assert watch.verdict(12.0)[0] is False
    component = Manifest("1.1.0", "0", (), ({"kind": "component", "name": "lidar"},))
    watch = HealthWatch(component, tmp_path, start=0.0, window_s=1.0)
    watch.feed(healthy, 0.5)
    assert "component lidar unhealthy or missing" in watch.verdict(0.5)[1]
    files = Manifest("1.1.0", "0", (), ({"kind": "file", "path": "model/policy.json"},))
    assert "not in the release" in HealthWatch(files, tmp_path, start=0.0, window_s=1.0).verdict(0.0)[1]


def test_rollout_stages_canary_then_percentage_then_all(tmp_path):
    from vla_fleet.ota.rollout import ALL, PERCENT, Rollouts, bucket

    (tmp_path / "rollout.json").write_text('{"2.0.0": {"canary": ["r0"], "percent": 50}}')
    rollouts = Rollouts(tmp_path / "rollout.json", tmp_path / "state.json", clock=lambda: 0.0)
    fleet = [f"r{i}" for i in range(20)]
    for rid in fleet:
        rollouts.seen(rid, "1.0.0")
    assert [rid for rid in fleet if rollouts.may_have("2.0.0", rid)[0]] == ["r0"]
    rollouts.report("r0", "2.0.0", "1.0.0", "completed", "")
    half = sorted(rid for rid in fleet if rid != "r0" and bucket("2.0.0", rid) < 50)
    assert 0 < len(half) < 19
    allowed = [rid for rid in fleet if rid != "r0" and rollouts.may_have("2.0.0", rid)[0]]
    assert sorted(allowed) == half and rollouts.releases["2.0.0"].stage == PERCENT
    outside = next(rid for rid in fleet if rid not in [*half, "r0"])
    assert "50% of the fleet first" in rollouts.may_have("2.0.0", outside)[1]
    for rid in half:
        rollouts.report(rid, "2.0.0", "1.0.0", "completed", "")
    assert all(rollouts.may_have("2.0.0", rid)[0] for rid in fleet)
    assert rollouts.releases["2.0.0"].stage == ALL
    # the state survives a restart of the server
    again = Rollouts(tmp_path / "rollout.json", tmp_path / "state.json", clock=lambda: 0.0)
    assert again.releases["2.0.0"].stage == ALL and again.view()["robots"]["r0"]["version"] == "2.0.0"


def test_a_broken_download_does_not_halt_the_rollout(tmp_path, keys, server, robot):
    """A download that fails (here the package vanishes from the server after the offer: HTTP 404) is the
    network's fault, not the release's: reported on the robot, not to the server, so the rollout goes on."""
    up, reports = robot
    package = build(tmp_path, keys, "1.1.0", server.root)
    client = server.client()
    real_latest = client.latest

    def latest_then_vanish(current, robot_id):
        offer = real_latest(current, robot_id)
        package.rename(tmp_path / package.name)
        return offer

    client.latest = latest_then_vanish
    outcome = up.run(client, "robot_1", loaded, passes)
    assert outcome.startswith("failed") and "HTTP 404" in outcome, outcome
    assert reports[-1][0] == "failed" and up.current_version() == "1.0.0"
    assert server.fleet()["rollouts"].get("1.1.0", {}).get("halted", "") == ""
    (tmp_path / package.name).rename(package)
    assert up.run(server.client(), "robot_1", loaded, passes).startswith("completed: 1.1.0")


@pytest.mark.parametrize("size", [0, 1, 65, (1 << 20) + 7])
def test_the_streamed_signature_is_plain_ed25519_over_the_bytes(tmp_path, size):
    """Signed and verified in chunks, yet the very signature libsodium's one-shot crypto_sign makes."""
    from nacl.signing import SigningKey

    from vla_fleet.ota.signing import sign_file
    key = SigningKey(bytes(range(32)))
    data = bytes((i * 7 + size) % 251 for i in range(size))
    path = _write(tmp_path / "pkg", data)
    signature = sign_file(key, path)
    assert base64.b64decode(signature) == key.sign(data).signature
    verify_file(key.verify_key, path, signature)
    other = SigningKey(bytes(range(1, 33)))
    with pytest.raises(SignatureError):
        verify_file(other.verify_key, path, signature)
    forged = base64.b64decode(signature)
    with pytest.raises(SignatureError):                 # S + L: the same point, a non-canonical scalar
        big_s = (int.from_bytes(forged[32:], "little") + 2 ** 252 + 27742317777372353535851937790883648493)
        verify_file(key.verify_key, path, base64.b64encode(forged[:32] + big_s.to_bytes(32, "little")).decode())
