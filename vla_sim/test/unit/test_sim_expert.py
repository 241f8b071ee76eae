"""The scripted expert reaches every target on varied layouts, and the instruction helpers."""

import json
import re

import numpy as np
import pytest
from vla_sim.expert import STOP_DISTANCE_M, expert_action
from vla_sim.instructions import (
    SYNONYMS,
    is_stop,
    load_instructions,
    resolve_target,
    seen_instructions,
    unseen_instructions,
)
from vla_sim.rollout import ROBOT_ID, expert_chunk, make_world, run_episode
from vla_sim.world import REACHED_DISTANCE_M, SAFETY_CLEARANCE_M, TARGET_NAMES, World


@pytest.mark.parametrize("seed", range(12))
def test_expert_reaches_target(seed):
    target = TARGET_NAMES[seed % 4]
    world = make_world(seed, target, f"go to the {target}")
    reached, time_s = run_episode(world, lambda _img: expert_action(world, ROBOT_ID))
    assert reached, f"seed {seed}: {world.distance_to_target(ROBOT_ID):.2f} m left"
    assert time_s < 30.0


def test_distances_agree_with_the_safety_bubble():
    # config/safety.yaml keeps 0.5 m from the footprint edge; reached means inside 0.6 m
    assert pytest.approx(0.6) == REACHED_DISTANCE_M
    assert pytest.approx(0.5) == SAFETY_CLEARANCE_M
    assert pytest.approx(SAFETY_CLEARANCE_M) == STOP_DISTANCE_M


def test_expert_keeps_outside_the_safety_bubble():
    """Over many layouts the expert succeeds and, once it moves, never closes in on anything but its
    target nearer than the bubble (a few centimetres of overshoot from the acceleration limits aside)."""
    wins, worst = 0, np.inf
    for seed in range(100000, 100060):
        target = TARGET_NAMES[seed % 4]
        world = World([ROBOT_ID], seed=seed)
        world.set_target(ROBOT_ID, target)
        rb, r, half = world.robot(ROBOT_ID), world.config.robot_radius_m, world.config.room_size_m / 2
        prev = np.inf
        for _ in range(300):
            if world.reached(ROBOT_ID):
                wins += 1
                break
            gap = min([world.edge_distance(o, rb.x, rb.y) - r for o in world.objects if o.name != target]
                      + [half - abs(rb.x) - r, half - abs(rb.y) - r])
            if gap < prev - 1e-4:  # approaching: this is motion the safety layer would judge
                worst = min(worst, gap)
            prev = gap
            world.set_twist(ROBOT_ID, *expert_action(world, ROBOT_ID))
            world.step(0.1)
    assert wins >= 59
    assert worst > SAFETY_CLEARANCE_M - 0.1


def test_expert_stops_without_target_and_chunk_restores_world():
    world = make_world(0, "red cube", "go to the red cube")
    before = world.state()
    chunk = expert_chunk(world, ROBOT_ID, 8)
    assert chunk.shape == (8, 3) and np.abs(chunk).sum() > 0
    assert world.state() == before
    world.set_target(ROBOT_ID, None)
    assert not expert_action(world, ROBOT_ID).any()


def test_unseen_paraphrases_share_no_phrase_with_training():
    seen = {s for items in seen_instructions().values() for s in items}
    unseen = unseen_instructions()
    assert set(unseen) == set(TARGET_NAMES)
    for target, items in unseen.items():
        for text in items:
            assert text not in seen
            # no training synonym as a phrase of its own
            assert not any(re.search(rf"\b{syn}\b", text) for syn in SYNONYMS[target][1:]), text
            assert resolve_target(text) == target


def test_resolver():
    assert resolve_target("go to the red cube") == "red cube"
    assert resolve_target("head toward the crimson block") == "red cube"
    assert resolve_target("Drive to the BLUE sphere!") == "blue ball"
    assert resolve_target("the pylon") == "yellow cone"
    assert resolve_target("go somewhere nice") is None
    assert resolve_target("red or blue?") is None
    assert is_stop("stop") and is_stop(" Standby ") and not is_stop("stop at the red cube")


def test_load_instructions_validates(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"red cube": ["go to the red cube"]}))
    assert load_instructions(good) == {"red cube": ["go to the red cube"]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"purple pyramid": ["x"]}))
    with pytest.raises(ValueError, match="unknown target"):
        load_instructions(bad)
    bad.write_text(json.dumps({"red cube": []}))
    with pytest.raises(ValueError):
        load_instructions(bad)
