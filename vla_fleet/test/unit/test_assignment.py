"""Assignment: optimal against brute force on small cases, filters, priority first, greedy above the size limit."""

from __future__ import annotations

import itertools
import random

from vla_fleet.assignment import CostModel, Job, Robot, assign, can_take, cost


def robot(rid, x=0.0, y=0.0, battery=100.0, caps=()):
    return Robot(rid, x, y, battery, frozenset(caps))


def job(tid, x=0.0, y=0.0, priority=0, caps=(), robot_id=""):
    return Job(tid, priority, (x, y), frozenset(caps), robot_id)


def brute_force(jobs, robots, model):
    """The best (most pairs, then least cost) of every assignment."""
    best = (0, 0.0)
    n = min(len(jobs), len(robots))
    for k in range(n, 0, -1):
        for chosen in itertools.combinations(range(len(jobs)), k):
            for perm in itertools.permutations(range(len(robots)), k):
                pairs = list(zip(chosen, perm, strict=True))
                if all(can_take(robots[r], jobs[j]) for j, r in pairs):
                    c = sum(cost(robots[r], jobs[j], model) for j, r in pairs)
                    if (k, -c) > (best[0], -best[1]):
                        best = (k, c)
        if best[0] == k:
            return best
    return best


def total(pairs, jobs, robots, model):
    j = {x.task_id: x for x in jobs}
    r = {x.robot_id: x for x in robots}
    return sum(cost(r[b], j[a], model) for a, b in pairs)


def test_optimal_against_brute_force_on_random_small_cases():
    rng = random.Random(7)
    model = CostModel()
    caps = ["camera", "lidar", "gripper"]
    for _ in range(150):
        robots = [robot(f"r{i}", rng.uniform(-10, 10), rng.uniform(-10, 10), rng.uniform(20, 100),
                        rng.sample(caps, rng.randint(0, 3))) for i in range(rng.randint(1, 4))]
        jobs = [job(f"t{i}", rng.uniform(-10, 10), rng.uniform(-10, 10),
                    caps=rng.sample(caps, rng.randint(0, 1))) for i in range(rng.randint(1, 5))]
        pairs = assign(jobs, robots, model)
        count, best = brute_force(jobs, robots, model)
        assert len(pairs) == count
        assert abs(total(pairs, jobs, robots, model) - best) < 1e-6
        assert len({a for a, _ in pairs}) == len(pairs) and len({b for _, b in pairs}) == len(pairs)


def test_nearest_robot_not_first_come():
    robots = [robot("far", 10, 0), robot("near", 1, 0)]
    jobs = [job("a", 0, 0), job("b", 11, 0)]
    assert sorted(assign(jobs, robots)) == [("a", "near"), ("b", "far")]


def test_capabilities_and_requested_robot():
    robots = [robot("plain"), robot("arm", 50, 0, caps=["gripper"])]
    assert assign([job("pick", caps=["gripper"])], robots) == [("pick", "arm")]
    assert assign([job("pick", caps=["gripper", "lidar"])], robots) == []
    assert assign([job("mine", robot_id="arm")], robots) == [("mine", "arm")]


def test_battery_breaks_a_tie():
    assert assign([job("a")], [robot("low", battery=30), robot("full", battery=90)]) == [("a", "full")]


def test_priority_first_even_when_farther():
    robots = [robot("r", 0, 0)]
    jobs = [job("near_low", 0, 0, priority=5), job("far_high", 100, 0, priority=1)]
    assert assign(jobs, robots) == [("far_high", "r")]


def test_greedy_above_the_size_limit_takes_queue_order_and_nearest():
    robots = [robot("r1", 0, 0), robot("r2", 5, 0)]
    jobs = [job("first", 4, 0), job("second", 0, 0), job("third", 1, 0)]
    pairs = assign(jobs, robots, CostModel(max_matrix=1))
    assert pairs == [("first", "r2"), ("second", "r1")]


def test_empty_inputs():
    assert assign([], [robot("r")]) == [] and assign([job("a")], []) == []
