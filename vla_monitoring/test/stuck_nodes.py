#!/usr/bin/env python3
"""Registers `~names` with the master as nodes whose XML-RPC address accepts connections and never
answers: a hung node, as a health probe sees it (lookupNode succeeds, getPid waits its timeout)."""

import socket
import threading
import xmlrpc.client

import rosgraph
import rospy


def hold(server: socket.socket, held: list) -> None:
    while True:
        conn, _ = server.accept()
        held.append(conn)  # kept open, never read, never answered


def main() -> None:
    rospy.init_node("stuck_nodes")
    master = xmlrpc.client.ServerProxy(rosgraph.get_master_uri())
    held: list = []
    for name in rospy.get_param("~names"):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        threading.Thread(target=hold, args=(server, held), daemon=True).start()
        full = rospy.resolve_name(name)
        code, msg, _ = master.registerPublisher(full, f"{full}/out", "std_msgs/String",
                                                f"http://127.0.0.1:{server.getsockname()[1]}/")
        if code != 1:
            raise RuntimeError(f"could not register {full}: {msg}")
    rospy.spin()


if __name__ == "__main__":
    main()
