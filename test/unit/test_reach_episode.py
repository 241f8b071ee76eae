"""test/reach_episode.py: a stale `reached: true` never passes an episode of edge_reach_target."""

from reach_episode import EpisodeJudge, Phase

TASK = "go to the blue ball"
OLD_OBJECTS = [{"name": "red cube", "x": 1.0, "y": 2.0}]
NEW_OBJECTS = [{"name": "red cube", "x": -2.0, "y": 0.5}]


def state(objects, task, reached, distance, seed=None):
    out = {"robots": {"robot_1": {"task": task, "reached": reached, "distance_to_target": distance}},
           "objects": objects}
    if seed is not None:
        out["seed"] = seed
    return out


def judge() -> EpisodeJudge:
    return EpisodeJudge("robot_1", 7, TASK, OLD_OBJECTS)


def test_fresh_episode_is_reached():
    j = judge()
    for s in (state(NEW_OBJECTS, None, False, None), state(NEW_OBJECTS, TASK, False, 3.2),
              state(NEW_OBJECTS, TASK, False, 1.0), state(NEW_OBJECTS, TASK, True, 0.55)):
        j.feed(s)
    assert j.phase is Phase.REACHED and j.first_distance == 3.2


def test_stale_reached_of_the_previous_episode_never_counts():
    j = judge()
    # the previous episode's last states (same task text, reached) arrive after the reset
    j.feed(state(OLD_OBJECTS, TASK, True, 0.5))
    j.feed(state(OLD_OBJECTS, None, True, 0.5))
    assert j.phase is Phase.NEW_LAYOUT
    j.feed(state(NEW_OBJECTS, None, False, None))
    # a task state that is already reached is no fresh start either
    j.feed(state(NEW_OBJECTS, TASK, True, 0.4))
    assert j.phase is Phase.TASK_TAKEN and not j.at_least(Phase.DRIVING)


def test_reached_for_another_task_does_not_count():
    j = judge()
    for s in (state(NEW_OBJECTS, None, False, None), state(NEW_OBJECTS, TASK, False, 3.0),
              state(NEW_OBJECTS, "go to the red cube", True, 0.3)):
        j.feed(s)
    assert j.phase is Phase.DRIVING


def test_seed_in_the_state_decides_the_layout():
    j = judge()
    j.feed(state(NEW_OBJECTS, None, False, None, seed=6))
    assert j.phase is Phase.NEW_LAYOUT
    j.feed(state(OLD_OBJECTS, None, False, None, seed=7))
    assert j.phase is Phase.TASK_TAKEN
