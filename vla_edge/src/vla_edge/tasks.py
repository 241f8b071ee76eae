"""`task_command` parsing: plain text or JSON {description, id}; `standby` and `stop` idle the policy."""

from __future__ import annotations

import json
from dataclasses import dataclass

IDLE_WORDS = ("standby", "stop")


class TaskRejectedError(ValueError):
    """A task string that is refused (too long, not UTF-8, empty, malformed JSON)."""


@dataclass(frozen=True)
class TaskCommand:
    description: str     # the instruction; empty when idle
    task_id: str         # the sender's id, empty when none was given
    idle: bool           # standby/stop: the policy publishes nothing


def _text(data: str | bytes) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TaskRejectedError(f"task is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        data.encode("utf-8")  # surrogates left by a lenient decoder mean the bytes were not UTF-8
    except UnicodeEncodeError as exc:
        raise TaskRejectedError("task is not UTF-8") from exc
    if "\ufffd" in data:
        raise TaskRejectedError("task is not UTF-8 (replacement characters)")
    return data


def parse_task_command(data: str | bytes, max_length: int = 256) -> TaskCommand:
    """Turns one task_command payload into a TaskCommand; raises TaskRejectedError saying why."""
    raw_len = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if raw_len > max_length:
        raise TaskRejectedError(f"task of {raw_len} bytes is longer than {max_length}")
    text = _text(data).strip()
    task_id = ""
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskRejectedError(f"task JSON malformed: {exc.msg}") from exc
        description = doc.get("description") if isinstance(doc, dict) else None
        if not isinstance(description, str):
            raise TaskRejectedError("task JSON needs a string 'description'")
        raw_id = doc.get("id", "")
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
            raise TaskRejectedError("task JSON 'id' must be a string or an integer")
        text, task_id = description.strip(), str(raw_id)
    if not text:
        raise TaskRejectedError("task is empty")
    if any(ord(c) < 32 for c in text):
        raise TaskRejectedError("task holds control characters")
    if text.lower() in IDLE_WORDS:
        return TaskCommand(description="", task_id=task_id, idle=True)
    return TaskCommand(description=text, task_id=task_id, idle=False)
