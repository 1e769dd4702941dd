"""Input normalisation of the feature models: uint8 images -> the float input they expect.

Every model sslinv knows was trained on ImageNet-normalised input (``ToTensor`` then
``Normalize(IMAGENET_MEAN, IMAGENET_STD)``). Views are rendered as uint8 and moved to the
device first; this one step does the float work there.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalise:
    """``(x / 255 - mean) / std`` of a uint8 batch (b, 3, H, W), folded into one step."""

    def __init__(self, device: torch.device, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std
