"""`python -m vla_edge.optimize <command>`: the optimisation toolkit's command line."""

from vla_edge.optimize.cli import main

raise SystemExit(main())
