#!/usr/bin/env python3
"""The dependency check of `make lint`: every module the project's Python imports is declared.

Each module imported by a Python file of the repository (every `*.py` and every executable with a
python shebang, outside .ws, .venv and .git) must resolve to one of:
- the project itself: a `vla_*` package, or any module or package of the tree (test helpers, tools);
- the standard library (built in, or a file of the interpreter's own Debian packages);
- a Debian package that `ros-deps.txt` names: `dpkg -S` on the module's file gives the package,
  which must be in the list; being installed on this machine is not enough;
- a pip distribution that `requirements.txt` pins (module -> distribution through
  importlib.metadata.packages_distributions), installed at the pinned version.
A module that is not importable at all is a finding too, unless its import sits inside a
`try` whose handler catches ImportError (an optional import). In the other direction, a pin that
nothing imports, that no imported pin requires and whose command no Makefile or script runs, is
a finding. One line per finding; the exit status is the number of findings (capped at 1).
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".ws", ".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "devel"}
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}
# Debian packages of the interpreter itself: what `python3` brings, never listed separately.
INTERPRETER_PACKAGE = re.compile(r"^(lib)?python3(\.\d+)?(-minimal|-stdlib)?$")
# Files whose command lines count as using a pinned tool (ruff has no import, only a command).
COMMAND_FILES = ("Makefile", "tools/*.sh", ".ci/*")


@dataclass(frozen=True)
class Import:
    module: str     # the top-level name: `sensor_msgs` for `from sensor_msgs.msg import Image`
    path: Path
    line: int
    guarded: bool   # inside `try: ... except ImportError`: optional, may be absent


def normalise(dist: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def is_python_file(path: Path) -> bool:
    if path.suffix == ".py":
        return True
    if path.suffix or not os.access(path, os.X_OK):
        return False
    try:
        with path.open("rb") as fh:
            first = fh.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def python_files(root: Path) -> Iterator[Path]:
    """Every Python file under `root`, not following links (.ws/src links back to the root)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not Path(folder, d).is_symlink())
        for name in sorted(files):
            path = Path(folder, name)
            if not path.is_symlink() and is_python_file(path):
                yield path


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in IMPORT_ERRORS for k in kinds)


def imports_of(path: Path) -> list[Import]:
    """The absolute imports of one file, each with whether a `try/except ImportError` guards it."""
    tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(a.name.split(".")[0], path, node.lineno, guarded) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(Import(node.module.split(".")[0], path, node.lineno, guarded))
        if isinstance(node, ast.Try):
            body_guarded = guarded or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, body_guarded)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return found


def project_modules(root: Path, files: list[Path]) -> set[str]:
    """Names the project itself provides: the catkin packages' Python packages (vla_*/src/<name>/)
    and every module or package of the tree (test helpers and tools, imported from beside them or
    through a sys.path entry of their own)."""
    names = {p.parent.name for p in root.glob("*/src/*/__init__.py")}
    names |= {p.stem for p in files if p.suffix == ".py" and p.name != "__init__.py"}
    names |= {p.parent.name for p in files if p.name == "__init__.py"}
    return names


def read_ros_deps(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].split() for line in path.read_text().splitlines())
    return {words[0] for words in lines if words}


def read_requirements(path: Path) -> dict[str, str]:
    """Pinned distributions: normalised name -> version ('' when not pinned with ==)."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:==\s*([^\s;]+))?", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2) or ""
    return pins


def module_files(name: str) -> list[Path] | None:
    """Where `name` would be imported from ([] for built-in or frozen modules); None if nowhere."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin in (None, "namespace"):
        return [Path(p) for p in spec.submodule_search_locations or []]
    if spec.origin in ("built-in", "frozen"):
        return []
    return [Path(spec.origin)]


def dpkg_owners(paths: Iterable[Path]) -> dict[Path, str]:
    """The Debian package owning each path (one `dpkg -S` call); unowned paths are left out."""
    # dpkg knows each file by the path its package installed, so ask for the link-free path too.
    asked = {p: p.resolve() for p in paths}
    queries = sorted({str(q) for pair in asked.items() for q in pair})
    if not queries:
        return {}
    out = subprocess.run(["dpkg-query", "-S", *queries], capture_output=True, text=True).stdout
    by_path: dict[str, str] = {}
    for line in out.splitlines():
        if ": " not in line or line.startswith("diversion"):
            continue
        packages, path = line.split(": ", 1)
        # A directory shared by several packages lists them all; a module's own file has one owner.
        by_path[path.strip()] = packages.split(",")[0].split(":")[0].strip()
    owners = {p: by_path.get(str(p)) or by_path.get(str(r)) for p, r in asked.items()}
    return {p: owner for p, owner in owners.items() if owner}


def _requirement_names(dist: importlib.metadata.Distribution) -> set[str]:
    names = set()
    for req in dist.requires or []:
        if re.search(r"\bextra\s*==", req):  # optional extras are not installed with the distribution
            continue
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if match:
            names.add(normalise(match.group(1)))
    return names


def _commands_used(root: Path) -> set[str]:
    words: set[str] = set()
    for pattern in COMMAND_FILES:
        for path in root.glob(pattern):
            if path.is_file():
                words |= set(re.findall(r"[A-Za-z0-9_.-]+", path.read_text(errors="replace")))
    return words


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _installed() -> dict[str, importlib.metadata.Distribution]:
    found: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalise(name), dist)  # first on sys.path wins, as for imports
    return found


def _pin_matches(pinned: str, installed: str) -> bool:
    # PEP 440: a pin without a local label (2.13.0) matches a local build (2.13.0+cpu)
    return not pinned or installed == pinned or ("+" not in pinned and installed.split("+", 1)[0] == pinned)


def check(root: Path, ros_deps_file: Path, requirements_file: Path) -> list[str]:
    """Every finding, one line each, sorted; [] when every import is declared."""
    root = root.resolve()
    listed_debs = read_ros_deps(ros_deps_file)
    pins = read_requirements(requirements_file)
    files = list(python_files(root))
    ours = project_modules(root, files)
    stdlib = set(sys.stdlib_module_names)

    def where(imp: Import) -> str:
        return f"{imp.path.relative_to(root)}:{imp.line}"

    by_module: dict[str, list[Import]] = {}
    findings: list[str] = []
    for path in files:
        try:
            found = imports_of(path)
        except SyntaxError as exc:
            findings.append(f"{path.relative_to(root)}:{exc.lineno}: cannot parse: {exc.msg}")
            continue
        for imp in found:
            if imp.module in ours:
                continue
            by_module.setdefault(imp.module, []).append(imp)

    located = {name: module_files(name) for name in by_module}
    owners = dpkg_owners(p for files in located.values() if files for p in files)
    dists_of = _packages_distributions()
    installed = _installed()
    used_dists: set[str] = set()

    for name, imps in sorted(by_module.items()):
        first = imps[0]
        more = f" (and {len(imps) - 1} more imports)" if len(imps) > 1 else ""
        files = located[name]
        if files is None:
            if not all(imp.guarded for imp in imps):
                unguarded = next(imp for imp in imps if not imp.guarded)
                findings.append(f"{where(unguarded)}: '{name}' is not importable here and its import is not "
                                f"guarded by try/except ImportError{more}")
            continue
        if not files:  # built-in or frozen: part of the interpreter
            continue
        debs = {owners[f] for f in files if f in owners}
        if debs:
            if name in stdlib and all(INTERPRETER_PACKAGE.match(d) for d in debs):
                continue
            if not debs & listed_debs:
                findings.append(f"{where(first)}: '{name}' comes from the Debian package {', '.join(sorted(debs))}, "
                                f"which ros-deps.txt does not list{more}")
            continue
        dists = {normalise(d) for d in dists_of.get(name, [])}
        if not dists:
            findings.append(f"{where(first)}: '{name}' ({files[0]}) belongs to no Debian package and no pip "
                            f"distribution{more}")
            continue
        pinned = dists & set(pins)
        if not pinned:
            findings.append(f"{where(first)}: '{name}' comes from pip's {', '.join(sorted(dists))}, which "
                            f"requirements.txt does not pin{more}")
            continue
        used_dists |= pinned

    # Pins that nothing uses: not imported, not required by an imported pin, no command of theirs run.
    closure, todo = set(), list(used_dists)
    while todo:
        dist = todo.pop()
        if dist in closure:
            continue
        closure.add(dist)
        if dist in installed:
            todo.extend(_requirement_names(installed[dist]))
    words = _commands_used(root)
    for dist, version in sorted(pins.items()):
        info = installed.get(dist)
        if dist not in closure:
            commands = {Path(str(f)).name for f in (info.files or []) if "bin/" in str(f)} if info else set()
            if not commands & words:
                findings.append(f"requirements.txt: {dist} is pinned but nothing imports it, needs it or runs it")
                continue
        if info is None:
            findings.append(f"requirements.txt: {dist}=={version} is not installed (make setup)")
        elif not _pin_matches(version, info.version):
            findings.append(f"requirements.txt: {dist}=={version} is pinned but {info.version} is installed")
    return sorted(findings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    findings = check(root, root / "ros-deps.txt", root / "requirements.txt")
    for line in findings:
        print(line)
    return 1 if findings else 0


if __name__ == "__main__":
    # This script's folder on sys.path would make tools/*.py look importable from every file.
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
    sys.exit(main())
