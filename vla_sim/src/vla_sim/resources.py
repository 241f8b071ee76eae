"""Where vla_sim's shipped files live: the package's share directory (models/, data/), found with rospkg,
so the same code works from a source checkout, a devel space and an install space.
"""

from __future__ import annotations

from pathlib import Path

import rospkg

PACKAGE = "vla_sim"
MODEL_FILE = "reference_policy.pt"
UNSEEN_PARAPHRASES_FILE = "paraphrases_unseen.json"


def share_dir() -> Path:
    """The package directory (`$(find vla_sim)`); FileNotFoundError when ROS_PACKAGE_PATH lacks it."""
    try:
        return Path(rospkg.RosPack().get_path(PACKAGE))
    except rospkg.ResourceNotFound as exc:
        raise FileNotFoundError(f"package {PACKAGE} is not on ROS_PACKAGE_PATH: source tools/env.sh "
                                "(or the install space's setup.bash) first") from exc


def model_path() -> Path:
    """The shipped reference policy (its sidecar is the same path with .json)."""
    return share_dir() / "models" / MODEL_FILE


def data_path(name: str) -> Path:
    return share_dir() / "data" / name
