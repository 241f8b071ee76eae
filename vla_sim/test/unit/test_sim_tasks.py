"""task_command on the simulator side: vla_msgs' one grammar sets or clears a simulated robot's target."""

import json

import pytest

from vla_msgs.tasks import MAX_TASK_BYTES, TaskRejectedError, parse_task_command
from vla_sim.instructions import apply_task_command
from vla_sim.world import World

RID = "robot_1"


def world_with_task() -> World:
    world = World([RID, "robot_2"], seed=0)
    apply_task_command(world, RID, "go to the red cube")
    assert world.robot(RID).target == "red cube"
    return world


@pytest.mark.parametrize("payload", [
    "halt", "Stop.", "standby", " IDLE ", "STOP!", "stop", json.dumps({"description": "standby", "id": "t9"}),
    json.dumps({"description": "Halt.", "robot_id": RID}),
])
def test_idle_words_clear_the_target_as_they_idle_the_policy(payload):
    world = world_with_task()
    command = apply_task_command(world, RID, payload)
    assert command.idle and parse_task_command(payload).idle  # the grammar the inference node reads too
    assert world.robot(RID).target is None and world.robot(RID).task is None
    assert world.state()["robots"][RID]["distance_to_target"] is None


def test_an_instruction_sets_text_and_target():
    world = world_with_task()
    apply_task_command(world, RID, json.dumps({"description": "  head toward\tthe yellow cone ", "id": 4}))
    rb = world.robot(RID)
    assert (rb.task, rb.target) == ("head toward the yellow cone", "yellow cone")
    apply_task_command(world, RID, "stop at the red cube")  # an instruction, not the idle word
    assert world.robot(RID).target == "red cube"
    apply_task_command(world, RID, "go somewhere nice")  # no single object named: text kept, no target
    assert (world.robot(RID).task, world.robot(RID).target) == ("go somewhere nice", None)
    assert world.robot("robot_2").target is None


@pytest.mark.parametrize(("payload", "reason"), [
    (json.dumps({"description": "go to the blue ball", "robot_id": "robot_2"}), "task for robot 'robot_2'"),
    ("x" * (MAX_TASK_BYTES + 1), "longer than"),
    ("   ", "empty"),
    ('{"description": ', "malformed"),
    (json.dumps({"id": "t1"}), "description"),
    ("go to the\x07 red cube", "control characters"),
])
def test_refused_payloads_leave_the_world_untouched(payload, reason):
    world = world_with_task()
    with pytest.raises(TaskRejectedError, match=reason):
        apply_task_command(world, RID, payload)
    assert (world.robot(RID).task, world.robot(RID).target) == ("go to the red cube", "red cube")
