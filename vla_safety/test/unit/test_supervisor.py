import itertools
import math

import numpy as np
import pytest

from vla_monitoring.config import build_config
from vla_msgs import json_forms
from vla_msgs.states import SafetyState
from vla_safety.collision import reduce_points
from vla_safety.config import SafetyConfig
from vla_safety.supervisor import EMERGENCY_STOP, LIMITED, OK, STOPPED, SafetySupervisor


def twist(vx=0.0, vy=0.0, wz=0.0):
    return np.array([vx, vy, 0, 0, 0, wz], dtype=float)


FAR = np.array([[20.0, 20.0]])
ORIGIN = (0.0, 0.0, 0.0, 0.0)


class Rig:
    """A supervisor with an injected clock and live sensors."""

    def __init__(self, **overrides):
        self.cfg = build_config(SafetyConfig, overrides)
        self.sup = SafetySupervisor(self.cfg)
        self.t = 100.0
        self.points = FAR

    def sensors(self):
        for s in self.cfg.required_sensors:
            if s == "odom":
                self.sup.note_sensor(s, self.t)
            else:
                self.sup.set_obstacles(s, self.points, self.t)

    def tick(self, dt=0.05, cmd=None, feed_sensors=True):
        self.t += dt
        if feed_sensors:
            self.sensors()
        if cmd is not None:
            self.sup.set_command(cmd, self.t)
        return self.sup.step(self.t)

    def run(self, cmd, n=40):
        d = None
        for _ in range(n):
            d = self.tick(cmd=cmd)
        return d


def test_valid_command_passes_after_ramp():
    rig = Rig()
    d = rig.tick(cmd=twist(0.5))
    assert d.commanded[0] == pytest.approx(0.1)  # acceleration limit
    d = rig.run(twist(0.5))
    assert d.level == OK and d.reason == "" and d.commanded[0] == pytest.approx(0.5)


def test_command_watchdog_zeroes_output():
    rig = Rig()
    rig.run(twist(0.5))
    d = rig.tick(dt=0.3)
    assert d.level == OK
    d = rig.tick(dt=0.3)
    assert d.level == STOPPED and "command watchdog" in d.reason and "cmd_vel_vla" in d.reason
    assert not d.commanded.any()


def test_stale_required_sensor_stops_with_its_name():
    rig = Rig()
    rig.run(twist(0.5))
    rig.t += 0.6
    rig.sup.set_obstacles("scan", FAR, rig.t)
    rig.sup.set_command(twist(0.5), rig.t)
    d = rig.sup.step(rig.t)
    assert d.level == STOPPED and "velodyne_points" in d.reason and "scan" not in d.reason.split(":", 1)[1]
    assert not d.commanded.any()


def test_never_seen_sensor_stops():
    rig = Rig()
    d = rig.tick(cmd=twist(0.3), feed_sensors=False)
    assert d.level == STOPPED and "no scan received yet" in d.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_stops_and_counts_until_a_valid_command(bad):
    rig = Rig()
    rig.run(twist(0.5))
    d = rig.tick(cmd=twist(bad))
    assert d.level == STOPPED and "non-finite" in d.reason and d.rejected_commands == 1
    assert not d.commanded.any()
    d = rig.tick()
    assert d.level == STOPPED  # stays stopped while the refused command is the newest
    d = rig.tick(cmd=twist(0.2))
    assert d.level == OK and d.rejected_commands == 1


def test_clamps_are_limited_and_named():
    rig = Rig()
    d = rig.run(twist(1.5, -0.7, 1.2))
    assert d.level == LIMITED and "clamped linear.x, linear.y, angular.z" in d.reason
    np.testing.assert_allclose(d.commanded[[0, 1, 5]], [1.0, -0.5, 1.0])


def test_magnitude_refusal_stops():
    rig = Rig()
    rig.run(twist(0.5))
    d = rig.tick(cmd=twist(1.8, 1.8))
    assert d.level == STOPPED and "linear magnitude" in d.reason and not d.commanded.any()


def test_obstacle_ahead_limits_naming_point_and_scale():
    rig = Rig()
    ys = np.arange(-2, 2, 0.02)
    rig.points = reduce_points(np.stack([np.full_like(ys, 1.5), ys], 1), ORIGIN, 3.0, 0.05, 5000)
    d = rig.run(twist(1.0))
    assert d.level == LIMITED and "speed scaled to" in d.reason and "(1.50," in d.reason
    assert 0 < d.speed_scale < 1 and d.commanded[0] == pytest.approx(d.speed_scale, abs=1e-9)
    assert d.nearest_obstacle_m == pytest.approx(1.3, abs=0.03)


def test_no_safe_motion_stops_but_turning_in_place_is_allowed():
    rig = Rig()
    rig.points = np.array([[0.65, 0.0]])
    d = rig.run(twist(0.5))
    assert d.level == STOPPED and "no safe motion" in d.reason
    d = rig.run(twist(0.5, 0, 0.8))
    assert d.level == LIMITED and "turning in place" in d.reason
    np.testing.assert_allclose(d.commanded[[0, 1, 5]], [0, 0, 0.8])
    d = rig.run(twist(0, 0, 0.8))
    assert d.level == OK


def test_robot_closing_in_on_a_wall_never_breaches_the_threshold():
    """Closed loop: a point robot kinematics + the supervisor, full speed at a wall."""
    rig = Rig()
    x = 0.0
    wall = 3.0
    ys = np.arange(-2, 2, 0.02)
    for _ in range(200):
        rel = np.stack([np.full_like(ys, wall - x), ys], 1)
        rig.points = reduce_points(rel, ORIGIN, 3.0, 0.05, 5000)
        d = rig.tick(cmd=twist(1.0))
        x += d.commanded[0] * 0.05
    assert wall - x - 0.2 >= 0.5 - 1e-6
    assert wall - x - 0.2 < 0.6


def test_estop_latches_and_reset_is_refused_while_cause_persists():
    rig = Rig()
    rig.run(twist(0.5))
    assert rig.sup.trigger_estop(rig.t, "emergency_stop/trigger", signal=True)
    assert not rig.sup.trigger_estop(rig.t, "emergency_stop/trigger", signal=True)  # spam: no new latch
    d = rig.tick(cmd=twist(0.5))
    assert d.level == EMERGENCY_STOP and d.emergency_stop and not d.commanded.any()
    ok, msg = rig.sup.reset(rig.t)
    assert not ok and "emergency_stop/trigger was true" in msg
    rig.run(twist(0.5), n=25)  # 1.25 s later: signal hold expired
    rig.points = np.array([[0.5, 0.0]])
    rig.tick()
    ok, msg = rig.sup.reset(rig.t)
    assert not ok and "inside collision_threshold" in msg
    rig.points = FAR
    rig.tick()
    rig.t += 1.0  # sensors go stale
    ok, msg = rig.sup.reset(rig.t)
    assert not ok and "no scan for" in msg
    d = rig.tick(cmd=twist(0.5))
    ok, msg = rig.sup.reset(rig.t)
    assert ok, msg
    d = rig.tick(cmd=twist(0.5))
    assert d.level == OK and not d.emergency_stop and d.commanded[0] == pytest.approx(0.1)


def test_service_trigger_has_no_hold():
    rig = Rig()
    rig.tick(cmd=twist(0.1))
    rig.sup.trigger_estop(rig.t, "service")
    assert rig.sup.reset(rig.t)[0]


def drive(rig, walls, request, seconds=10.0, dt=0.05):
    """Closed loop: holonomic kinematics with heading, world obstacle points, `request` (a twist, or a
    function of the pose [x, y, heading] giving one) every tick.

    Checks that every output (after the acceleration limiter) is itself safe over the horizon, and returns
    the distance travelled, the smallest footprint clearance seen and the last decision."""
    pose = np.zeros(3)
    travelled, min_clearance, d = 0.0, math.inf, None
    for _ in range(int(seconds / dt)):
        c, s = math.cos(pose[2]), math.sin(pose[2])
        rel = walls - pose[:2]
        body = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], 1)
        rig.points = reduce_points(body, ORIGIN, 3.0, 0.05, 5000)
        clearance = float(np.hypot(body[:, 0], body[:, 1]).min()) - rig.cfg.robot_radius
        min_clearance = min(min_clearance, clearance)
        d = rig.tick(dt=dt, cmd=request(pose) if callable(request) else request)
        vx, vy, wz = d.commanded[[0, 1, 5]]
        check = rig.sup.checker.check((vx, vy, wz), rig.points)
        assert check.scale == 1.0, d.reason
        pose += np.array([(c * vx - s * vy) * dt, (s * vx + c * vy) * dt, wz * dt])
        travelled += math.hypot(vx, vy) * dt
    return travelled, min_clearance, d


def line(p0, p1, step=0.02):
    n = int(math.hypot(p1[0] - p0[0], p1[1] - p0[1]) / step) + 1
    return np.linspace(p0, p1, n)


def test_leaning_into_a_wall_slides_along_it():
    """The reference policy's deadlock: passing a wall it keeps asking for forward plus towards-the-wall."""
    rig = Rig()
    wall = line((-2.0, 0.9), (30.0, 0.9))
    travelled, min_clearance, d = drive(rig, wall, twist(0.6, 0.3), seconds=8.0)
    assert min_clearance >= rig.cfg.collision_threshold - 1e-6
    assert travelled > 3.5  # scaling alone stops within ~0.2 m of the threshold
    assert d.level == LIMITED and "sliding along" in d.reason and "approach component removed" in d.reason
    assert d.commanded[0] > 0.5


def test_corridor_keeps_moving_with_a_weaving_request():
    """0.1 m to spare on each side; the request leans sideways and steers, switching side every 1.5 s."""
    rig = Rig()
    walls = np.concatenate([line((-2.0, 0.8), (30.0, 0.8)), line((-2.0, -0.8), (30.0, -0.8))])
    clock = iter(range(10**6))

    def weave(pose):
        side = 1.0 if (next(clock) // 30) % 2 == 0 else -1.0
        return twist(0.7, 0.25 * side, float(np.clip(0.5 * side - 2.0 * pose[2], -0.6, 0.6)))

    travelled, min_clearance, _ = drive(rig, walls, weave, seconds=8.0)
    assert min_clearance >= rig.cfg.collision_threshold - 0.01
    assert travelled > 3.0


def test_head_on_into_a_wall_stops_at_the_threshold():
    rig = Rig()
    travelled, min_clearance, d = drive(rig, line((2.0, -3.0), (2.0, 3.0)), twist(0.8), seconds=5.0)
    assert min_clearance >= rig.cfg.collision_threshold - 1e-6
    assert d.commanded[0] < 0.05 and "sliding" not in d.reason  # nothing to slide along head-on
    assert 1.2 < travelled < 1.3


def test_accelerating_output_is_checked_on_its_own():
    """The axes ramp separately, so while speeding up the output is not a scaled copy of the checked target
    (here angular.z lags linear.x and the arc flattens towards the wall); `drive` checks every output."""
    rig = Rig()
    wall = line((-2.0, 0.795), (30.0, 0.795))
    _, min_clearance, _ = drive(rig, wall, twist(0.85, 0.0, 0.715), seconds=1.0)
    assert min_clearance >= rig.cfg.collision_threshold - 0.01


def test_a_stop_is_all_zeros_whatever_else_the_request_held():
    """Nothing safe ahead and no turn asked for: the request's linear.z, angular.x and angular.y go too."""
    rig = Rig()
    rig.points = np.array([[0.65, 0.0]])
    d = rig.run(np.array([0.5, 0.0, 0.3, 0.3, -0.2, 0.0]))
    assert d.level is SafetyState.STOPPED and "no safe motion" in d.reason
    assert not d.commanded.any(), d.commanded
    d = rig.run(np.array([0.5, 0.0, 0.3, 0.3, -0.2, 0.8]))
    assert d.level is SafetyState.LIMITED and "turning in place" in d.reason
    assert not d.commanded[:3].any() and d.commanded[5] == pytest.approx(0.8)


def test_a_command_is_decided_when_it_arrives_and_pushes_the_next_output_back():
    rig = Rig()
    rig.run(twist(0.5))
    t_last = rig.t
    period = rig.cfg.output_period_s
    assert rig.sup.until_output_s(t_last + 0.01) == pytest.approx(period - 0.01)
    t_cmd = t_last + 0.013  # between two outputs of the least rate
    rig.sup.set_command(twist(0.2), t_cmd)
    d = rig.sup.step(t_cmd)
    assert d.commanded[0] == pytest.approx(0.2)  # slowing down is forwarded at once
    # the output the least rate owed at t_last + period is not due any more: no second output so soon
    assert rig.sup.until_output_s(t_last + period) == pytest.approx(0.013)
    assert rig.sup.until_output_s(t_cmd + period) <= 0.0


def test_irregular_outputs_keep_the_acceleration_limits_and_the_least_rate():
    """Commands at ~10 Hz with jitter, outputs for each and whenever the 20 Hz least rate is due (the
    node's two paths): speeding up per output stays within max accel x time since the previous one."""
    rig = Rig()
    rng = np.random.default_rng(7)
    period = rig.cfg.output_period_s
    rate = np.array([rig.cfg.max_linear_accel] * 3 + [rig.cfg.max_angular_accel] * 3)
    t, next_cmd = 100.0, 100.0
    outputs = []  # (time, commanded)
    while t < 106.0:
        t = min(t + max(rig.sup.until_output_s(t), 0.0), next_cmd)
        rig.t = t
        rig.sensors()
        if t == next_cmd:  # a command arrives: decided at once
            rig.sup.set_command(np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5), 0, 0, 0,
                                          rng.uniform(-1, 1)]), t)
            next_cmd = t + 0.1 + rng.uniform(-0.03, 0.03)
        outputs.append((t, rig.sup.step(t).commanded))
    times = np.array([o[0] for o in outputs])
    assert np.diff(times).max() <= period + 1e-9  # never less than the least rate
    assert 19.0 < len(outputs) / 6.0 < 31.0  # the least rate plus some outputs for commands
    for (t0, prev), (t1, out) in itertools.pairwise(outputs):
        same_sign = np.sign(out) * np.sign(prev) >= 0
        speed_up = np.where(same_sign, np.abs(out) - np.abs(prev), np.abs(out))
        assert np.all(speed_up <= rate * (t1 - t0) + 1e-9), (t0, t1, prev, out)


def test_a_clock_that_goes_back_forgets_every_input_and_stops():
    """A simulator restarting its /clock: ages from the old timeline would look fresh for a long time."""
    rig = Rig()
    d = rig.run(twist(0.5))
    assert d.level is SafetyState.OK and d.commanded[0] > 0
    rig.sup.trigger_estop(rig.t, "test", signal=True)
    rig.t -= 50.0
    d = rig.sup.step(rig.t)
    assert d.level is SafetyState.EMERGENCY_STOP and not d.commanded.any()
    rig.sensors()
    ok, message = rig.sup.reset(rig.t)  # the trigger's hold from the old timeline does not block
    assert ok, message
    d = rig.sup.step(rig.t)
    assert d.level is SafetyState.STOPPED and "no cmd_vel_vla received yet" in d.reason
    rig.t -= 1.0
    d = rig.sup.step(rig.t)
    assert "no scan received yet" in d.reason and not d.commanded.any()


def test_the_decision_is_the_vla_safety_status_form():
    rig = Rig()
    rig.run(twist(0.5))
    d = rig.tick(cmd=twist(math.nan))
    doc = json_forms.SAFETY_STATUS.parse(json_forms.SAFETY_STATUS.build(timestamp=rig.t, robot_id="r",
                                                                         **d.fields()))
    assert doc["status"] == "STOPPED" and doc["emergency_stop"] is False and "non-finite" in doc["reason"]
    assert doc["requested"]["linear.x"] is None and doc["requested"]["angular.z"] == 0.0  # JSON has no NaN
    assert doc["commanded"] == {name: 0.0 for name in doc["commanded"]} and len(doc["commanded"]) == 6
    assert doc["sensor_ages_s"]["odom"] is None and doc["cmd_age_s"] == 0.0


def test_a_clock_that_advances_in_steps_keeps_the_least_rate_on_average():
    """Simulated time from /clock moves in steps (here 20 ms), so the output loop wakes late for a 50 ms
    period; the next output is due a period after the last one was due, not after it went out, and a
    due time that is a clock reading up to rounding is due at that reading (not one tick later)."""
    rig = Rig()
    period_ms, tick_ms = round(1000 * rig.cfg.output_period_s), 20
    outputs = []
    for tick in range(1, 1001):  # 20 s of the simulator's clock, read as float seconds
        now = tick * tick_ms / 1000.0
        rig.t = now
        rig.sensors()
        rig.sup.set_command(twist(0.2), now)  # feeds the watchdog only: no output for it here
        if rig.sup.until_output_s(now) <= 0.0:  # as the node's output loop decides
            rig.sup.step(now)
            outputs.append(tick)
    # the first output at tick 1 (20 ms), then at the first tick at or after each 20 + 50 k ms
    expected = [-(-(tick_ms + k * period_ms) // tick_ms) for k in range(len(outputs))]
    assert outputs == expected
    assert len(outputs) == pytest.approx(20.0 * rig.cfg.output_rate, abs=1)
