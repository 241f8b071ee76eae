"""Evaluates a policy in the pure-Python world on held-out layouts, run exactly as the robot runs it.

    python -m vla_sim.evaluate --episodes N --first-seed S [--paraphrases | --instructions FILE] [--model PT]

The policy goes through vla_edge's runtime: `load_policy` (sidecar, sha256, signature, warm-up),
the finite and limit guards, the sidecar's image preprocessing and its cached text encoder.
Layouts come from seeds S..S+N-1; each episode draws its target and one instruction from the
table (training phrasings by default). The last stdout line is one JSON object with `episodes`,
`success_rate`, `mean_time_s` (over successful episodes) and `collisions` (total).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from vla_edge.encoders import CachedTextEncoder, ImagePreprocessor, make_text_encoder
from vla_edge.policy import PolicyLoadError, finite_and_clamped, load_policy
from vla_sim import resources
from vla_sim.instructions import load_instructions, sample_instruction, seen_instructions, unseen_instructions
from vla_sim.policy import ACTIVE_AXES
from vla_sim.rollout import EPISODE_LIMIT_S, ROBOT_ID, EpisodeResult, make_world, run_episode

LOG = logging.getLogger("vla_sim.evaluate")

# Seeds from here on are never used in training (see the sidecar's training.seeds_used).
EVAL_FIRST_SEED = 100_000


class RobotPolicy:
    """A policy file as the robot runs it: vla_edge's verified runtime behind its guards, the sidecar's
    preprocessing and text encoder (each instruction encoded once)."""

    def __init__(self, model_path: str | Path, device: str = "cpu"):
        policy = load_policy(model_path, device)
        self.spec = policy.spec
        self.policy = finite_and_clamped(policy)
        self.preprocess = ImagePreprocessor(policy.spec)
        self.encoder = CachedTextEncoder(make_text_encoder(policy.spec, str(policy.device)))

    def chunk(self, image: np.ndarray, instruction: str) -> np.ndarray:
        """uint8 RGB [H, W, 3] + instruction → the action chunk float32 [T, 6], clamped to the sidecar's limits."""
        obs = {"image": self.preprocess(image), "language": self.encoder.encode(instruction)}
        return self.policy.infer(obs)["actions"]


def run_policy_episode(policy: RobotPolicy, seed: int, target: str, instruction: str) -> EpisodeResult:
    """One episode driven by the policy: the first action of each chunk, replanned at 10 Hz."""
    world = make_world(seed, target, instruction)

    def control(image: np.ndarray) -> np.ndarray:
        return policy.chunk(image, instruction)[0, list(ACTIVE_AXES)]

    reached, time_s = run_episode(world, control, EPISODE_LIMIT_S)
    return EpisodeResult(seed, target, instruction, reached, time_s, world.robot(ROBOT_ID).collisions)


def evaluate(policy: RobotPolicy, episodes: int, first_seed: int, table: dict[str, list[str]]) -> dict:
    """Runs `episodes` episodes and summarises them (the JSON of the last output line)."""
    results = []
    for seed in range(first_seed, first_seed + episodes):
        # The target/instruction draw depends on the seed only, so every policy meets the same tasks.
        target, instruction = sample_instruction(np.random.default_rng((seed, 7)), table)
        res = run_policy_episode(policy, seed, target, instruction)
        LOG.info("seed %d %-15s %-45r %s in %.1f s, %d collisions", seed, target, instruction,
                 "reached" if res.success else "FAILED", res.time_s, res.collisions)
        results.append(res)
    wins = [r for r in results if r.success]
    return {
        "episodes": len(results),
        "success_rate": round(len(wins) / max(len(results), 1), 4),
        "mean_time_s": round(float(np.mean([r.time_s for r in wins])), 3) if wins else None,
        "collisions": int(sum(r.collisions for r in results)),
        "first_seed": first_seed,
        "failed_seeds": [r.seed for r in results if not r.success],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=EVAL_FIRST_SEED)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--paraphrases", action="store_true", help="use the held-out paraphrases")
    group.add_argument("--instructions", type=Path, help="JSON: target name -> list of instructions")
    parser.add_argument("--model", type=Path, default=None,
                        help="TorchScript policy file with its .json sidecar (default: the shipped reference policy)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--verbose", action="store_true", help="log every episode")
    parser.add_argument("--record", action="store_true",
                        help="also write the summary into the model's sidecar (<model>.json) under evaluation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    if not 1 <= args.episodes <= 100_000:
        parser.error("--episodes must be in [1, 100000]")
    if args.first_seed < 0:
        parser.error("--first-seed must be >= 0")
    if args.first_seed < EVAL_FIRST_SEED:
        LOG.warning("seeds below %d were used in training: this is not a held-out evaluation", EVAL_FIRST_SEED)
    try:
        if args.instructions:
            table = load_instructions(args.instructions)
        else:
            table = unseen_instructions() if args.paraphrases else seen_instructions()
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    model = args.model or resources.model_path()
    try:
        policy = RobotPolicy(model, args.device)
    except (PolicyLoadError, ValueError) as exc:
        parser.error(str(exc))
    t0 = time.monotonic()
    summary = evaluate(policy, args.episodes, args.first_seed, table)
    summary["model"] = f"{policy.spec.name} {policy.spec.version}"
    summary["phrasing"] = "file" if args.instructions else ("unseen" if args.paraphrases else "seen")
    summary["episode_limit_s"] = EPISODE_LIMIT_S
    summary["wall_time_s"] = round(time.monotonic() - t0, 1)
    if args.record:
        record(model, summary, " ".join(["python -m vla_sim.evaluate", *(argv or sys.argv[1:])]))
    print(json.dumps(summary))
    return 0


def record(model: Path, summary: dict, command: str) -> None:
    """Stores a summary in the sidecar of `model`, refusing when the sidecar describes another file."""
    sidecar_path = model.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    if sidecar.get("sha256") != digest:
        raise SystemExit(f"{sidecar_path} describes another model file (sha256 mismatch); not recording")
    key = {"seen": "seen_phrasing", "unseen": "unseen_paraphrases"}.get(summary["phrasing"], "instructions_file")
    evaluation = sidecar.setdefault("evaluation", {})
    evaluation[key] = {**summary, "command": command.replace(" --record", "")}
    sidecar_path.write_text(json.dumps(sidecar, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
