"""Running the world in time: pacing against a fake wall clock, the real-time factor, the publishing
schedule in simulated time, the command watchdog, and a clock that never goes back."""

import math

import numpy as np
import pytest

from vla_monitoring.config import build_config
from vla_sim.config import SimNodeConfig
from vla_sim.simulation import MAX_STEPS_PER_TICK, Pacer, Schedule, Simulation
from vla_sim.world import World

STEP = 0.01


def run_pacer(pacer: Pacer, wall_end_s: float, tick_s: float) -> int:
    steps = pacer.steps_due(0.0)
    for k in range(1, round(wall_end_s / tick_s) + 1):
        steps += pacer.steps_due(k * tick_s)
    return steps


@pytest.mark.parametrize(("factor", "tick_s", "steps"), [
    (1.0, 0.01, 100), (1.0, 0.003, 100), (0.5, 0.01, 50), (0.5, 0.007, 50), (2.0, 0.01, 200), (0.1, 0.05, 10),
])
def test_simulated_time_is_wall_time_times_the_factor(factor, tick_s, steps):
    """One wall second gives real_time_factor simulated seconds, in whole steps, whatever the tick."""
    pacer = Pacer(STEP, factor)
    assert abs(run_pacer(pacer, 1.0, tick_s) - steps) <= 1
    assert pacer.lost_s == 0.0


def test_a_late_tick_is_made_up_to_a_cap_and_the_rest_counted_lost():
    pacer = Pacer(STEP, 1.0)
    assert pacer.steps_due(5.0) == 0  # the first call starts the clock
    assert pacer.steps_due(5.05) == 5
    assert pacer.steps_due(6.05) == MAX_STEPS_PER_TICK  # a 1 s stall: 0.1 s made up
    assert pacer.lost_s == pytest.approx(1.0 - MAX_STEPS_PER_TICK * STEP)
    assert pacer.steps_due(6.06) == 1  # and on it goes at real time
    assert pacer.steps_due(6.0) == 0  # a wall clock that steps back owes nothing


def test_next_wake_is_when_the_next_step_falls_due():
    pacer = Pacer(STEP, 0.5)
    pacer.steps_due(10.0)
    assert pacer.next_wake_s() == pytest.approx(10.02)  # a 0.01 s step at half speed: 0.02 s of wall time
    pacer.steps_due(10.015)
    assert pacer.next_wake_s() == pytest.approx(10.02)
    assert pacer.steps_due(10.02) == 1


def test_schedule_publishes_each_stream_at_its_rate_in_simulated_time():
    schedule = Schedule({"camera": 1 / 30, "odom": 1 / 50, "battery": 1.0}, start_s=STEP)
    counts = {"camera": 0, "odom": 0, "battery": 0}
    for k in range(1, 201):  # two simulated seconds of 0.01 s steps
        for name in schedule.pop_due(k * STEP):
            counts[name] += 1
    assert counts == {"camera": 60, "odom": 100, "battery": 2}


def test_schedule_skips_ahead_instead_of_bursting():
    schedule = Schedule({"camera": 0.1}, start_s=0.0)
    assert schedule.pop_due(0.0) == ["camera"]
    assert schedule.pop_due(1.0) == ["camera"]  # ten periods late: one message, not ten
    assert schedule.pop_due(1.05) == []
    assert schedule.pop_due(1.1) == ["camera"]


def make_sim(**params) -> Simulation:
    cfg = build_config(SimNodeConfig, {"robots": ["r1", "r2"], "world": {"num_obstacles": 0}, **params})
    return Simulation(World(cfg.robots, seed=cfg.seed, config=cfg.world), cfg)


def tick_for(sim: Simulation, start_s: float, seconds: float, tick_s: float = STEP) -> tuple[float, list[str]]:
    """Ticks on a fake wall clock from start_s; returns the wall time reached and every stream made due."""
    due = []
    wall = start_s
    for _ in range(round(seconds / tick_s)):
        wall += tick_s
        due += sim.tick(wall)
    return wall, due


def test_simulation_clock_follows_the_real_time_factor_and_never_goes_back():
    sim = make_sim(real_time_factor=0.5)
    assert sim.tick(100.0) == []  # starts the clock; nothing has happened yet
    wall, due = tick_for(sim, 100.0, 4.0)
    assert sim.time_s == pytest.approx(2.0, abs=STEP)
    assert sim.rate.factor == pytest.approx(0.5, abs=0.01)
    assert due.count("camera") == pytest.approx(60, abs=1)  # 30 Hz of simulated time
    assert due.count("state") == pytest.approx(20, abs=1)
    before = sim.time_s
    sim.reset(5)
    assert sim.world.time_s == 0.0 and sim.world.seed == 5
    tick_for(sim, wall, 0.1)
    assert sim.time_s > before  # /clock goes on across a reset


def test_a_silent_controller_is_stopped_after_the_timeout_in_simulated_time():
    sim = make_sim(cmd_timeout_s=0.5, real_time_factor=0.5)
    sim.tick(0.0)
    assert sim.command("r1", 0.4, 0.0, 0.0)
    wall, _ = tick_for(sim, 0.0, 0.8)  # 0.4 s simulated: still within the timeout
    assert sim.world.robot("r1").cmd[0] == pytest.approx(0.4)
    x = sim.world.robot("r1").x
    wall, _ = tick_for(sim, wall, 1.0)  # 0.9 s simulated since the command
    rb = sim.world.robot("r1")
    assert not rb.cmd.any()
    assert rb.x != x  # it moved while commanded
    assert sim.world.robot("r2").vx == 0.0  # never commanded: never moves
    x = rb.x
    tick_for(sim, wall, 1.0)
    assert rb.vx == 0.0 and rb.x == pytest.approx(x, abs=0.01)  # braked within the acceleration limit


def test_a_non_finite_command_is_refused_and_counted():
    sim = make_sim()
    sim.tick(0.0)
    assert not sim.command("r1", math.nan, 0.0, 0.0)
    assert not sim.command("r1", 0.0, math.inf, 0.0)
    assert sim.world.robot("r1").rejected_twists == 2
    assert not np.any(sim.world.robot("r1").cmd)
