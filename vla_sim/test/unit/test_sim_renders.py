"""The world split into modules renders and moves exactly as the single-file world did.

The shipped policy was trained on these camera frames, so the split must not change a single
pixel. DIGESTS were recorded by running `fingerprint` on the world as it stood at b69388c
(`git show b69388c:vla_sim/src/vla_sim/world.py`), with numpy 1.26.4 on x86-64; a numpy upgrade
that changes floating-point results would fail here too: re-record from b69388c, never from the
current code.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from vla_sim.world import World

DIGESTS = {
    "camera": "01902713e4ab670c3feae0c617f9a4a399e21d490336dfe1dd7d438b50c57f73",
    "lidar": "14beebc43278d92debdc0dbc3beb3faf552ded9b4a0a13ae00861437db7cf435",
    "cloud": "89562ed8fd91dee13a44b1743e36eb3274fe9f66fe832b2e95a82c84644f1011",
    "motion": "ed71cd5ab93e99b795f3a09d65d1a0b730d4b1e10fb13dfb0376b55742aeabbc",
}


def fingerprint(world_cls: type) -> dict[str, str]:
    """sha256 of every camera frame, scan and cloud, and of the exact robot states, over a scripted run:
    three robots on five seeded layouts, random twists (walls, objects and each other get hit), a
    target each, frames taken once a simulated second for six seconds; then one robot charges on the dock."""
    digests = {k: hashlib.sha256() for k in DIGESTS}
    targets = ("red cube", "blue ball", "green cylinder", "yellow cone")
    for seed in (0, 1, 7, 42, 100003):
        world = world_cls(["robot_1", "robot_2", "robot_3"], seed=seed)
        rng = np.random.default_rng(seed)
        for i, rid in enumerate(world.robot_ids):
            world.set_target(rid, targets[(seed + i) % 4], task="go there")
        for _ in range(6):
            for rid in world.robot_ids:
                digests["camera"].update(world.camera(rid).tobytes())
                digests["lidar"].update(world.lidar(rid).tobytes())
                digests["cloud"].update(world.point_cloud(rid).tobytes())
                rb = world.robot(rid)
                digests["motion"].update(struct.pack(
                    "<7d2i?", rb.x, rb.y, rb.yaw, rb.vx, rb.vy, rb.wz, rb.battery, rb.collisions,
                    int(world.reached(rid)), rb.in_contact))
                digests["motion"].update(struct.pack("<d", world.distance_to_target(rid)))
            for rid in world.robot_ids:
                world.set_twist(rid, *rng.uniform([-0.8, -0.4, -1.0], [0.8, 0.4, 1.0]))
            for _ in range(20):
                world.step(0.05)
        docked = world.robot("robot_1")  # onto the dock: charging
        docked.x, docked.y = world.dock_xy
        for _ in range(10):
            world.step(0.1)
            digests["motion"].update(struct.pack("<d", docked.battery))
    return {k: h.hexdigest() for k, h in digests.items()}


def test_renders_and_motion_match_the_single_file_world():
    assert fingerprint(World) == DIGESTS
