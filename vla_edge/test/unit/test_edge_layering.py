"""The core never imports rospy: only vla_edge.ros may."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "vla_edge"


def test_no_rospy_outside_ros():
    offenders = []
    for path in SRC.rglob("*.py"):
        if "ros" in path.relative_to(SRC).parts[:-1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("rospy", "cv_bridge", "diagnostic_updater") for n in names):
                offenders.append(str(path))
    assert offenders == []
