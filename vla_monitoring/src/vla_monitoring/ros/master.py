"""Questions to the ROS master and to other nodes over XML-RPC, each bounded by a timeout.

rosgraph's Master proxy waits forever on a hung peer; these calls give up after `timeout_s`, so a
health probe or a resource monitor's lookup cannot hang. Used by health_node (pings) and
resource_monitor_node (which pid each of the suite's nodes has).
"""

from __future__ import annotations

import xmlrpc.client


class TimeoutTransport(xmlrpc.client.Transport):
    """XML-RPC transport with a connect/read timeout, so a hung peer cannot hang a caller."""

    def __init__(self, timeout_s: float):
        super().__init__()
        self._timeout_s = timeout_s

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self._timeout_s
        return conn


def proxy(uri: str, timeout_s: float) -> xmlrpc.client.ServerProxy:
    # A fresh proxy per call: ServerProxy is not thread-safe, and callers run concurrently.
    return xmlrpc.client.ServerProxy(uri, transport=TimeoutTransport(timeout_s))


class LookupFailed(Exception):  # noqa: N818 (names the outcome, like rosgraph's MasterError)
    """The master or a node did not answer, or answered with a failure; the message says which."""


def check_master(master_uri: str, caller_id: str, timeout_s: float) -> tuple[bool, str]:
    try:
        code, msg, _pid = proxy(master_uri, timeout_s).getPid(caller_id)
    except (OSError, xmlrpc.client.Error) as exc:
        return False, f"master {master_uri} unreachable: {exc}"
    return (True, "") if code == 1 else (False, f"master getPid failed: {msg}")


def lookup_node(master_uri: str, caller_id: str, node: str, timeout_s: float) -> str:
    """The XML-RPC URI `node` registered with the master; LookupFailed when it is not registered."""
    try:
        code, msg, uri = proxy(master_uri, timeout_s).lookupNode(caller_id, node)
    except (OSError, xmlrpc.client.Error) as exc:
        raise LookupFailed(f"master unreachable: {exc}") from exc
    if code != 1:
        raise LookupFailed(f"not registered with the master ({msg})")
    return uri


def node_pid(uri: str, caller_id: str, timeout_s: float) -> int:
    """The pid the node at `uri` reports (`rosnode info`'s source); LookupFailed when it does not answer."""
    try:
        code, msg, pid = proxy(uri, timeout_s).getPid(caller_id)
    except (OSError, xmlrpc.client.Error) as exc:
        raise LookupFailed(f"registered at {uri} but not answering: {exc}") from exc
    if code != 1:
        raise LookupFailed(f"getPid failed: {msg}")
    return int(pid)


def ping_node(master_uri: str, caller_id: str, node: str, timeout_s: float) -> tuple[bool, str]:
    """Like `rosnode ping`: looks the node up on the master and asks the node for its pid."""
    try:
        node_pid(lookup_node(master_uri, caller_id, node, timeout_s), caller_id, timeout_s)
    except LookupFailed as exc:
        return False, str(exc)
    return True, ""
