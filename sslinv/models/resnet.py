"""ResNet architectures, all with torchvision's state-dict keys, without torchvision.

Every architecture here produces ``conv1, bn1, layer1..layer4, fc`` keys exactly as
torchvision's ResNets do, so one checkpoint loader serves them all and a checkpoint's
architecture can be read from its tensor shapes (see ``checkpoints.py``).

The blocks are our own, written to torchvision's published layout (He et al. 2016,
with the stride on the Bottleneck's 3x3 conv, "ResNet v1.5"): the same submodule names
in the same registration order, the same initialisation and the same forward
arithmetic, so a ``resnet50`` built here after ``torch.manual_seed(s)`` has the very
tensors of ``torchvision.models.resnet50(weights=None)`` and the very outputs
(``tests/test_resnet_arch.py`` checks both). Importing torchvision would cost every
evaluation command about a second of start-up (it pulls in ``torch._dynamo``).

``resnet50w3`` is the paper's "ResNet-50 with 3x width": unlike torchvision's
``wide_resnet50_2`` (which widens only the bottleneck), every channel count is
multiplied, stem included, so the pooled feature is 512 * 3 * 4 = 6144-d. This is the
widening SwAV uses for its ResNet-50w2/w4/w5 (the idea, not its code).

``resnet_tiny`` is a registered test/demo backbone (BasicBlock, one block per stage,
widths 16/32/64/128 -> 128-d features), fast on a CPU; tests and the quickstart use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from sslinv.registry import Registry

STAGES = ("layer1", "layer2", "layer3", "layer4")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


# Attribute names and their order of assignment are part of the contract: they fix
# the state-dict keys and their order, and the order in which construction draws from
# the global RNG (each Conv2d draws at construction, before ResNet re-initialises it).


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut (ResNet-18/34); the first conv carries the stride."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride: "v1.5"), 1x1 expand by 4, plus a shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock, "bottleneck": Bottleneck,
}


class ResNet(nn.Module):
    """A ResNet whose every channel count is ``base_width * widen`` times (1, 2, 4, 8).

    ``base_width=64, widen=1`` with Bottleneck blocks [3, 4, 6, 3] is torchvision's
    ResNet-50 (same keys, shapes and initialisation); ``widen=3`` is ResNet-50w3.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int] | list[int],
        widen: int = 1,
        base_width: int = 64,
        num_classes: int = 1000,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        stem = base_width * widen
        self.inplanes = stem
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, stem, layers[0])
        self.layer2 = self._make_layer(block, stem * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, stem * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, stem * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(stem * 8 * block.expansion, num_classes)

        # The same initialisation as torchvision's ResNet. Skipped for a skeleton built on
        # the meta device (for its shapes, or to load weights into): there it would only
        # import torch._dynamo (about a second), which meta ``normal_`` needs.
        if self.conv1.weight.is_meta:
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        # The Bottleneck's inner width is ``planes`` at every widening (the "every
        # channel x3" definition; torchvision's wide_resnet widens only this width).
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@dataclass(frozen=True)
class Arch:
    """One registered architecture: a constructor plus the facts read from its shapes.

    ``signature`` (block type, blocks per stage, conv1 channels, layer1 inner width) is
    what ``checkpoints.infer_arch`` compares with a checkpoint's tensor shapes.
    """

    name: str
    block: str  # "basic" or "bottleneck"
    layers: tuple[int, int, int, int]
    stem: int  # conv1 output channels
    inner: int  # layer1.0.conv1 output channels (tells wide variants apart)
    build_fn: Callable[[], nn.Module] = field(repr=False, compare=False)
    description: str = ""

    def __call__(self) -> nn.Module:
        """A freshly initialised network (uses the global RNG; see ``zoo`` for seeding)."""
        return self.build_fn()

    @property
    def dims(self) -> dict[str, int]:
        """Feature dimension per layer: layer1..layer4 and backbone (= pooled layer4)."""
        expansion = BLOCKS[self.block].expansion
        d = {s: self.stem * 2**i * expansion for i, s in enumerate(STAGES)}
        d["backbone"] = d["layer4"]
        return d

    @property
    def signature(self) -> tuple[str, tuple[int, ...], int, int]:
        return (self.block, tuple(self.layers), self.stem, self.inner)


ARCHS: Registry[Arch] = Registry("architecture")


def _register(name, block, layers, stem, inner, build_fn, description):
    ARCHS.register(name, Arch(name, block, tuple(layers), stem, inner, build_fn, description))


_register("resnet18", "basic", (2, 2, 2, 2), 64, 64,
          lambda: ResNet(BasicBlock, (2, 2, 2, 2)), "ResNet-18 (512-d), torchvision's layout")
_register("resnet34", "basic", (3, 4, 6, 3), 64, 64,
          lambda: ResNet(BasicBlock, (3, 4, 6, 3)), "ResNet-34 (512-d), torchvision's layout")
_register("resnet50", "bottleneck", (3, 4, 6, 3), 64, 64,
          lambda: ResNet(Bottleneck, (3, 4, 6, 3)), "ResNet-50 (2048-d), torchvision's layout")
_register("resnet101", "bottleneck", (3, 4, 23, 3), 64, 64,
          lambda: ResNet(Bottleneck, (3, 4, 23, 3)), "ResNet-101 (2048-d), torchvision's layout")
_register("resnet152", "bottleneck", (3, 8, 36, 3), 64, 64,
          lambda: ResNet(Bottleneck, (3, 8, 36, 3)), "ResNet-152 (2048-d), torchvision's layout")
_register("resnet50w3", "bottleneck", (3, 4, 6, 3), 192, 192,
          lambda: ResNet(Bottleneck, (3, 4, 6, 3), widen=3),
          "ResNet-50 with every channel count x3 (6144-d), as the paper's default_w3")
_register("resnet_tiny", "basic", (1, 1, 1, 1), 16, 16,
          lambda: ResNet(BasicBlock, (1, 1, 1, 1), base_width=16),
          "tiny test/demo ResNet: BasicBlock, one block per stage, widths 16-128 (128-d)")
