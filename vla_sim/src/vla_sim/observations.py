"""Records model observations from the simulator, with the expert's labels: calibration sets for
quantisation and demonstrations for the fine-tune after pruning (vla_edge.optimize).

    python -m vla_sim.observations --out FILE.npz [--episodes N] [--first-seed S] [--every K]

The scripted expert drives episodes on layouts S..S+N-1 (by default 50000..: seeds neither training nor
evaluation uses) with the training phrasings; every K-th camera frame is kept as the model sees it
(`image` float32 [N, 3, H, W] in 0..1) with the embedding of its instruction (`language` float32
[N, 384], the sentence encoder the robot runs) and the expert's chunk from that state (`actions`
float32 [N, 8, 6] in SI units, the contract's six axes). The file is what `vla_edge.optimize quantize
--calibration` and `prune --demonstrations` read. It also holds the paraphrase table the fine-tune draws
each frame's instruction from: `target` int [N] (each frame's goal, an index into the world's sorted
target names), `paraphrases` float32 [P, 384] (every training phrasing, never a held-out one) and
`paraphrase_target` int [P].
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from vla_edge.encoders import SentenceTextEncoder, TextEncoder
from vla_sim.expert import expert_action
from vla_sim.instructions import sample_instruction, seen_instructions
from vla_sim.policy import ACTIVE_AXES, CHUNK_LENGTH, ENCODER_NAME, image_to_tensor
from vla_sim.rollout import ROBOT_ID, expert_chunk, make_world, run_episode
from vla_sim.world import TARGET_NAMES

LOG = logging.getLogger("vla_sim.observations")
CALIBRATION_FIRST_SEED = 50_000  # between the DAgger seeds (< 50000) and the evaluation seeds (>= 100000)


def paraphrase_table(encoder: TextEncoder) -> tuple[np.ndarray, np.ndarray]:
    """Every training phrasing's embedding float32 [P, D] and its goal's index in TARGET_NAMES [P]."""
    table = seen_instructions()
    pairs = [(TARGET_NAMES.index(t), s) for t in sorted(table) for s in table[t]]
    embeddings = np.stack([encoder.encode(s) for _, s in pairs]).astype(np.float32)
    return embeddings, np.array([goal for goal, _ in pairs], dtype=np.int64)


def record(episodes: int, first_seed: int, every: int) -> dict[str, np.ndarray]:
    """Expert-driven episodes; returns the file's arrays: `image` float32 [N, 3, H, W] in 0..1, `language`
    float32 [N, D], `actions` (expert chunks) float32 [N, T, 6], `target` [N] and the paraphrase table."""
    table = seen_instructions()
    encoder = SentenceTextEncoder(ENCODER_NAME)
    frames: list[np.ndarray] = []
    language: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    goals: list[int] = []
    for seed in range(first_seed, first_seed + episodes):
        target, instruction = sample_instruction(np.random.default_rng((seed, 11)), table)
        world = make_world(seed, target, instruction)
        embedding = encoder.encode(instruction)
        count = [0]

        def keep(image: np.ndarray, embedding=embedding, count=count, world=world, target=target) -> None:
            if count[0] % every == 0:
                frames.append(image)
                language.append(embedding)
                goals.append(TARGET_NAMES.index(target))
                chunk = np.zeros((CHUNK_LENGTH, 6), dtype=np.float32)
                chunk[:, list(ACTIVE_AXES)] = expert_chunk(world, ROBOT_ID, CHUNK_LENGTH)
                actions.append(chunk)
            count[0] += 1

        run_episode(world, lambda _image, world=world: expert_action(world, ROBOT_ID), on_frame=keep)
    if not frames:
        raise ValueError(f"no frames recorded: every episode of seeds {first_seed}..{first_seed + episodes - 1} "
                         "started within reach of its target")
    paraphrases, paraphrase_target = paraphrase_table(encoder)
    return {"image": image_to_tensor(np.stack(frames)).numpy(), "language": np.stack(language).astype(np.float32),
            "actions": np.stack(actions), "target": np.array(goals, dtype=np.int64), "paraphrases": paraphrases,
            "paraphrase_target": paraphrase_target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help=".npz file to write (never overwritten)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=CALIBRATION_FIRST_SEED)
    parser.add_argument("--every", type=int, default=4, help="keep every K-th frame")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not 1 <= args.episodes <= 10_000 or not 1 <= args.every <= 1000:
        parser.error("--episodes must be in [1, 10000] and --every in [1, 1000]")
    if args.out.suffix != ".npz":
        parser.error("--out must end .npz")
    if args.out.exists():
        parser.error(f"{args.out} exists; not overwritten")
    arrays = record(args.episodes, args.first_seed, args.every)
    np.savez_compressed(args.out, **arrays)
    LOG.info("wrote %d frames from %d episodes (seeds %d..%d) to %s", len(arrays["image"]), args.episodes,
             args.first_seed, args.first_seed + args.episodes - 1, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
