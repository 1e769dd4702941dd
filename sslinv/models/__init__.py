"""Backbones, checkpoint formats, the model zoo and feature fusion.

``load_model(spec, cache, layer, fuse)`` is the entry point. Names are resolved lazily
(PEP 562), so ``from sslinv.models import model_names`` (or importing
``sslinv.models.zoo``) lists the zoo without importing torch.

Modules: ``resnet`` (architectures: ``ARCHS``), ``taps`` (``FeatureModel``: one layer,
pooled), ``fusion`` (``a+b+c``: ``load_members``, ``fuse``, ``FusedModel``,
``load_model``), ``checkpoints`` (layouts: ``load_checkpoint``, ``save_moco_checkpoint``),
``zoo`` (records: ``MODELS``, torch-free), ``load`` (one member by name, path or
``timm:<name>``; zoo downloads), ``preprocess`` (each model's own input normalisation);
ViTs through timm: ``vit`` (``ViTFeatures``, architecture from the tensors),
``layouts_vit`` (DINO, DINOv2, MAE, DeiT, MoCo v3, iBOT layouts), ``hub`` (``timm:<name>``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ARCHS": "resnet",
    "Arch": "resnet",
    "ResNet": "resnet",
    "STAGES": "resnet",
    "FeatureModel": "taps",
    "FusedModel": "fusion",
    "fuse": "fusion",
    "load_members": "fusion",
    "ViTFeatures": "vit",
    "Preprocessing": "preprocess",
    "LoadedCheckpoint": "checkpoints",
    "build_backbone": "checkpoints",
    "infer_arch": "checkpoints",
    "load_checkpoint": "checkpoints",
    "save_moco_checkpoint": "checkpoints",
    "FUSE_MODES": "zoo",
    "LAYERS": "zoo",
    "MODELS": "zoo",
    "ModelRecord": "zoo",
    "checkpoint_names": "zoo",
    "model_names": "zoo",
    "load_model": "fusion",
    "random_backbone": "load",
    "state_dict_sha256": "load",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
