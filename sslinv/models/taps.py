"""Feature taps: one ResNet layer, globally average-pooled (fusions: ``models.fusion``).

``FeatureModel(backbone, "backbone")`` is the reference's ``fc = Identity`` model (the
pooled output of layer4); ``layer1``..``layer4`` pool that stage's output instead and do
not run the stages after it. Eval mode and ``torch.no_grad`` are the caller's job.
Every feature model takes uint8 (or 0..255 float) images and normalises them itself
(``preprocessing``: ImageNet mean/std for ResNets); ViTs are in ``sslinv.models.vit``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslinv.errors import UsageError
from sslinv.models.preprocess import IMAGENET, Normalize
from sslinv.models.resnet import STAGES
from sslinv.models.zoo import LAYERS, check_layer

__all__ = ["FeatureModel", "LAYERS", "stage_dim"]


def stage_dim(stage: nn.Module) -> int:
    """Output channels of a ResNet stage (an ``nn.Sequential`` of Basic/Bottleneck blocks)."""
    last = list(stage.children())[-1]
    bn = getattr(last, "bn3", None) or getattr(last, "bn2", None)
    if not isinstance(bn, nn.BatchNorm2d):
        raise UsageError(
            f"Cannot read the output width of {type(last).__name__}: not a ResNet block."
        )
    return bn.num_features


class FeatureModel(nn.Module):
    """The globally average-pooled output of ``layer`` of a torchvision-keyed ResNet."""

    #: Feature layers a ResNet has (``--feature-layer``).
    layers = ("backbone", *STAGES)

    def __init__(self, backbone: nn.Module, layer: str = "backbone") -> None:
        super().__init__()
        check_layer(layer, self.layers, "a ResNet")
        self.preprocessing = IMAGENET
        self.normalize = Normalize(IMAGENET.mean, IMAGENET.std)
        self.backbone = backbone
        self.layer = layer
        last = "layer4" if layer == "backbone" else layer
        self._stages = STAGES[: STAGES.index(last) + 1]
        self.dim = stage_dim(getattr(backbone, last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = self.normalize(x)
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        for name in self._stages:  # later stages are never run
            x = getattr(b, name)(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, dim={self.dim}"
