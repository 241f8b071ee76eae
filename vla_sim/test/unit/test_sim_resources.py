"""Shipped files are found through the ROS package path, so an install space works as a checkout does."""

import json
import shutil
from pathlib import Path

import pytest

from vla_sim import instructions, resources

SRC = Path(__file__).resolve().parents[2] / "src" / "vla_sim"


def test_files_come_from_the_package_share_on_the_ros_package_path(tmp_path, monkeypatch):
    share = tmp_path / "share" / "vla_sim"  # the layout `catkin_make install` writes
    (share / "data").mkdir(parents=True)
    (share / "models").mkdir()
    shutil.copy(resources.share_dir() / "package.xml", share / "package.xml")
    (share / "data" / resources.UNSEEN_PARAPHRASES_FILE).write_text(json.dumps({"red cube": ["fetch the ruby"]}))
    monkeypatch.setenv("ROS_PACKAGE_PATH", str(tmp_path / "share"))
    assert resources.model_path() == share / "models" / resources.MODEL_FILE
    assert instructions.unseen_instructions() == {"red cube": ["fetch the ruby"]}


def test_a_missing_package_says_what_to_source(tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_PACKAGE_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"source tools/env\.sh"):
        resources.model_path()


def test_no_module_builds_data_paths_from_its_own_location():
    offenders = [p.name for p in SRC.rglob("*.py") if "__file__" in p.read_text()]
    assert offenders == []
