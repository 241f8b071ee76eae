"""Sources and outputs of the toolkit: the checked input model, the derived sidecar (version, sha256,
parent and its sha256, method, measured figures) and the all-or-nothing write of model + sidecar.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vla_edge.policy import PolicyLoadError, load_policy
from vla_edge.spec import FORMAT_ONNX, FORMAT_TORCHSCRIPT, PolicySpec, sha256_file, sidecar_path

SUFFIXES = {FORMAT_TORCHSCRIPT: ".pt", FORMAT_ONNX: ".onnx"}


class OptimizeError(RuntimeError):
    """A command cannot run on this input: the message says what and where; nothing was written."""


@dataclass(frozen=True)
class Source:
    """An input model that passed every check of the runtime (sidecar, sha256, signature, warm-up)."""

    path: Path
    sidecar: dict
    spec: PolicySpec
    sha256: str


def read_source(path: str | Path) -> Source:
    """Loads the model exactly as the robot would; a contract breach or a sha256 mismatch is an OptimizeError."""
    model = Path(path).expanduser().resolve()
    try:
        policy = load_policy(model, device="cpu", warmup_runs=1)
    except PolicyLoadError as exc:
        raise OptimizeError(f"input refused: {exc}") from exc
    doc = json.loads(sidecar_path(model).read_text(encoding="utf-8"))
    return Source(path=model, sidecar=doc, spec=policy.spec, sha256=policy.spec.sha256)


def check_output(path: str | Path, model_format: str, source: Source | None = None) -> Path:
    """The output path, refused when it (or its sidecar) exists, is the input, or has the wrong suffix."""
    out = Path(path).expanduser().resolve()
    want = SUFFIXES[model_format]
    if out.suffix != want:
        raise OptimizeError(f"output {out} must end {want} for a {model_format} model")
    for p in (out, sidecar_path(out)):
        if p.exists():
            raise OptimizeError(f"output {p} exists; the toolkit never overwrites a model or a sidecar")
    if source is not None and out == source.path:
        raise OptimizeError(f"output {out} is the input model")
    if not out.parent.is_dir():
        raise OptimizeError(f"output directory {out.parent} does not exist")
    return out


def next_version(parent_version: str, method: str) -> str:
    """The parent's version with the method as a semver build tag: 2.0.0 → 2.0.0+onnx-fp32."""
    return f"{parent_version}+{method}" if "+" not in parent_version else f"{parent_version}.{method}"


def derived_sidecar(source: Source, out: Path, sha256: str, model_format: str, method: str,
                    details: dict, measured: dict) -> dict:
    """The child's sidecar: the parent's contract (input, action, chunk), a new identity and the lineage."""
    doc = copy.deepcopy(source.sidecar)
    # A parent's evaluation and training record describe the parent, not this file.
    doc.pop("evaluation", None)
    parent_training = doc.pop("training", None)
    lineage = list(doc.pop("lineage", []))
    lineage.append({"name": source.spec.name, "version": source.spec.version, "file": source.path.name,
                    "sha256": source.sha256})
    doc.update({
        "version": next_version(source.spec.version, method),
        "sha256": sha256,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "format": model_format,
        "framework": "onnxruntime" if model_format == FORMAT_ONNX else "torchscript",
        "file": out.name,
        "parent": {"name": source.spec.name, "version": source.spec.version, "file": source.path.name,
                   "path": os.path.relpath(source.path, out.parent), "sha256": source.sha256},
        "lineage": lineage,
        "optimization": {"method": method, **details, "measured": measured},
    })
    if parent_training is not None:
        doc["parent_training"] = {k: parent_training[k] for k in ("method", "command") if k in parent_training}
    return doc


def write_model(out: Path, write: Callable[[Path], None], sidecar_for: Callable[[str, dict], dict],
                verify: Callable[[Path], dict]) -> dict:
    """Writes model + sidecar all or nothing. `write(tmp_model)` fills a file in a private directory
    beside `out`; with a first sidecar (`sidecar_for(sha256, {})`) the pair must load through
    `load_policy`; `verify(tmp_model)` checks it and returns the measured figures, which go into the
    final sidecar; only then both files move into place. Returns the sidecar."""
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        tmp_model = tmp_dir / out.name
        write(tmp_model)
        sha = sha256_file(tmp_model)
        side = sidecar_path(tmp_model)
        side.write_text(json.dumps(sidecar_for(sha, {}), indent=2) + "\n", encoding="utf-8")
        try:
            load_policy(tmp_model, device="cpu", warmup_runs=1)
        except PolicyLoadError as exc:
            raise OptimizeError(f"the written model does not load as a policy: {exc}") from exc
        doc = sidecar_for(sha, verify(tmp_model))
        side.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        for p in (out, sidecar_path(out)):
            if p.exists():  # appeared while this command ran
                raise OptimizeError(f"output {p} appeared meanwhile; nothing written")
        tmp_model.rename(out)
        side.rename(sidecar_path(out))
        return doc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def lineage_of(path: str | Path, max_depth: int = 32) -> list[dict]:
    """The chain from a model back to its root, newest first, followed through each sidecar's `parent`
    (its `path` is relative to the child's directory): name, version, file, sha256, and whether the
    file was found and matches the sha256 its child recorded."""
    model = Path(path).expanduser().resolve()
    recorded = None
    chain = []
    for _ in range(max_depth):
        side = sidecar_path(model)
        doc = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
        want = recorded or doc.get("sha256")
        chain.append({"name": doc.get("name"), "version": doc.get("version"), "file": str(model),
                      "sha256": want, "verified": model.is_file() and want is not None and sha256_file(model) == want})
        parent = doc.get("parent")
        if not parent:
            break
        model = (model.parent / parent.get("path", parent["file"])).resolve()
        recorded = parent["sha256"]
    return chain
