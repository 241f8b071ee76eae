"""Distils a teacher policy into a smaller student over simulator rollouts, DAgger style (as vla_sim.train).

    python -m vla_sim.distill --teacher T.pt --student S.pt --out OUT.pt [--rounds 2] [--episodes 25] [--epochs 8]

The student is any contract model file whose TorchScript module can be trained (for instance the
teacher with half its channels cut: `python -m vla_edge.optimize prune T --method channels --epochs 0`;
`python -m vla_edge.optimize distill` builds it and calls this). Round 0: the teacher drives and
labels every frame with its chunk; round r > 0: each step the teacher drives with probability 0.5 / r,
else the student, and the teacher labels the states the student reaches. After each round the student
is fitted to all frames so far, each frame's instruction redrawn at every step among the training
phrasings of its goal (vla_edge.optimize.prune.fine_tune's paraphrase table, as the reference was
trained) and its target the teacher's chunk for that frame and those words, computed in the fit:
an episode has one instruction, and a student fitted on a hundred of them alone loses the unseen
paraphrases. Seeds 70000 + 1000 r + i are neither trained on by the reference
policy nor evaluated on. The result is written through vla_edge.optimize's all-or-nothing writer with a
sidecar whose parent is the teacher.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vla_edge.optimize.distill import DISTILL_EPISODES, DISTILL_EPOCHS, DISTILL_ROUNDS
from vla_edge.optimize.export import checked, torch_module
from vla_edge.optimize.inputs import Observations
from vla_edge.optimize.lineage import OptimizeError, check_output, derived_sidecar, read_source, write_model
from vla_edge.optimize.prune import Demonstrations, Paraphrases, fine_tune
from vla_edge.spec import FORMAT_TORCHSCRIPT
from vla_sim.evaluate import RobotPolicy
from vla_sim.instructions import sample_instruction, seen_instructions
from vla_sim.observations import paraphrase_table
from vla_sim.policy import ACTIVE_AXES, image_to_tensor
from vla_sim.rollout import make_world, run_episode
from vla_sim.world import TARGET_NAMES

LOG = logging.getLogger("vla_sim.distill")
DISTILL_FIRST_SEED = 70_000
_ROUND_STRIDE = 1_000
# The student differs from its teacher by design; the bound (mean |difference| in action units) only
# catches a broken result. Its success rate is the benchmark's to judge.
DISTILL_TOLERANCE = 0.1


def collect(teacher: RobotPolicy, student: torch.jit.ScriptModule, seeds: range, beta: float,
            rng: np.random.Generator, frames: list, language: list, labels: list, goals: list) -> float:
    """One episode per seed; every frame is labelled with the teacher's chunk (and its goal's index in
    TARGET_NAMES). Returns the success rate."""
    table = seen_instructions()
    wins = 0
    for seed in seeds:
        target, instruction = sample_instruction(np.random.default_rng((seed, 13)), table)
        world = make_world(seed, target, instruction)
        embedding = teacher.encoder.encode(instruction)

        def control(image: np.ndarray, embedding=embedding, instruction=instruction, target=target) -> np.ndarray:
            chunk = teacher.chunk(image, instruction)
            frames.append(image)
            language.append(embedding)
            goals.append(TARGET_NAMES.index(target))
            labels.append(chunk.astype(np.float32))
            if rng.random() < beta:
                return chunk[0, list(ACTIVE_AXES)]
            with torch.no_grad():
                out = student(image_to_tensor(image), torch.from_numpy(np.array(embedding)[None]))[0, 0]
            low, high = teacher.spec.action_low, teacher.spec.action_high
            return np.clip(out.detach().numpy(), low, high)[list(ACTIVE_AXES)]

        reached, _ = run_episode(world, control)
        wins += int(reached)
    return wins / max(len(seeds), 1)


def distill(teacher_path: Path, student_path: Path, out_path: Path, rounds: int, episodes: int, epochs: int,
            lr: float, seed: int = 0) -> dict:
    teacher_source = read_source(teacher_path)
    student_source = read_source(student_path)
    out = check_output(out_path, FORMAT_TORCHSCRIPT, teacher_source)
    if student_source.spec.image_size != teacher_source.spec.image_size or \
            student_source.spec.language_dim != teacher_source.spec.language_dim or \
            student_source.spec.chunk_length != teacher_source.spec.chunk_length:
        raise OptimizeError("student and teacher differ in image size, language dim or chunk length")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    teacher = RobotPolicy(teacher_path, "cpu")
    student = torch_module(student_source)
    teacher_module = torch_module(teacher_source).eval()
    frames: list = []
    language: list = []
    labels: list = []
    goals: list = []
    paraphrases, paraphrase_target = paraphrase_table(teacher.encoder)
    history = []
    t0 = time.monotonic()
    for r in range(rounds + 1):
        beta = 1.0 if r == 0 else 0.5 / r
        seeds = range(DISTILL_FIRST_SEED + r * _ROUND_STRIDE, DISTILL_FIRST_SEED + r * _ROUND_STRIDE + episodes)
        student.eval()
        success = collect(teacher, student, seeds, beta, rng, frames, language, labels, goals)
        demos = Demonstrations(Observations(image_to_tensor(np.stack(frames)).numpy(), np.stack(language)),
                               np.stack(labels), Paraphrases(np.array(goals), paraphrases, paraphrase_target))
        fit = fine_tune(student, demos, teacher_source.spec, epochs, lr, seed=seed + r, teacher=teacher_module)
        history.append({"round": r, "beta": beta, "seeds": [seeds.start, seeds.stop - 1], "frames": len(frames),
                        "mixed_control_success_rate": success, "loss": fit["final_loss"]})
        LOG.info("round %d (beta %.2f): mixed-control success %.2f, %d frames, loss %.4f", r, beta, success,
                 len(frames), fit["final_loss"])
    check = Observations(demos.observations.vision[-64:], demos.observations.language[-64:])
    details = {"teacher": {"file": teacher_source.path.name, "sha256": teacher_source.sha256},
               "student_init": {"file": student_source.path.name, "sha256": student_source.sha256,
                                "version": student_source.spec.version},
               "rounds": history, "epochs_per_round": epochs, "lr": lr,
               "wall_time_s": round(time.monotonic() - t0, 1), "command": "python -m vla_sim.distill"}

    def sidecar(sha: str, measured: dict) -> dict:
        return derived_sidecar(teacher_source, out, sha, FORMAT_TORCHSCRIPT, "distill", details, measured)

    return write_model(out, lambda p: student.save(str(p)), sidecar,
                       checked(teacher_source, DISTILL_TOLERANCE, check, metric="mean_abs_diff"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True, help="the smaller model to train (a contract file)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=DISTILL_ROUNDS, help="DAgger rounds after the teacher-driven one")
    parser.add_argument("--episodes", type=int, default=DISTILL_EPISODES, help="episodes per round")
    parser.add_argument("--epochs", type=int, default=DISTILL_EPOCHS, help="epochs after each round")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if not 0 <= args.rounds < 50 or not 1 <= args.episodes < _ROUND_STRIDE or not 1 <= args.epochs <= 100:
        parser.error("--rounds in 0..49, --episodes in 1..999, --epochs in 1..100")
    torch.set_num_threads(1)
    try:
        doc = distill(args.teacher, args.student, args.out, args.rounds, args.episodes, args.epochs, args.lr,
                      args.seed)
    except OptimizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (distill, version {doc['version']}, sha256 {doc['sha256'][:12]}…)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
