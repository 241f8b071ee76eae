"""The one task_command grammar: idle words, limits, JSON payloads, control characters, encodings."""

import json

import pytest

from vla_msgs.tasks import (
    IDLE_WORDS,
    MAX_TASK_BYTES,
    TaskCommand,
    TaskRejectedError,
    is_idle,
    normalise,
    parse_task_command,
    task_command_json,
)


def _spellings(word):
    for cased in (word, word.upper(), word.capitalize()):
        for suffix in ("", ".", "!", "!!", " .", "!."):
            yield f"{cased}{suffix}"
            yield f"  {cased}{suffix}\n"


@pytest.mark.parametrize("text", [s for w in sorted(IDLE_WORDS) for s in _spellings(w)])
def test_every_idle_word_idles_whatever_its_case_and_trailing_mark(text):
    assert is_idle(text)
    assert parse_task_command(text) == TaskCommand(description="", task_id="", idle=True)
    assert parse_task_command(json.dumps({"description": text, "id": "t1"})) == TaskCommand("", "t1", True)


def test_the_idle_words_are_the_four_of_the_interface():
    assert {"standby", "stop", "halt", "idle"} == IDLE_WORDS


@pytest.mark.parametrize("text", ["stop at the red cube", "stop?", "don't stop", "standby mode", "halting",
                                  "idle the robot", ".stop", "go to the red cube"])
def test_instructions_that_merely_hold_an_idle_word_are_tasks(text):
    task = parse_task_command(text)
    assert not task.idle and task.description == text


def test_whitespace_folds_to_one_space():
    assert normalise("  go\tto \n the   red cube ") == "go to the red cube"
    assert parse_task_command(" go\tto \n the   red cube ").description == "go to the red cube"


def test_length_limit_in_utf8_bytes_after_folding():
    assert MAX_TASK_BYTES == 256
    assert parse_task_command("a" * 256).description == "a" * 256
    with pytest.raises(TaskRejectedError, match="257 bytes is longer than 256"):
        parse_task_command("a" * 257)
    assert parse_task_command("é" * 128).description == "é" * 128  # 256 bytes
    with pytest.raises(TaskRejectedError, match="258 bytes is longer than 256"):
        parse_task_command("é" * 129)
    assert parse_task_command("a" + " " * 1000 + "b").description == "a b"  # folded first
    with pytest.raises(TaskRejectedError, match="longer than 256"):
        parse_task_command(json.dumps({"description": "a" * 257}))


def test_huge_payloads_are_refused_before_parsing():
    with pytest.raises(TaskRejectedError, match="task payload of 5000 bytes is longer than 4096"):
        parse_task_command("{" + "x" * 4999)
    with pytest.raises(TaskRejectedError, match="payload of"):
        parse_task_command(b" " * 5000)


def test_json_payloads():
    assert parse_task_command('{"description": "go to the blue ball", "id": 7}') == \
        TaskCommand("go to the blue ball", "7", False)
    assert parse_task_command('{"description": "go", "id": "a-1", "robot_id": "robot_2"}') == \
        TaskCommand("go", "a-1", False, "robot_2")
    assert parse_task_command('{"description": " go  there ", "extra": [1]}').description == "go there"
    assert parse_task_command("[1, 2]").description == "[1, 2]"  # only an object is JSON; the rest is text


@pytest.mark.parametrize("payload,says", [
    ("{not json", "task JSON malformed"),
    ('{"description": 5}', "needs a string 'description'"),
    ('{"id": 5}', "needs a string 'description'"),
    ('{"description": "go", "id": true}', "'id' must be a string or an integer"),
    ('{"description": "go", "id": 1.5}', "'id' must be a string or an integer"),
    ('{"description": "go", "id": NaN}', "task JSON malformed"),
    ('{"description": "go", "robot_id": 2}', "'robot_id' must be a string"),
    ('{"description": "   "}', "task is empty"),
    ("", "task is empty"),
    (" \t\n ", "task is empty"),
])
def test_bad_json_and_empty_payloads_say_why(payload, says):
    with pytest.raises(TaskRejectedError, match=says):
        parse_task_command(payload)


@pytest.mark.parametrize("text", ["go\x00", "\x1b[31mgo", "go\x7f", "go\x01 there", "\x08"])
def test_control_characters_are_refused(text):
    with pytest.raises(TaskRejectedError, match="control characters"):
        parse_task_command(text)
    with pytest.raises(TaskRejectedError, match="control characters"):
        parse_task_command(json.dumps({"description": text}))


@pytest.mark.parametrize("payload", [b"go to \xff\xfe", b"\xc3", "go \udcff", "go \ufffd there"])
def test_non_utf8_is_refused(payload):
    with pytest.raises(TaskRejectedError, match="not UTF-8"):
        parse_task_command(payload)


def test_utf8_bytes_are_accepted():
    assert parse_task_command("geh zum roten Würfel".encode()).description == "geh zum roten Würfel"


def test_task_command_json_is_what_every_reader_accepts():
    text = task_command_json("go to the red cube", task_id="42", robot_id="robot_1")
    assert json.loads(text) == {"description": "go to the red cube", "id": "42", "robot_id": "robot_1"}
    assert parse_task_command(text) == TaskCommand("go to the red cube", "42", False, "robot_1")
    assert json.loads(task_command_json("stop")) == {"description": "stop"}
    with pytest.raises(TaskRejectedError):
        task_command_json("a" * 300)
