"""config/places.yaml: what fleet.launch gives the fleet manager loads as places, and its dock is the simulator's."""

from __future__ import annotations

from pathlib import Path

from vla_fleet.manager import load_places
from vla_sim.world import World

PLACES = Path(__file__).resolve().parents[2] / "config" / "places.yaml"


def test_places_file_loads_and_its_dock_is_the_simulators():
    places = load_places(str(PLACES))
    assert set(places) == {"dock", "room_centre"}
    dock = World(["robot_1"], seed=0).dock_xy
    assert places["dock"] == (round(dock[0], 4), round(dock[1], 4))
