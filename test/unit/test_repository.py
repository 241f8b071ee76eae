"""Repository rules that keep the architecture honest (STYLE.md), for the whole tree in one place.

- Layering: outside `src/<pkg>/ros/`, no module of vla_*/src imports ROS (rospy, rosgraph,
  roslaunch, ..., or a message package `*_msgs`/`*_srvs`, diagnostic_updater, cv_bridge, tf2_ros);
  only vla_msgs's own core may import its generated `vla_msgs.msg` (plain genpy classes).
- Dependencies point down: package.xml declares exactly STYLE.md's table, every `import vla_x`
  of a package is declared, no sub-package depends on or reads the root package (its config/).
- Every .test file is registered with add_rostest; nodes/* are two-line shims; launch files load.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import roslaunch.config
import roslaunch.xmlloader
import roslib.packages
import rospkg

ROOT = Path(__file__).resolve().parents[2]
ROOT_PACKAGE = "vla_deployment"
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch"))
SKIP_DIRS = {".ws", ".venv", ".git", "__pycache__"}

# STYLE.md, "Between the packages": what each package may depend on among ours.
OURS_DEPENDS = {
    "vla_msgs": set(),
    "vla_monitoring": {"vla_msgs"},
    "vla_edge": {"vla_msgs", "vla_monitoring"},
    "vla_safety": {"vla_msgs", "vla_monitoring"},
    "vla_sim": {"vla_msgs", "vla_monitoring", "vla_edge"},
    "vla_fleet": {"vla_msgs", "vla_monitoring"},
}
ROS_MODULES = {"rospy", "rosgraph", "roslaunch", "rostest", "rosunit", "roslib", "rosbag", "rosnode", "rosparam",
               "rosservice", "rostopic", "rosmsg", "genpy", "message_filters", "actionlib", "tf", "tf2_ros",
               "diagnostic_updater", "cv_bridge"}
MESSAGE_PACKAGE = re.compile(r"^\w+_(msgs|srvs)$")
DEPEND_TAGS = ("depend", "build_depend", "build_export_depend", "exec_depend", "run_depend", "test_depend")


def files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if not SKIP_DIRS & set(p.relative_to(root).parts))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every absolute import; `from a import b` gives a.b as well as a."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def is_ros_import(module: str, importer_package: str) -> bool:
    top, _, rest = module.partition(".")
    if top == "vla_msgs":
        # vla_msgs's Python core is ROS-free; its generated messages are ROS, except to vla_msgs itself
        return rest.split(".")[0] in ("msg", "srv") and importer_package != "vla_msgs"
    return top in ROS_MODULES or bool(MESSAGE_PACKAGE.match(top))


def layering_violations(root: Path) -> list[str]:
    """Core modules (vla_*/src/<pkg>/, not under ros/) that import ROS."""
    found = []
    for path in files(root, "vla_*/src/*/**/*.py"):
        parts = path.relative_to(root).parts  # vla_x, src, <pkg>, ..., file.py
        if "ros" in parts[3:-1]:
            continue
        for line, module in imported_modules(path):
            if is_ros_import(module, parts[2]):
                found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return sorted(set(found))


def package_depends(package_xml: Path) -> dict[str, set[str]]:
    """Dependency tag -> names, from one package.xml."""
    tree = ET.parse(package_xml).getroot()
    return {tag: {e.text.strip() for e in tree.findall(tag) if e.text} for tag in DEPEND_TAGS}


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n.startswith("vla_")}


def sub_packages() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("vla_*/package.xml"))


# ---- layering ----------------------------------------------------------------------------------

def test_core_modules_do_not_import_ros():
    assert layering_violations(ROOT) == []


@pytest.mark.parametrize(("code", "where", "caught"), [
    ("from sensor_msgs.msg import PointCloud2\n", "vla_fake/src/vla_fake/core.py", True),
    ("import rospy\n", "vla_fake/src/vla_fake/sub/deep.py", True),
    ("def f():\n    import rosgraph.masterapi\n", "vla_fake/src/vla_fake/core.py", True),
    ("from std_srvs.srv import Trigger\n", "vla_fake/src/vla_fake/core.py", True),
    ("import diagnostic_updater\n", "vla_fake/src/vla_fake/core.py", True),
    ("from vla_msgs.msg import Action\n", "vla_fake/src/vla_fake/core.py", True),
    ("from vla_msgs import msg\n", "vla_fake/src/vla_fake/core.py", True),
    ("from vla_msgs.msg import Alert\n", "vla_msgs/src/vla_msgs/states.py", False),
    ("from vla_msgs import names\nfrom vla_msgs.tasks import parse_task_command\n", "vla_fake/src/vla_fake/core.py",
     False),
    ("import rospy\nfrom sensor_msgs.msg import Image\n", "vla_fake/src/vla_fake/ros/node.py", False),
    ("import numpy\nimport json\n", "vla_fake/src/vla_fake/core.py", False),
])
def test_layering_check_on_a_fake_tree(tmp_path, code, where, caught):
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    path.write_text(code)
    assert bool(layering_violations(tmp_path)) is caught


# ---- dependencies --------------------------------------------------------------------------------

@pytest.mark.parametrize("package", sub_packages())
def test_package_depends_on_ours_as_style_says(package):
    depends = package_depends(ROOT / package / "package.xml")
    declared = set().union(*map(ours, depends.values()))
    assert ROOT_PACKAGE not in set().union(*depends.values()), f"{package} depends on the root package"
    assert package in OURS_DEPENDS, f"{package} is not in STYLE.md's table"
    assert declared == OURS_DEPENDS[package], f"{package}/package.xml declares {sorted(declared)}"


def test_root_package_depends_on_every_package():
    depends = package_depends(ROOT / "package.xml")
    assert ours(depends["exec_depend"] | depends["depend"]) == set(sub_packages())


@pytest.mark.parametrize("package", sub_packages())
def test_every_imported_package_is_declared(package):
    declared = set().union(*package_depends(ROOT / package / "package.xml").values())
    undeclared = []
    for path in files(ROOT / package, "*.py") + files(ROOT / package, "nodes/*"):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top.startswith("vla_") and top not in (package, *declared) and top in sub_packages():
                undeclared.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    assert sorted(set(undeclared)) == []


ROOT_REFERENCES = re.compile(r"\$\(find vla_deployment\)|pkg=\"vla_deployment\"|get_path\(\s*['\"]vla_deployment"
                             r"|roslaunch\b.*\bvla_deployment\b")


def reaches_outside(path: Path, package_dir: Path) -> list[str]:
    """`Path(__file__)...parents[N]` that climbs out of the package: a file of the root or a sibling."""
    found = []
    for match in re.finditer(r"parents\[(\d+)\]", path.read_text()):
        level = int(match.group(1))
        target = path.resolve().parents[level] if level < len(path.resolve().parents) else Path("/")
        if package_dir.resolve() not in (target, *target.parents):
            line = path.read_text()[:match.start()].count("\n") + 1
            found.append(f"{path.relative_to(ROOT)}:{line} reaches {target}")
    return found


@pytest.mark.parametrize("package", sub_packages())
def test_sub_package_never_reads_the_root_package(package):
    """A sub-package's defaults live with it: its tests load neither $(find vla_deployment)/config
    nor anything of the root folder."""
    found = []
    for path in files(ROOT / package, "*"):
        # prose may tell the user to `roslaunch vla_deployment ...`; package.xml names the suite
        if path.is_dir() or path.name == "package.xml" or path.suffix in (".md", ".pt", ".onnx", ".png"):
            continue
        text = path.read_text(errors="replace")
        found += [f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1} {m.group(0)}"
                  for m in ROOT_REFERENCES.finditer(text)]
        if path.suffix == ".py":
            found += reaches_outside(path, ROOT / package)
    assert found == []


# ---- registration, shims, launch files -------------------------------------------------------------

def test_every_rostest_is_registered():
    """A .test file that no CMakeLists.txt registers would never run in catkin's own test target."""
    for test_file in files(ROOT, "test/*.test") + files(ROOT, "vla_*/test/*.test"):
        cmake = (test_file.parent.parent / "CMakeLists.txt").read_text()
        registered = re.findall(r"add_rostest\(\s*(\S+?)[\s)]", cmake)
        assert f"test/{test_file.name}" in registered, f"{test_file} is not added with add_rostest()"


def test_node_executables_are_two_line_shims():
    nodes = sorted(ROOT.glob("vla_*/nodes/*"))
    assert nodes
    for node in nodes:
        package = node.parent.parent.name
        assert node.stat().st_mode & 0o111, f"{node} is not executable"
        code = [line.strip() for line in node.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert code == [f"from {package}.ros.{node.name} import main", "main()"], \
            f"{node} must be `from {package}.ros.{node.name} import main` and `main()`; logic goes to src/"


def load_launch(launch_file: Path) -> roslaunch.config.ROSLaunchConfig:
    config = roslaunch.config.ROSLaunchConfig()
    roslaunch.xmlloader.XmlLoader().load(str(launch_file), config, verbose=False)
    return config


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_loads_and_nodes_exist(launch_file):
    rospack = rospkg.RosPack()
    for node in load_launch(launch_file).nodes:
        # The way roslaunch itself resolves pkg/type: the package's folders and catkin's libexec dirs.
        found = roslib.packages.find_node(node.package, node.type, rospack=rospack)
        assert found, f"{launch_file.name}: node {node.package}/{node.type} has no executable"


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_sim_time_exactly_when_the_simulator_runs(launch_file):
    """The simulator's /clock drives every node it runs with; a robot's own stack stays on wall time."""
    config = load_launch(launch_file)
    simulating = any((n.package, n.type) == ("vla_sim", "sim_node") for n in config.nodes)
    sim_time = config.params.get("/use_sim_time")
    if simulating:
        assert sim_time is not None and sim_time.value is True, f"{launch_file.name} runs sim_node without sim time"
    else:
        assert sim_time is None, f"{launch_file.name} sets /use_sim_time: leave it to the caller"
