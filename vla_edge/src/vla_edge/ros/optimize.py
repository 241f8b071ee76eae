"""`rosrun vla_edge optimize <command>`: the optimisation toolkit's command line (vla_edge.optimize.cli)
as a package executable; it starts no node and needs no master."""

from __future__ import annotations

import sys

from vla_edge.optimize.cli import main as cli_main


def main() -> None:
    sys.exit(cli_main(sys.argv[1:]))
