"""Trains the reference policy by behaviour cloning plus DAgger, exports TorchScript and its sidecar.

`python -m vla_sim.train` (or `make train-policy`): expert demonstrations on layouts from seeds
below 100000, DAgger rounds where the student drives and the expert labels, then evaluation on
held-out seeds (>= 100000) with seen and unseen phrasings, all written to the sidecar.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from vla_edge.encoders import SentenceTextEncoder
from vla_msgs.names import ACTION_NAMES
from vla_sim import resources
from vla_sim.evaluate import EVAL_FIRST_SEED, RobotPolicy, evaluate
from vla_sim.expert import expert_action
from vla_sim.instructions import seen_instructions, unseen_instructions
from vla_sim.policy import (
    ACTION_LIMITS,
    ACTION_UNITS,
    ACTIVE_AXES,
    CHUNK_LENGTH,
    CONTROL_RATE_HZ,
    ENCODER_NAME,
    ENCODER_UPSTREAM,
    IMAGE_SHAPE,
    LANGUAGE_DIM,
    VlaPolicyNet,
    image_to_tensor,
)
from vla_sim.rollout import ROBOT_ID, expert_chunk, make_world, run_episode

LOG = logging.getLogger("vla_sim.train")

_ACTIVE_AXES = list(ACTIVE_AXES)
_ACTIVE_LIMITS = np.array([ACTION_LIMITS[i] for i in _ACTIVE_AXES])
# Executed-action noise of the noisy demonstrations (DART): the expert shows how to recover.
_DART_NOISE = np.array([0.2, 0.15, 0.4])
_DAGGER_SEED_STRIDE = 10_000


@dataclass
class Dataset:
    """Aggregated frames: uint8 images, instruction indices, normalised expert chunks [T, 3]."""

    images: list[np.ndarray] = field(default_factory=list)
    language: list[int] = field(default_factory=list)
    chunks: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


# Bump when the task definition or the training recipe changes: 2.0.0 is the first policy trained
# for the 0.6 m reach that agrees with the safety bubble (1.0.0 reached at 0.3 m).
POLICY_VERSION = "2.0.0"

def collect(
    data: Dataset,
    seeds: range,
    phrases: list[tuple[str, str]],
    rng: np.random.Generator,
    student: VlaPolicyNet | None,
    embeddings: torch.Tensor,
    beta: float,
    noisy_fraction: float,
) -> dict:
    """Runs one episode per seed and appends every frame with the expert's chunk as its label.

    Without a student the expert drives (with DART noise in `noisy_fraction` of episodes); with one,
    each step the expert drives with probability `beta`, else the student.
    """
    successes = 0
    for seed in seeds:
        idx = int(rng.integers(len(phrases)))
        target, instruction = phrases[idx]
        world = make_world(seed, target, instruction)
        noisy = student is None and rng.random() < noisy_fraction

        def record(image: np.ndarray, world=world, idx=idx) -> None:
            data.images.append(image)
            data.language.append(idx)
            data.chunks.append((expert_chunk(world, ROBOT_ID, CHUNK_LENGTH) / _ACTIVE_LIMITS).astype(np.float32))

        def control(image: np.ndarray, world=world, idx=idx, noisy=noisy) -> np.ndarray:
            if student is None or rng.random() < beta:
                action = expert_action(world, ROBOT_ID)
                if noisy:
                    action = action + rng.normal(0.0, _DART_NOISE)
                return action
            with torch.no_grad():
                out = student(image_to_tensor(image), embeddings[idx : idx + 1])[0, 0]
            return out[_ACTIVE_AXES].numpy()

        reached, _ = run_episode(world, control, on_frame=record)
        successes += int(reached)
    return {"episodes": len(seeds), "success_rate": successes / max(len(seeds), 1)}


def fit(
    net: VlaPolicyNet, data: Dataset, embeddings: torch.Tensor, epochs: int, lr: float, rng: np.random.Generator
) -> float:
    """Epochs of MSE on normalised chunks (first step weighted double: it is the one executed)."""
    images = np.stack(data.images)
    lang = np.array(data.language)
    target = torch.from_numpy(np.stack(data.chunks))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    batch = 128
    steps = epochs * ((len(images) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    weights = torch.ones(CHUNK_LENGTH, 1)
    weights[0] = 2.0
    limits = torch.tensor(_ACTIVE_LIMITS, dtype=torch.float32)
    net.train()
    loss_value = float("nan")
    for epoch in range(epochs):
        order = rng.permutation(len(images))
        total, count = 0.0, 0
        t0 = time.monotonic()
        for start in range(0, len(order), batch):
            sel = order[start : start + batch]
            img = image_to_tensor(images[sel])
            # Lighting jitter: the student must key on hue and shape, not exact pixel values.
            img = (img * torch.empty(len(sel), 1, 1, 1).uniform_(0.8, 1.2)).clamp_(0.0, 1.0)
            emb = embeddings[lang[sel]]
            # Embedding noise widens each instruction to a neighbourhood, which is where paraphrases land.
            emb = torch.nn.functional.normalize(emb + 0.02 * torch.randn_like(emb), dim=-1)
            pred = net(img, emb)[:, :, _ACTIVE_AXES] / limits
            loss = (((pred - target[sel]) ** 2) * weights).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(sel)
            count += len(sel)
        loss_value = total / max(count, 1)
        LOG.info("epoch %d/%d: loss %.4f on %d frames (%.0f s)", epoch + 1, epochs, loss_value, count,
                 time.monotonic() - t0)
    net.eval()
    return loss_value


def export(net: VlaPolicyNet, model_path: Path) -> str:
    """Writes the TorchScript file and returns its sha256."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.script(net.eval())
    scripted.save(str(model_path))
    return hashlib.sha256(model_path.read_bytes()).hexdigest()


def write_sidecar(model_path: Path, sha256: str, training: dict, evaluation: dict) -> None:
    sidecar = {
        "name": "vla_sim_reference_policy",
        "version": POLICY_VERSION,
        "sha256": sha256,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "framework": "torchscript",
        "file": model_path.name,
        "signature": "forward(image, language) -> actions",
        "input": {
            "image": {"shape": list(IMAGE_SHAPE), "dtype": "float32", "range": [0.0, 1.0], "channel_order": "RGB",
                      "layout": "NCHW", "camera": "first-person, 90 deg horizontal field of view"},
            "language": {"dim": LANGUAGE_DIM, "dtype": "float32", "encoder": ENCODER_NAME,
                         "encoder_upstream": ENCODER_UPSTREAM, "normalized": True},
        },
        "action": {
            "shape": ["B", CHUNK_LENGTH, len(ACTION_NAMES)],
            "names": list(ACTION_NAMES),
            "units": list(ACTION_UNITS),
            "limits": [[-lim, lim] for lim in ACTION_LIMITS],
            "frame": "base_link (body twist)",
        },
        "normalization": {
            "image": "divide uint8 by 255 before the call; the network centres it itself",
            "language": "L2-normalised sentence embedding",
            "action": "tanh output scaled by the per-axis limits inside the network; outputs are in SI units",
        },
        "chunk_length": CHUNK_LENGTH,
        "control_rate_hz": CONTROL_RATE_HZ,
        "execution": "receding horizon: run the first action of each chunk at 10 Hz; the rest is a plan",
        "training": training,
        "evaluation": evaluation,
    }
    model_path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, initialisation and shuffling")
    parser.add_argument("--expert-episodes", type=int, default=500)
    parser.add_argument("--dagger-rounds", type=int, default=4)
    parser.add_argument("--dagger-episodes", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=10, help="epochs after the expert data")
    parser.add_argument("--dagger-epochs", type=int, default=3, help="epochs after each DAgger round")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--output", type=Path, default=None,
                        help="TorchScript file; the sidecar goes beside it (default: the shipped reference policy)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.expert_episodes >= _DAGGER_SEED_STRIDE or args.dagger_rounds * _DAGGER_SEED_STRIDE >= EVAL_FIRST_SEED:
        parser.error("training seeds must stay below the evaluation seeds")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.monotonic()

    output = args.output or resources.model_path()
    table = seen_instructions()
    phrases = [(t, s) for t in sorted(table) for s in table[t]]
    # The embeddings the robot computes: vla_edge's sentence encoder, one instruction at a time.
    encoder = SentenceTextEncoder(ENCODER_NAME)
    embeddings = torch.from_numpy(np.stack([encoder.encode(s) for _, s in phrases]))

    net = VlaPolicyNet()
    data = Dataset()
    rounds = []
    t0 = time.monotonic()
    stats = collect(data, range(args.expert_episodes), phrases, rng, None, embeddings, 1.0, noisy_fraction=0.5)
    LOG.info("expert data: %d frames from %d episodes (%.0f s)", len(data), args.expert_episodes, time.monotonic() - t0)
    loss = fit(net, data, embeddings, args.epochs, args.lr, rng)
    rounds.append({"kind": "expert", "seeds": [0, args.expert_episodes - 1], "frames": len(data), "loss": loss,
                   "expert_success_rate": stats["success_rate"]})
    for r in range(1, args.dagger_rounds + 1):
        beta = 0.5 / r
        seeds = range(r * _DAGGER_SEED_STRIDE, r * _DAGGER_SEED_STRIDE + args.dagger_episodes)
        t0 = time.monotonic()
        stats = collect(data, seeds, phrases, rng, net, embeddings, beta, noisy_fraction=0.0)
        LOG.info("DAgger round %d (beta %.2f): mixed-control success %.2f, %d frames total (%.0f s)",
                 r, beta, stats["success_rate"], len(data), time.monotonic() - t0)
        loss = fit(net, data, embeddings, args.dagger_epochs, args.lr / 2, rng)
        rounds.append({"kind": "dagger", "beta": beta, "seeds": [seeds.start, seeds.stop - 1], "frames": len(data),
                       "loss": loss, "mixed_control_success_rate": stats["success_rate"]})

    sha = export(net, output)
    training = {
        "method": "behaviour cloning on scripted-expert demonstrations (half with DART action noise), then DAgger",
        "seed": args.seed,
        "seeds_used": "layouts 0..{} (expert) and {} (DAgger); evaluation uses seeds >= {}".format(
            args.expert_episodes - 1,
            ", ".join(f"{r['seeds'][0]}..{r['seeds'][1]}" for r in rounds[1:]) or "none", EVAL_FIRST_SEED),
        "instructions": f"templates x synonyms of vla_sim.instructions ({len(phrases)} phrasings)",
        "held_out_paraphrases": "vla_sim/data/paraphrases_unseen.json (never used in training)",
        "rounds": rounds,
        "frames": len(data),
        "epochs": {"expert": args.epochs, "per_dagger_round": args.dagger_epochs},
        "wall_time_s": round(time.monotonic() - t_start, 1),
        "command": "python -m vla_sim.train",
    }
    # The sidecar first: evaluation loads the file as the robot does, checked against it.
    write_sidecar(output, sha, training, {})
    policy = RobotPolicy(output)
    seen = evaluate(policy, args.eval_episodes, EVAL_FIRST_SEED, table)
    unseen = evaluate(policy, args.eval_episodes, EVAL_FIRST_SEED, unseen_instructions())
    command = f"python -m vla_sim.evaluate --episodes {args.eval_episodes} --first-seed {EVAL_FIRST_SEED}"
    evaluation = {
        "episode_limit_s": 30.0,
        "seen_phrasing": {**seen, "command": command},
        "unseen_paraphrases": {**unseen, "command": command + " --paraphrases"},
    }
    write_sidecar(output, sha, training, evaluation)
    LOG.info("seen: %s", json.dumps(seen))
    LOG.info("unseen: %s", json.dumps(unseen))
    LOG.info("wrote %s and its .json sidecar in %.0f s", output, time.monotonic() - t_start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
