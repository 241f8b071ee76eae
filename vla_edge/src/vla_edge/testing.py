"""Small TorchScript policies with sidecars, for tests and benchmarks (never for the robot).

`python -m vla_edge.testing KIND [DIR]` writes one and prints its path without a newline, so a
launch file can use it as `<param name="model_path" command="python3 -m vla_edge.testing nan"/>`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from vla_edge.spec import FEATURE_DIM, sha256_file
from vla_msgs.names import ACTION_NAMES

KINDS = ("image", "features", "nan", "corrupt", "mismatch", "wrong_form", "conv")
LIMITS = [[-0.8, 0.8], [-0.4, 0.4], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [-1.0, 1.0]]


class _ImagePolicy(torch.nn.Module):
    """Drives forward at a speed that follows the image's brightness; turns with the language's first value."""

    def __init__(self, chunk: int):
        super().__init__()
        self.chunk = chunk

    def forward(self, image: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        b = image.shape[0]
        out = torch.zeros(b, self.chunk, 6)
        out[:, :, 0] = 0.1 + image.mean(dim=(1, 2, 3)).unsqueeze(1)
        out[:, :, 5] = language[:, 0].unsqueeze(1)
        return out


class _ConvPolicy(torch.nn.Module):
    """A small seeded CNN with FiLM language conditioning and a linear head on the pooled map: the layer
    types and wiring of the reference policy that the optimisation toolkit works on, at a size a unit
    test runs in milliseconds."""

    def __init__(self, chunk: int, language_dim: int = 32):
        super().__init__()
        torch.manual_seed(0)
        self.chunk = chunk
        self.conv1 = torch.nn.Conv2d(3, 8, 5, stride=4, padding=2)
        self.film1 = torch.nn.Linear(language_dim, 2 * 8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d((4, 4))
        self.head = torch.nn.Linear(16 * 4 * 4, chunk * 6)

    def forward(self, image: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film1(language).chunk(2, dim=-1)
        x = torch.relu(self.conv1(image - 0.5)) * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]
        x = torch.relu(self.conv2(x))
        return 0.5 * torch.tanh(self.head(self.pool(x).flatten(1))).view(image.shape[0], self.chunk, 6)


class _NanPolicy(torch.nn.Module):
    def __init__(self, chunk: int):
        super().__init__()
        self.chunk = chunk

    def forward(self, image: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        return torch.full((image.shape[0], self.chunk, 6), float("nan")) + image.mean() * 0.0


class _FeaturePolicy(torch.nn.Module):
    """The seed's form: two 512-d feature vectors to one action."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Linear(2 * FEATURE_DIM, 6)

    def forward(self, vision_features: torch.Tensor, language_features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(torch.cat([vision_features, language_features], dim=1)))


def sidecar(model: Path, form: str, chunk: int, version: str = "test-1", encoder: str = "hash") -> dict:
    doc = {
        "name": f"test-{form}", "version": version, "sha256": sha256_file(model), "chunk_length": chunk,
        "action": {"names": list(ACTION_NAMES), "units": ["m/s"] * 3 + ["rad/s"] * 3, "limits": LIMITS},
    }
    if form == "features":
        doc["input"] = {"form": "features", "vision_features": {"shape": [FEATURE_DIM]},
                        "language_features": {"shape": [FEATURE_DIM]}, "language": {"encoder": encoder}}
    else:
        doc["input"] = {"form": "image_language", "image": {"shape": [3, 96, 96], "range": [0, 1]},
                        "language": {"dim": 384 if encoder != "hash" else 32, "encoder": encoder}}
    return doc


def write_policy(kind: str, directory: Path, chunk: int = 5, version: str = "test-1") -> Path:
    """Writes a model of the given kind and its sidecar into directory; returns the model path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}_policy.pt"
    form = "features" if kind == "features" else "image"
    if kind == "features":
        module, chunk = _FeaturePolicy(), 1
    elif kind == "nan":
        module = _NanPolicy(chunk)
    elif kind == "conv":
        module = _ConvPolicy(chunk)
    else:
        module = _ImagePolicy(chunk)
    torch.jit.save(torch.jit.script(module), str(path))
    doc = sidecar(path, form, chunk, version)
    if kind == "wrong_form":
        doc = sidecar(path, "features", chunk, version)
    if kind == "corrupt":  # bytes garbled after publishing: the checksum in the sidecar matches the garbage
        path.write_bytes(b"PK\x03\x04 this is not a TorchScript archive" * 64)
        doc["sha256"] = sha256_file(path)
    if kind == "mismatch":
        doc["sha256"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    return path


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in KINDS:
        sys.stderr.write(f"usage: python -m vla_edge.testing {{{','.join(KINDS)}}} [DIR]\n")
        return 2
    directory = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="vla_edge_test_"))
    sys.stdout.write(str(write_policy(argv[0], directory)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
