"""The simulator's task definition agrees with the safety layer it is deployed behind.

vla_sim.scene.SAFETY_CLEARANCE_M says it is the clearance vla_safety enforces (footprint edge to
any obstacle point): the expert stops there, and "reached" (0.6 m) is the bubble plus slack. If the
safety default or the shipped config moved, the expert would ask for motion the supervisor cuts,
or a target could never be reached: this test fails first.
"""

from pathlib import Path

import pytest
import yaml

from vla_safety.config import SafetyConfig
from vla_sim.expert import STOP_DISTANCE_M
from vla_sim.world import REACHED_DISTANCE_M, SAFETY_CLEARANCE_M

SAFETY_YAML = Path(__file__).resolve().parents[2] / "config" / "safety.yaml"


def test_clearance_is_the_safety_default():
    assert pytest.approx(SafetyConfig().collision_threshold) == SAFETY_CLEARANCE_M


def test_clearance_is_the_shipped_safety_config():
    assert pytest.approx(yaml.safe_load(SAFETY_YAML.read_text())["collision_threshold"]) == SAFETY_CLEARANCE_M


def test_reached_lies_just_outside_the_bubble_and_the_expert_stops_at_it():
    assert SAFETY_CLEARANCE_M < REACHED_DISTANCE_M <= SAFETY_CLEARANCE_M + 0.15
    assert pytest.approx(SAFETY_CLEARANCE_M) == STOP_DISTANCE_M
