#!/usr/bin/env python3
"""The last step of `make setup`: import every node's module once, so a missing module fails set-up.

The modules are found from the executables themselves: each `vla_*/nodes/<name>` is a shim
`from <pkg>.ros.<name> import main; main()`. A module that does not import is printed with the
reason (`No module named 'nav_msgs'`) and the exit status is 1; nothing is started.
"""

from __future__ import annotations

import ast
import importlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def node_modules(root: Path = ROOT) -> dict[str, str]:
    """`pkg/node` -> the module its shim imports `main` from, for every vla_*/nodes/* executable."""
    found = {}
    for shim in sorted(root.glob("vla_*/nodes/*")):
        tree = ast.parse(shim.read_text(), filename=str(shim))
        modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        found[f"{shim.parent.parent.name}/{shim.name}"] = modules[0] if modules else ""
    return found


def main() -> int:
    started = time.monotonic()
    nodes = node_modules()
    failed = 0
    for node, module in nodes.items():
        try:
            if not module:
                raise ImportError("the shim imports no module")
            importlib.import_module(module)
        # Whatever stops a module from importing (a missing package, a broken build) is what
        # set-up exists to report, by the node's name.
        except Exception as exc:
            failed += 1
            print(f"[setup] node {node}: cannot import {module or '?'}: {type(exc).__name__}: {exc}", file=sys.stderr)
    if not failed:
        print(f"[setup] every node module imports: {', '.join(nodes)} ({time.monotonic() - started:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
