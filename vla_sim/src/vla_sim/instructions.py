"""Task instructions: the phrasings used in training, the held-out paraphrases, the text → target resolver,
and how a `task_command` payload (vla_msgs' one grammar) sets a simulated robot's target.

Training draws from TEMPLATES x SYNONYMS. The held-out paraphrases (data/paraphrases_unseen.json)
use verbs and object words that appear in neither, so evaluating on them measures language
generalisation through the sentence encoder rather than memorised strings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from vla_msgs.tasks import TaskCommand, TaskRejectedError, parse_task_command
from vla_sim import resources
from vla_sim.world import TARGET_NAMES, World

TEMPLATES: tuple[str, ...] = (
    "go to the {}",
    "drive to the {}",
    "head toward the {}",
    "move to the {}",
    "navigate to the {}",
    "find the {}",
    "approach the {}",
    "go towards the {}",
    "please go to the {}",
    "get to the {}",
    "the {}",
    "drive over to the {}",
)

SYNONYMS: dict[str, tuple[str, ...]] = {
    "red cube": ("red cube", "red box", "red block", "crimson block", "crimson cube"),
    "blue ball": ("blue ball", "blue sphere", "blue orb", "navy ball"),
    "green cylinder": ("green cylinder", "green pillar", "green tube", "green column"),
    "yellow cone": ("yellow cone", "yellow traffic cone", "yellow pylon", "golden cone"),
}

# Words the resolver accepts for each target, wider than the training synonyms so that an operator's
# free text ("the scarlet brick") still tells the simulator which object counts as the goal.
_COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red cube": ("red", "crimson", "scarlet", "ruby", "maroon", "cherry"),
    "blue ball": ("blue", "navy", "azure", "sapphire", "cobalt", "indigo"),
    "green cylinder": ("green", "emerald", "lime", "jade", "olive"),
    "yellow cone": ("yellow", "golden", "gold", "amber", "lemon"),
}
_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "red cube": ("cube", "box", "block", "brick", "crate"),
    "blue ball": ("ball", "sphere", "orb", "globe"),
    "green cylinder": ("cylinder", "pillar", "tube", "column", "post", "pole"),
    "yellow cone": ("cone", "pylon"),
}


def seen_instructions() -> dict[str, list[str]]:
    """Every training phrasing, per target."""
    return {t: [tpl.format(s) for tpl in TEMPLATES for s in SYNONYMS[t]] for t in TARGET_NAMES}


def load_instructions(path: str | Path) -> dict[str, list[str]]:
    """Reads an `--instructions FILE` (target name → list of instructions) and validates it."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a JSON object mapping target names to instruction lists")
    for name, items in data.items():
        if name not in TARGET_NAMES:
            raise ValueError(f"{path}: unknown target {name!r}; known: {', '.join(TARGET_NAMES)}")
        if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
            raise ValueError(f"{path}: {name!r} must map to a non-empty list of strings")
    return data


def unseen_instructions() -> dict[str, list[str]]:
    return load_instructions(resources.data_path(resources.UNSEEN_PARAPHRASES_FILE))


def sample_instruction(rng: np.random.Generator, table: dict[str, list[str]]) -> tuple[str, str]:
    """Draws a target among those in `table`, then one of its instructions."""
    names = sorted(table)
    target = names[int(rng.integers(len(names)))]
    options = table[target]
    return target, options[int(rng.integers(len(options)))]


def resolve_target(text: str) -> str | None:
    """The target an instruction refers to, by colour and shape words; None when unclear.

    A target scores 2 for a colour word and 1 for a shape word; a unique best score wins.
    """
    words = set(re.findall(r"[a-z]+", text.lower()))
    scores = {
        t: 2 * bool(words & set(_COLOUR_WORDS[t])) + bool(words & set(_SHAPE_WORDS[t])) for t in TARGET_NAMES
    }
    best = max(scores.values())
    winners = [t for t, s in scores.items() if s == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


def apply_task_command(world: World, robot_id: str, payload: str | bytes) -> TaskCommand:
    """Parses one task_command payload and sets the robot's task: an idle word (`standby`, `Stop.`,
    `halt`) clears it, as it idles the policy; any other instruction becomes the task text with the
    target it names (None when unclear). Raises TaskRejectedError, the world untouched, for a payload
    the grammar refuses or a JSON task addressed to another robot."""
    command = parse_task_command(payload)
    if command.robot_id and command.robot_id != robot_id:
        raise TaskRejectedError(f"task for robot {command.robot_id!r} arrived on {robot_id}'s task_command")
    if command.idle:
        world.set_target(robot_id, None, None)
    else:
        world.set_target(robot_id, resolve_target(command.description), command.description)
    return command
