"""The cloud inference service: one policy served over HTTP (JSON) and the openpi WebSocket protocol,
with dynamic batching, auth, load shedding and a Ray Serve deployment (INTERFACES.md, "Cloud inference
service"). `codec` and `protocol` hold the wire formats both ends import; importing this package loads
no server framework.
"""
