"""A tiny deterministic feature model and image dataset for extraction tests (no files).

Item ``j`` is ``(j, uint8 image)`` whose pixel ``[1, 0, 0]`` holds ``j``; the model gives
NaN features for the items named in ``bad``, so a test can place a non-finite batch
on any rank.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


class Items(Dataset):
    def __init__(self, n: int, size: int = 8):
        self.n, self.size = n, size
        self.files = [f"img{j}.png" for j in range(n)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, j: int):
        g = torch.Generator().manual_seed(j)
        x = torch.randint(0, 256, (3, self.size, self.size), generator=g, dtype=torch.uint8)
        x[1, 0, 0] = j
        return j, x


class Net(nn.Module):
    """Conv, ReLU, global pooling: 8-d features; NaN rows for the marked items."""

    def __init__(self, bad: tuple[int, ...] = ()):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3)
        self.bad = bad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        marks = x[:, 1, 0, 0].round()
        out = torch.relu(self.conv(x / 255)).mean(dim=(2, 3))
        for b in self.bad:
            out = torch.where((marks == b)[:, None], torch.full_like(out, float("nan")), out)
        return out
