"""tools/check_deps.py on small fake trees: each kind of undeclared import is found, declared ones pass.

The fake trees import real modules of this machine (rospkg and yaml from Debian, pytest from pip),
so the test shows that being installed here is not enough: only the lists count.
"""

import importlib.metadata
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import check_deps

PYTEST_PIN = f"pytest=={importlib.metadata.version('pytest')}"


def tree(tmp_path: Path, files: dict[str, str], debs: str = "", pins: str = "") -> list[str]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if text.startswith("#!"):
            path.chmod(0o755)
    (tmp_path / "ros-deps.txt").write_text(debs)
    (tmp_path / "requirements.txt").write_text(pins)
    return check_deps.check(tmp_path, tmp_path / "ros-deps.txt", tmp_path / "requirements.txt")


def test_debian_module_must_be_listed_not_merely_installed(tmp_path):
    files = {"tools/a.py": "import rospkg\nfrom yaml import safe_load\n"}
    findings = tree(tmp_path, files, debs="python3-rospkg\n")
    assert findings == ["tools/a.py:2: 'yaml' comes from the Debian package python3-yaml, "
                        "which ros-deps.txt does not list"]
    assert tree(tmp_path, files, debs="python3-rospkg\npython3-yaml  # comment\n") == []


def test_pip_module_must_be_pinned(tmp_path):
    files = {"test/unit/test_x.py": "import pytest\n"}
    findings = tree(tmp_path, files)
    assert len(findings) == 1 and "'pytest' comes from pip's pytest" in findings[0], findings
    assert tree(tmp_path, files, pins=PYTEST_PIN + "\n") == []


def test_pin_at_another_version_than_installed(tmp_path):
    findings = tree(tmp_path, {"a.py": "import pytest\n"}, pins="pytest==0.0.1\n")
    assert len(findings) == 1 and "pytest==0.0.1 is pinned but" in findings[0], findings


def test_unused_pin(tmp_path):
    findings = tree(tmp_path, {"a.py": "import json\n"}, pins="requests==2.0.0\n")
    assert findings == ["requirements.txt: requests is pinned but nothing imports it, needs it or runs it"]


def test_pin_of_a_command_run_by_make_is_used(tmp_path):
    (tmp_path / "Makefile").write_text("lint:\n\truff check .\n")
    ruff = f"ruff=={importlib.metadata.version('ruff')}\n"
    assert tree(tmp_path, {"a.py": "import json\n"}, pins=ruff) == []
    (tmp_path / "Makefile").write_text("lint:\n\techo\n")
    assert len(tree(tmp_path, {"a.py": "import json\n"}, pins=ruff)) == 1


def test_requirement_of_an_imported_pin_is_used(tmp_path):
    # pytest requires pluggy: pinning it too is a lock, not an unused pin
    pins = f"{PYTEST_PIN}\npluggy=={importlib.metadata.version('pluggy')}\n"
    assert tree(tmp_path, {"a.py": "import pytest\n"}, pins=pins) == []


@pytest.mark.parametrize(("code", "optional"), [
    ("import no_such_module_xyz\n", False),
    ("try:\n    import no_such_module_xyz\nexcept ImportError:\n    pass\n", True),
    ("try:\n    from no_such_module_xyz import a\nexcept (OSError, ModuleNotFoundError):\n    a = None\n", True),
    ("try:\n    import no_such_module_xyz\nexcept ValueError:\n    pass\n", False),
    ("try:\n    import json\nexcept ImportError:\n    import no_such_module_xyz\n", False),
    ("def f():\n    import no_such_module_xyz\n", False),
])
def test_unimportable_module_fails_unless_guarded(tmp_path, code, optional):
    findings = tree(tmp_path, {"a.py": code})
    if optional:
        assert findings == []
    else:
        assert len(findings) == 1 and "'no_such_module_xyz' is not importable" in findings[0], findings


def test_project_modules_and_stdlib_pass(tmp_path):
    files = {
        "vla_fake/src/vla_fake/__init__.py": "",
        "vla_fake/src/vla_fake/core.py": "import json\nimport os.path\nfrom . import other\nfrom vla_fake import x\n",
        "test/helper_mod.py": "import sys\n",
        "tools/some_tool.py": "import os\n",
        "test/unit/test_y.py": ("from __future__ import annotations\nimport helper_mod\nimport some_tool\n"
                                "import vla_fake.core\n"),
    }
    assert tree(tmp_path, files) == []


def test_python_executables_without_suffix_are_read(tmp_path):
    files = {"vla_fake/nodes/fake_node": "#!/usr/bin/env python3\nimport no_such_module_xyz\n",
             "vla_fake/nodes/notes": "import no_such_module_xyz\n"}  # not executable, no shebang: not Python
    findings = tree(tmp_path, files)
    assert len(findings) == 1 and findings[0].startswith("vla_fake/nodes/fake_node:2:"), findings


def test_workspace_venv_and_git_are_skipped(tmp_path):
    files = {f"{d}/a.py": "import no_such_module_xyz\n" for d in (".ws/src", ".venv/lib", ".git/hooks")}
    assert tree(tmp_path, files) == []


def test_main_exits_nonzero_on_a_finding(tmp_path, capsys):
    tree(tmp_path, {"a.py": "import no_such_module_xyz\n"})
    assert check_deps.main(["--root", str(tmp_path)]) == 1
    assert "no_such_module_xyz" in capsys.readouterr().out
    (tmp_path / "a.py").write_text("import json\n")
    assert check_deps.main(["--root", str(tmp_path)]) == 0
