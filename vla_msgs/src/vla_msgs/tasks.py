"""The `task_command` grammar, once for every reader (inference node, simulator, health, agents).

A payload is plain instruction text (`go to the red cube`) or a JSON object with a string
`description` and optional `id` (string or integer) and `robot_id`. Whitespace runs fold to one
space. An instruction whose words, case and trailing `.`/`!` aside, are one of IDLE_WORDS idles
the robot (`Stop.`, `HALT`, ` standby `). The instruction is at most MAX_TASK_BYTES of UTF-8.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

IDLE_WORDS: frozenset[str] = frozenset({"standby", "stop", "halt", "idle"})
MAX_TASK_BYTES = 256
# A JSON payload carries the instruction plus a few short fields; anything far larger is refused
# before it is parsed, so a hostile message costs nothing.
_MAX_PAYLOAD_BYTES = 16 * MAX_TASK_BYTES
_SPACES = re.compile(r"\s+")


class TaskRejectedError(ValueError):
    """A task_command payload that is refused; the message says why."""


@dataclass(frozen=True)
class TaskCommand:
    description: str     # the normalised instruction; empty when idle
    task_id: str         # the sender's id; empty when none was given
    idle: bool           # an idle word: the policy publishes nothing, the simulator clears the target
    robot_id: str = ""   # the robot a JSON payload names; empty when none


def normalise(text: str) -> str:
    """Strips and folds every whitespace run to one space."""
    return _SPACES.sub(" ", text).strip()


def is_idle(text: str) -> bool:
    """True for the words that idle a robot, whatever their case and trailing `.`/`!`."""
    return normalise(text).lower().rstrip(".! ") in IDLE_WORDS


def _decode(data: str | bytes) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TaskRejectedError(f"task is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        data.encode("utf-8")  # lone surrogates, left by a lenient decoder, mean the bytes were not UTF-8
    except UnicodeEncodeError as exc:
        raise TaskRejectedError("task is not UTF-8") from exc
    if "\ufffd" in data:
        raise TaskRejectedError("task is not UTF-8 (replacement characters)")
    return data


def _payload_size(data: str | bytes) -> int:
    return len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))


def parse_task_command(data: str | bytes) -> TaskCommand:
    """Turns one task_command payload into a TaskCommand; raises TaskRejectedError saying why."""
    if _payload_size(data) > _MAX_PAYLOAD_BYTES:
        raise TaskRejectedError(f"task payload of {_payload_size(data)} bytes is longer than {_MAX_PAYLOAD_BYTES}")
    text = _decode(data).strip()
    task_id = robot_id = ""
    if text.startswith("{"):
        try:
            doc = json.loads(text, parse_constant=_no_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            raise TaskRejectedError(f"task JSON malformed: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("description"), str):
            raise TaskRejectedError("task JSON needs a string 'description'")
        raw_id = doc.get("id", "")
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
            raise TaskRejectedError("task JSON 'id' must be a string or an integer")
        raw_robot = doc.get("robot_id", "")
        if not isinstance(raw_robot, str):
            raise TaskRejectedError("task JSON 'robot_id' must be a string")
        text, task_id, robot_id = doc["description"], str(raw_id), raw_robot
    text = normalise(text)
    if not text:
        raise TaskRejectedError("task is empty")
    size = len(text.encode("utf-8"))
    if size > MAX_TASK_BYTES:
        raise TaskRejectedError(f"instruction of {size} bytes is longer than {MAX_TASK_BYTES}")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise TaskRejectedError("task holds control characters")
    if is_idle(text):
        return TaskCommand(description="", task_id=task_id, idle=True, robot_id=robot_id)
    return TaskCommand(description=text, task_id=task_id, idle=False, robot_id=robot_id)


def task_command_json(description: str, task_id: str = "", robot_id: str = "") -> str:
    """The JSON form a robot agent publishes on task_command."""
    doc = {"description": description}
    if task_id:
        doc["id"] = task_id
    if robot_id:
        doc["robot_id"] = robot_id
    out = json.dumps(doc)
    parse_task_command(out)  # what we send must be what every reader accepts
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
