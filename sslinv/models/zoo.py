"""The model zoo: what a user can type after ``--model``, as frozen records.

This module does not import torch, so shell completion and ``--help`` can list the model
names, feature layers and fusion modes at once (``model_names()``, ``LAYERS``,
``FUSE_MODES``). Building a model from a record is ``sslinv.models.load``'s job.

Remote artifacts are data: each record carries what the loaders, the error messages
and the tests need (kind, architecture, url, hash). Kinds:

- ``random``: a seeded random initialisation of ``arch`` (identical on every call);
- ``download``: public weights fetched once into ``<cache>/weights/<filename>``;
- ``checkpoint``: the paper's MoCo v2 models, read from
  ``<cache>/checkpoints/<name>.pth.tar`` (copied there, or written by
  ``sslinv pretrain --model NAME``). Any other ``<cache>/checkpoints/<name>.pth.tar``
  is also loadable by its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslinv.errors import UnknownNameError
from sslinv.paths import checkpoints_dir
from sslinv.registry import Registry, did_you_mean

__all__ = [
    "FUSE_MODES",
    "LAYERS",
    "MODELS",
    "ModelRecord",
    "check_fuse",
    "check_layer",
    "checkpoint_names",
    "model_names",
]

# Feature layers: ``backbone`` is the pooled output of layer4 (the paper's features).
LAYERS = ("backbone", "layer1", "layer2", "layer3", "layer4")
# How the members of ``a+b`` are combined: concatenate, sum, or average the features.
FUSE_MODES = ("cat", "add", "mean")
CHECKPOINT_SUFFIX = ".pth.tar"


@dataclass(frozen=True)
class ModelRecord:
    """One named model. ``arch`` is what the paper's model is; a checkpoint file's own
    architecture is always read from the file (a mismatch gives a warning)."""

    name: str
    kind: str  # "random" | "download" | "checkpoint"
    arch: str
    description: str
    url: str | None = None
    filename: str | None = None  # under <cache>/weights (kind "download")
    hash_prefix: str | None = None  # first hex digits of the file's sha256
    sha256: str | None = None  # the full sha256, once confirmed
    seed: int | None = None  # kind "random"


MODELS: Registry[ModelRecord] = Registry("model")


def _add(record: ModelRecord) -> None:
    MODELS.register(record.name, record)


_add(ModelRecord("random", "random", "resnet50", "randomly initialised ResNet-50 (seed 0)", seed=0))
_add(ModelRecord(
    "random-resnet18", "random", "resnet18", "randomly initialised ResNet-18 (seed 0)", seed=0
))
_add(ModelRecord(
    "random-tiny", "random", "resnet_tiny",
    "randomly initialised tiny ResNet (seed 0; 128-d): the fast demo/quickstart model", seed=0,
))
_add(ModelRecord(
    "supervised", "download", "resnet50",
    "torchvision ResNet-50 trained with ImageNet labels (IMAGENET1K_V1)",
    url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
    filename="resnet50-0676ba61.pth",
    hash_prefix="0676ba61",
))
for _name, _arch, _what in (
    ("default", "resnet50", "MoCo v2 ResNet-50 trained with the default MoCo v2 augmentations"),
    ("ventral", "resnet50", "MoCo v2 ResNet-50 trained with the paper's 'ventral' augmentations"),
    ("dorsal", "resnet50", "MoCo v2 ResNet-50 trained with the paper's 'dorsal' augmentations"),
    ("default_w3", "resnet50w3", "MoCo v2 ResNet-50 (3x width) with the default augmentations"),
):
    _add(ModelRecord(_name, "checkpoint", _arch, f"{_what} (the paper's model)"))


def model_names() -> list[str]:
    """Every registered model name (no torch import: safe for shell completion)."""
    return MODELS.names()


def checkpoint_names(cache: Path) -> list[str]:
    """Names of the checkpoint files in ``<cache>/checkpoints`` (loadable by name)."""
    folder = checkpoints_dir(Path(cache))
    if not folder.is_dir():
        return []
    return sorted(
        p.name[: -len(CHECKPOINT_SUFFIX)]
        for p in folder.iterdir()
        if p.name.endswith(CHECKPOINT_SUFFIX) and not p.name.startswith(".") and p.is_file()
    )


def check_layer(layer: str) -> str:
    if layer not in LAYERS:
        raise UnknownNameError(
            f"Unknown feature layer {layer!r}.{did_you_mean(layer, list(LAYERS))} "
            f"Known: {', '.join(LAYERS)}."
        )
    return layer


def check_fuse(mode: str) -> str:
    if mode not in FUSE_MODES:
        raise UnknownNameError(
            f"Unknown fusion mode {mode!r}.{did_you_mean(mode, list(FUSE_MODES))} "
            f"Known: {', '.join(FUSE_MODES)}."
        )
    return mode
