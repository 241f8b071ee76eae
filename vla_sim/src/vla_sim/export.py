"""Re-exports the reference policy from its eager network (`VlaPolicyNet`), scripted or traced, each checked
against the eager outputs: the TorchScript side of `vla_edge.optimize export` that needs the Python class.

    python -m vla_sim.export --mode scripted|traced --out OUT.pt [--model M.pt] [--calibration C.npz]

The eager network takes the weights of a contract file of its architecture (default: the shipped
reference policy); `torch.jit.trace` of a TorchScript module would only wrap it, so a real trace starts
from here. The output goes through vla_edge.optimize's all-or-nothing writer with the file as parent.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

from vla_edge.optimize.export import TORCHSCRIPT_TOLERANCE, checked, torch_module
from vla_edge.optimize.inputs import check_inputs
from vla_edge.optimize.lineage import OptimizeError, check_output, derived_sidecar, read_source, write_model
from vla_edge.spec import FORMAT_TORCHSCRIPT
from vla_sim import resources
from vla_sim.policy import VlaPolicyNet

MODES = ("scripted", "traced")


def export(model: Path, output: Path, mode: str, calibration: Path | None = None) -> dict:
    source = read_source(model)
    out = check_output(output, FORMAT_TORCHSCRIPT, source)
    obs = check_inputs(source.spec, calibration)
    eager = VlaPolicyNet(chunk_length=source.spec.chunk_length, language_dim=source.spec.language_dim)
    try:
        eager.load_state_dict(torch_module(source).state_dict())
    except RuntimeError as exc:
        raise OptimizeError(f"{source.path.name} is not a VlaPolicyNet: {str(exc).splitlines()[0]}") from exc
    eager.eval()
    vision, language = torch.from_numpy(obs.vision.copy()), torch.from_numpy(obs.language.copy())
    with torch.no_grad():
        if mode == "traced":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarnings on shape arithmetic; the check below decides
                built = torch.jit.trace(eager, (vision[:1], language[:1]))
        else:
            built = torch.jit.script(eager)
        gap = float((built(vision, language) - eager(vision, language)).abs().max())
    if not gap <= TORCHSCRIPT_TOLERANCE:
        raise OptimizeError(f"{mode} module differs from the eager network by {gap:.3g}; nothing written")
    details = {"from": "vla_sim.policy.VlaPolicyNet (eager)", "max_abs_diff_to_eager": gap,
               "tool": f"torch.jit.{'trace' if mode == 'traced' else 'script'} {torch.__version__}"}

    def sidecar(sha: str, measured: dict) -> dict:
        return derived_sidecar(source, out, sha, FORMAT_TORCHSCRIPT, f"torchscript-{mode}", details, measured)

    return write_model(out, lambda p: built.save(str(p)), sidecar, checked(source, TORCHSCRIPT_TOLERANCE, obs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped reference policy")
    parser.add_argument("--calibration", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        doc = export(args.model or resources.model_path(), args.out, args.mode, args.calibration)
    except OptimizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (torchscript-{args.mode}, version {doc['version']}, sha256 {doc['sha256'][:12]}…): "
          f"|difference| to eager {doc['optimization']['max_abs_diff_to_eager']:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
