"""The command line of the toolkit: `python -m vla_edge.optimize <command>` (or `rosrun vla_edge optimize`).

    export onnx MODEL --out OUT.onnx [--opset 17] [--tolerance 1e-4] [--calibration C.npz]
    export torchscript MODEL --out OUT.pt [--calibration C.npz]   (frozen; tracing: python -m vla_sim.export)
    quantize MODEL --method torch-dynamic|torch-static|onnx-dynamic|onnx-static|onnx-fp16 --out OUT
             [--calibration C.npz] [--tolerance T]
    prune MODEL --method unstructured|channels --amount F --out OUT.pt --demonstrations D.npz [--epochs 10] [--lr 1e-3]
    distill TEACHER --out OUT.pt [--width 0.5 | --student S.pt] [--rounds 2] [--episodes 25] [--epochs 8]
    benchmark MODEL... [--episodes N] [--first-seed S] [--calls N] [--threads T] [--json]
    lineage MODEL

Exit status 0 on success, 2 when the input is refused (the message says why; nothing is written).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from vla_edge.optimize import benchmark as bench
from vla_edge.optimize.distill import DISTILL_EPISODES, DISTILL_EPOCHS, DISTILL_ROUNDS, distill
from vla_edge.optimize.export import ONNX_OPSET, ONNX_TOLERANCE, TORCHSCRIPT_MODES, export_onnx, export_torchscript
from vla_edge.optimize.lineage import OptimizeError, lineage_of
from vla_edge.optimize.prune import FINE_TUNE_EPOCHS, FINE_TUNE_LR, prune
from vla_edge.optimize.prune import METHODS as PRUNE_METHODS
from vla_edge.optimize.quantize import METHODS, quantize
from vla_edge.policy import configure_threads

REFUSED_EXIT_CODE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vla_edge.optimize", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="frozen TorchScript or ONNX, checked against the input")
    exp.add_argument("target", choices=("onnx", "torchscript"))
    exp.add_argument("model", type=Path)
    exp.add_argument("--out", type=Path, required=True)
    exp.add_argument("--opset", type=int, default=ONNX_OPSET)
    exp.add_argument("--tolerance", type=float, default=ONNX_TOLERANCE, help="ONNX: largest |difference| allowed")
    exp.add_argument("--mode", choices=TORCHSCRIPT_MODES, default="frozen",
                     help="traced is refused: trace the eager network (python -m vla_sim.export --mode traced)")
    exp.add_argument("--calibration", type=Path, help=".npz of recorded observations for the agreement check")
    qua = sub.add_parser("quantize", help="int8 (dynamic for linear layers, static for convolutions) or fp16")
    qua.add_argument("model", type=Path)
    qua.add_argument("--method", choices=METHODS, required=True)
    qua.add_argument("--out", type=Path, required=True)
    qua.add_argument("--calibration", type=Path, help=".npz from python -m vla_sim.observations")
    qua.add_argument("--tolerance", type=float, default=None, help="largest mean |difference| allowed")
    pru = sub.add_parser("prune", help="magnitude pruning (weights or whole channels) and a short fine-tune")
    pru.add_argument("model", type=Path)
    pru.add_argument("--method", choices=PRUNE_METHODS, required=True)
    pru.add_argument("--amount", type=float, required=True, help="fraction of weights (or of each conv's channels)")
    pru.add_argument("--out", type=Path, required=True)
    pru.add_argument("--demonstrations", type=Path, help=".npz with expert actions from python -m vla_sim.observations")
    pru.add_argument("--epochs", type=int, default=FINE_TUNE_EPOCHS, help="fine-tune epochs (0: none)")
    pru.add_argument("--lr", type=float, default=FINE_TUNE_LR)
    dis = sub.add_parser("distill", help="a smaller student trained on the teacher over simulator rollouts (DAgger)")
    dis.add_argument("model", type=Path, help="the teacher")
    dis.add_argument("--out", type=Path, required=True)
    dis.add_argument("--width", type=float, default=0.5, help="fraction of the teacher's channels the student keeps")
    dis.add_argument("--student", type=Path, help="start from this model file instead")
    dis.add_argument("--rounds", type=int, default=DISTILL_ROUNDS, help="DAgger rounds after the teacher-driven one")
    dis.add_argument("--episodes", type=int, default=DISTILL_EPISODES, help="simulator episodes per round")
    dis.add_argument("--epochs", type=int, default=DISTILL_EPOCHS, help="epochs after each round")
    ben = sub.add_parser("benchmark", help="one side-by-side table of size, latency and success rate")
    ben.add_argument("models", type=Path, nargs="+")
    ben.add_argument("--episodes", type=int, default=0, help="episodes per phrasing (0: no success rate)")
    ben.add_argument("--first-seed", type=int, default=bench.EVAL_FIRST_SEED)
    ben.add_argument("--calls", type=int, default=300, help="timed calls per model and measure")
    ben.add_argument("--threads", type=int, default=1, help="intra-op threads of torch and onnxruntime")
    ben.add_argument("--json", action="store_true", help="end with one line: the JSON list of per-model results")
    lin = sub.add_parser("lineage", help="the chain of parents back to the root model, each checksum verified")
    lin.add_argument("model", type=Path)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "export":
        if args.target == "onnx":
            doc = export_onnx(args.model, args.out, args.opset, args.tolerance, args.calibration)
        else:
            doc = export_torchscript(args.model, args.out, args.mode, args.calibration)
    elif args.command == "quantize":
        doc = quantize(args.model, args.out, args.method, args.calibration, args.tolerance)
    elif args.command == "prune":
        doc = prune(args.model, args.out, args.method, args.amount, args.demonstrations, args.epochs, args.lr)
    elif args.command == "distill":
        print(distill(args.model, args.out, args.width, args.student, args.rounds, args.episodes, args.epochs))
        return 0
    elif args.command == "lineage":
        for entry in lineage_of(args.model):
            print(f"{entry['file']}  {entry['name']} {entry['version']}  sha256 {entry['sha256'][:12]}…  "
                  f"{'verified' if entry['verified'] else 'NOT FOUND OR CHANGED'}")
        return 0
    else:
        if not 1 <= args.calls <= 100_000 or not 0 <= args.episodes <= 10_000 or not 1 <= args.threads <= 64:
            raise OptimizeError("--calls must be in 1..100000, --episodes in 0..10000, --threads in 1..64")
        rows = bench.benchmark(args.models, args.calls, args.threads, args.episodes, args.first_seed)
        records = [bench.summary(r) for r in rows]
        print(f"# {args.calls} timed calls per model, {args.threads} thread(s); success on "
              f"{args.episodes} episodes per phrasing from seed {args.first_seed}" if args.episodes else
              f"# {args.calls} timed calls per model, {args.threads} thread(s); no success rate (--episodes 0)")
        print(bench.table(records))
        if args.json:
            print(json.dumps(records))
        return 0
    print(f"wrote {args.out} ({doc['optimization']['method']}, version {doc['version']}, "
          f"sha256 {doc['sha256'][:12]}…): {json.dumps(doc['optimization']['measured'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # torch.onnx and torch.ao.quantization warn of deprecations on every call; they say nothing to a user here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    if args.command != "benchmark":
        # one thread, as the benchmark's default: the forward time a sidecar records is comparable across models
        configure_threads(1)
    try:
        return _run(args)
    except OptimizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED_EXIT_CODE
