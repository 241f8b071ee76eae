"""`distill`: a smaller student trained on the teacher's outputs over simulator rollouts, DAgger style.

The student starts as the teacher with `width` of its channels kept (`prune --method channels`, no
fine-tune: the shrunk layers, the teacher's strongest filters as a warm start), or as a given model
file. The rollouts need the simulator, which lives in vla_sim (vla_sim depends on vla_edge, never the
reverse), so the training runs as `python -m vla_sim.distill` in a subprocess; it writes the result
through this package's all-or-nothing writer, with the teacher as parent.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from vla_edge.optimize.lineage import OptimizeError, check_output, read_source
from vla_edge.optimize.prune import prune
from vla_edge.spec import FORMAT_TORCHSCRIPT

# The measured recipe (docs/benchmarks.md, optimisation): 2 DAgger rounds of 25 episodes after the
# teacher-driven one, 8 epochs after each, about 2.5 min on one thread.
DISTILL_ROUNDS = 2
DISTILL_EPISODES = 25
DISTILL_EPOCHS = 8


def distill(teacher: str | Path, output: str | Path, width: float = 0.5, student: str | Path | None = None,
            rounds: int = DISTILL_ROUNDS, episodes: int = DISTILL_EPISODES, epochs: int = DISTILL_EPOCHS,
            timeout_s: float = 7200.0) -> str:
    """Runs the distillation; returns the last line vla_sim.distill printed."""
    source = read_source(teacher)
    out = check_output(output, FORMAT_TORCHSCRIPT, source)
    if source.spec.model_format != FORMAT_TORCHSCRIPT:
        raise OptimizeError(f"distill trains TorchScript students from a TorchScript teacher; {source.path.name} "
                            f"is {source.spec.model_format}")
    with tempfile.TemporaryDirectory(prefix="vla_distill_") as tmp:
        if student is None:
            if not 0.0 < width < 1.0:
                raise OptimizeError(f"--width {width} must be a fraction in (0, 1)")
            student = Path(tmp) / "student.pt"
            prune(source.path, student, "channels", 1.0 - width, None, epochs=0)
        cmd = [sys.executable, "-m", "vla_sim.distill", "--teacher", str(source.path), "--student", str(student),
               "--out", str(out), "--rounds", str(rounds), "--episodes", str(episodes), "--epochs", str(epochs)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OptimizeError(f"python -m vla_sim.distill failed ({proc.returncode}): {tail}")
    return proc.stdout.strip().splitlines()[-1]
