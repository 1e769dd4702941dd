"""Input normalisation owned by the feature model (after timm's ``pretrained_cfg``).

Views are rendered once as uint8 tensors at the protocol's size; every feature model
(every member of a fusion) normalises its own input inside its ``forward`` with the mean
and std its weights were trained with. ResNets use the ImageNet constants, folded into
one step exactly as the extractor did before (``(x - 255 mean) / (255 std)`` on the
0..255 float input, on the device), so their numbers do not change. CLIP models carry OpenAI's own
constants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGENET", "IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "Preprocessing"]

#: ImageNet's normalisation (``ToTensor`` then ``Normalize(IMAGENET_MEAN, IMAGENET_STD)``):
#: every ResNet sslinv knows was trained on it.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: OpenAI CLIP's normalisation (openai/CLIP clip/clip.py; open_clip constants).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects of its input: normalisation and its native input size."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224  # the square side the weights were trained at
    interpolation: str = "bilinear"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_timm_cfg(cls, cfg: dict, default: Preprocessing | None = None) -> Preprocessing:
        """From a timm ``pretrained_cfg`` (mean, std, input_size, interpolation)."""
        base = default or IMAGENET
        size = cfg.get("input_size") or (3, base.input_size, base.input_size)
        return cls(
            mean=tuple(float(v) for v in cfg.get("mean", base.mean)),
            std=tuple(float(v) for v in cfg.get("std", base.std)),
            input_size=int(size[-1]),
            interpolation=str(cfg.get("interpolation") or base.interpolation),
        )


IMAGENET = Preprocessing()


class Normalize(nn.Module):
    """``(x / 255 - mean) / std`` for uint8 or 0..255 float images, as one step."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        # Not part of the state dict: the constants belong to the code, not the weights.
        self.register_buffer("mean", torch.tensor(tuple(mean)).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std)).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = x.float()
        return (x - self.mean) / self.std
