"""`python -m vla_edge.cloud --model PATH ...`: the cloud inference server."""

import sys

from vla_edge.cloud.server import main

sys.exit(main())
