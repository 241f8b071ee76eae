"""The README's newcomer section names exactly what `make setup` installs: ros-deps.txt and requirements.txt."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def listed(name: str) -> list[str]:
    """The entries of ros-deps.txt or requirements.txt, in file order."""
    lines = (line.split("#", 1)[0].split() for line in (ROOT / name).read_text().splitlines())
    return [words[0] for words in lines if words]


def readme_block(name: str) -> list[str]:
    """The backquoted names on the lines after the marker `<!-- name -->` in the README."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(f"  <!-- {name} -->") + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  `"):
            break
        block.append(line)
    return re.findall(r"`([^`]+)`", " ".join(block))


def formatted(entries: list[str]) -> str:
    """The README lines for a list (what to paste after its marker)."""
    return textwrap.fill(", ".join(f"`{e}`" for e in entries), width=100, initial_indent="  ",
                         subsequent_indent="  ", break_on_hyphens=False)


@pytest.mark.parametrize("name", ["ros-deps.txt", "requirements.txt"])
def test_readme_names_exactly_what_setup_installs(name):
    assert readme_block(name) == listed(name), (
        f"README.md's list after <!-- {name} --> is out of date; it should read:\n{formatted(listed(name))}")
