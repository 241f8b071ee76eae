"""The scripted expert reaches every target on varied layouts, and the instruction helpers."""

import json
import re

import numpy as np
import pytest
from vla_sim.expert import expert_action
from vla_sim.instructions import (
    SYNONYMS,
    is_stop,
    load_instructions,
    resolve_target,
    seen_instructions,
    unseen_instructions,
)
from vla_sim.rollout import ROBOT_ID, expert_chunk, make_world, run_episode
from vla_sim.world import TARGET_NAMES


@pytest.mark.parametrize("seed", range(12))
def test_expert_reaches_target(seed):
    target = TARGET_NAMES[seed % 4]
    world = make_world(seed, target, f"go to the {target}")
    reached, time_s = run_episode(world, lambda _img: expert_action(world, ROBOT_ID))
    assert reached, f"seed {seed}: {world.distance_to_target(ROBOT_ID):.2f} m left"
    assert time_s < 30.0


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
