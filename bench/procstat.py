"""What the benchmarks measure of a process: CPU seconds, resident memory, and a ROS node's pid.

From /proc, so a bench reads a node's usage without touching it.
"""

from __future__ import annotations

import os
import xmlrpc.client
from pathlib import Path

import rosgraph

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far [s]."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_mb(pid: int) -> float:
    """Resident memory [MiB]; NaN when the kernel does not say."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def node_pid(name: str, caller: str = "/bench") -> int:
    """The pid of a running ROS node, asked of the node itself through the master."""
    uri = rosgraph.Master(caller).lookupNode(name)
    return int(xmlrpc.client.ServerProxy(uri).getPid(caller)[2])
