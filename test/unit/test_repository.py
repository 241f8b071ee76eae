"""Repository rules that keep the architecture honest (STYLE.md)."""

import re
import subprocess
from pathlib import Path

import pytest
import roslaunch.config
import roslaunch.xmlloader
import rospkg

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch"))
ROSPY_IMPORT = re.compile(r"^\s*(import rospy|from rospy\b)", re.MULTILINE)


def test_rospy_only_in_ros_modules():
    offenders = [
        str(path.relative_to(ROOT))
        for path in ROOT.glob("vla_*/src/**/*.py")
        if "ros" not in path.relative_to(ROOT).parts[3:-1] and ROSPY_IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_node_executables_are_executable_shims():
    for node in ROOT.glob("vla_*/nodes/*"):
        assert node.stat().st_mode & 0o111, f"{node} is not executable"
        code = [line for line in node.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert len(code) <= 2, f"{node} holds logic; move it to src/<pkg>/ros/"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_loads_and_nodes_exist(launch_file):
    config = roslaunch.config.ROSLaunchConfig()
    roslaunch.xmlloader.XmlLoader().load(str(launch_file), config, verbose=False)
    rospack = rospkg.RosPack()
    for node in config.nodes:
        path = Path(rospack.get_path(node.package)) / "nodes" / node.type
        assert path.exists(), f"{launch_file.name}: node {node.package}/{node.type} has no executable"


def test_every_rostest_is_registered():
    """A .test file that no CMakeLists.txt registers would never run in catkin's own test target."""
    for test_file in ROOT.glob("**/test/*.test"):
        if ".ws" in test_file.parts:
            continue
        cmake = (test_file.parent.parent / "CMakeLists.txt").read_text()
        assert f"test/{test_file.name}" in cmake, f"{test_file} is not added with add_rostest()"


def test_ros_deps_are_installed():
    wanted = [line.split()[0] for line in (ROOT / "ros-deps.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    status = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *wanted],
                            capture_output=True, text=True).stdout
    installed = {line.split()[0] for line in status.splitlines() if line.endswith("install ok installed")}
    assert set(wanted) <= installed
