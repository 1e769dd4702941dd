"""The model zoo: what a user can type after ``--model``, as frozen records.

This module does not import torch, so shell completion and ``--help`` can list the model
names, feature layers and fusion modes at once (``model_names()``, ``LAYERS``,
``FUSE_MODES``). Building a model from a record is ``sslinv.models.load``'s job.

Remote artifacts are data: each record carries what the loaders, the error messages
and the tests need (kind, architecture, url, hash). Kinds:

- ``random``: a seeded random initialisation of ``arch`` (identical on every call);
- ``download``: public weights (the zoo of published ResNet-50s: torchvision supervised,
  MoCo v1/v2, SwAV, DeepCluster-v2, SeLa-v2, InfoMin, InsDis, PIRL, PCL v1/v2, Barlow
  Twins, DINO, VICReg; and ViTs: DINO, DINOv2 with and without registers, MAE, MoCo v3,
  DeiT), fetched on first use (or with ``sslinv fetch-data --model NAME``)
  into ``<cache>/weights/<filename>``, verified, and converted once to a plain backbone
  state dict ``<cache>/weights/<name>.backbone.pth`` with the source URL and sha256
  recorded beside it (``sslinv.models.load.fetch_weights``);
- ``checkpoint``: the paper's MoCo v2 models, read from
  ``<cache>/checkpoints/<name>.pth.tar`` (copied there, or written by
  ``sslinv pretrain --model NAME``). Any other ``<cache>/checkpoints/<name>.pth.tar``
  is also loadable by its name.

Published models that need a framework sslinv does not depend on are listed in
``UNSUPPORTED`` with the reason (``--model simclr-v1`` explains it), not half-supported.
Facts (URLs, key prefixes, published hash prefixes) are from ``shared/spec/models.md``:
the ssl-transfer download script, the MoCo README (md5 prefixes), torch hub
configurations (sha256 prefixes in file names).
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
    "UNSUPPORTED",
    "VIT_LAYERS",
    "ModelRecord",
    "check_fuse",
    "check_layer",
    "checkpoint_names",
    "model_names",
]

# Feature layers: ``backbone`` is the pooled output of layer4 (the paper's features).
LAYERS = ("backbone", "layer1", "layer2", "layer3", "layer4")
# ViT taps (``sslinv.models.vit``): ``backbone`` is the final-norm CLS token; ``blocks.N``
# the CLS token of block N (0-based) through the final norm; ``patch-mean`` the mean of
# the final-norm patch tokens.
VIT_LAYERS = ("backbone", "patch-mean", "blocks.N")
# How the members of ``a+b`` are combined: concatenate, sum, or average the features.
FUSE_MODES = ("cat", "add", "mean")
CHECKPOINT_SUFFIX = ".pth.tar"
#: ``--model timm:<name>[.<tag>]``: a timm model with its weights from the Hugging Face hub.
HUB_PREFIX = "timm:"


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
    md5_prefix: str | None = None  # first hex digits of the file's md5 (MoCo README)
    key_prefix: str | None = None  # state-dict prefix of the backbone (found automatically)
    source: str = ""  # where the facts come from

    @property
    def checksums(self) -> dict[str, str]:
        """Published digests (full or prefix) by algorithm."""
        out = {"sha256": self.sha256 or self.hash_prefix, "md5": self.md5_prefix}
        return {k: v for k, v in out.items() if v}


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

_FB = "https://dl.fbaipublicfiles.com"
_DROPBOX = "https://www.dropbox.com/sh/87d24jqsl6ra7t2"
_PCL = "https://storage.googleapis.com/sfr-pcl-data-research/PCL_checkpoint"
_SSL_TRANSFER = "linusericsson/ssl-transfer download_and_prepare_models.py"
# (name, description, url, file name under <cache>/weights, extra fields)
_ZOO: tuple[tuple[str, str, str, str, dict], ...] = (
    ("moco-v1", "MoCo v1 ResNet-50, 200 epochs (linear top-1 60.6)",
     f"{_FB}/moco/moco_checkpoints/moco_v1_200ep/moco_v1_200ep_pretrain.pth.tar", "moco_v1_200ep_pretrain.pth.tar",
     {"md5_prefix": "b251726a", "key_prefix": "module.encoder_q.", "source": "ssl-transfer; MoCo README (md5)"}),
    ("moco-v2", "MoCo v2 ResNet-50, 800 epochs (linear top-1 71.1)",
     f"{_FB}/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar", "moco_v2_800ep_pretrain.pth.tar",
     {"md5_prefix": "a04e12f8", "key_prefix": "module.encoder_q.", "source": "ssl-transfer; MoCo README (md5)"}),
    ("moco-v2-200ep", "MoCo v2 ResNet-50, 200 epochs (67.7): the recipe of the paper's own models",
     f"{_FB}/moco/moco_checkpoints/moco_v2_200ep/moco_v2_200ep_pretrain.pth.tar", "moco_v2_200ep_pretrain.pth.tar",
     {"md5_prefix": "59fd9945", "key_prefix": "module.encoder_q.", "source": "MoCo README (URL, md5)"}),
    ("swav", "SwAV ResNet-50, 800 epochs",
     f"{_FB}/deepcluster/swav_800ep_pretrain.pth.tar", "swav_800ep_pretrain.pth.tar",
     {"key_prefix": "module.", "source": _SSL_TRANSFER}),
    ("deepcluster-v2", "DeepCluster-v2 ResNet-50, 800 epochs",
     f"{_FB}/deepcluster/deepclusterv2_800ep_pretrain.pth.tar", "deepclusterv2_800ep_pretrain.pth.tar",
     {"key_prefix": "module.", "source": _SSL_TRANSFER}),
    ("sela-v2", "SeLa-v2 ResNet-50, 400 epochs",
     f"{_FB}/deepcluster/selav2_400ep_pretrain.pth.tar", "selav2_400ep_pretrain.pth.tar",
     {"key_prefix": "module.", "source": _SSL_TRANSFER}),
    ("infomin", "InfoMin ResNet-50, 800 epochs (PyContrast)",
     f"{_DROPBOX}/AAAzMTynP3Qc8mIE4XWkgILUa/InfoMin_800.pth?dl=1", "InfoMin_800.pth",
     {"key_prefix": "module.encoder.", "source": _SSL_TRANSFER}),
    ("insdis", "Instance Discrimination ResNet-50 (PyContrast)",
     f"{_DROPBOX}/AACcsSIt1_Njv7GsmsuzZ6Sta/InsDis.pth?dl=1", "InsDis.pth",
     {"key_prefix": "module.encoder.", "source": _SSL_TRANSFER}),
    ("pirl", "PIRL ResNet-50 (PyContrast; the jigsaw stream is dropped)",
     f"{_DROPBOX}/AADN4jKnvTI0U5oT6hTmQZz8a/PIRL.pth?dl=1", "PIRL.pth",
     {"key_prefix": "module.encoder.", "source": _SSL_TRANSFER}),
    ("pcl-v1", "PCL v1 ResNet-50, 200 epochs",
     f"{_PCL}/PCL_v1_epoch200.pth.tar", "PCL_v1_epoch200.pth.tar",
     {"key_prefix": "module.encoder_q.", "source": _SSL_TRANSFER}),
    ("pcl-v2", "PCL v2 ResNet-50, 200 epochs",
     f"{_PCL}/PCL_v2_epoch200.pth.tar", "PCL_v2_epoch200.pth.tar",
     {"key_prefix": "module.encoder_q.", "source": _SSL_TRANSFER}),
    ("barlowtwins", "Barlow Twins ResNet-50, 1000 epochs (backbone only)",
     f"{_FB}/barlowtwins/ep1000_bs2048_lrw0.2_lrb0.0048_lambd0.0051/resnet50.pth", "barlowtwins-resnet50.pth",
     {"hash_prefix": "cf015f40cc", "key_prefix": "",
      "source": "facebookresearch/barlowtwins hubconf.py (URL); a hub cache name (sha256 prefix)"}),
    ("dino-resnet50", "DINO ResNet-50 (backbone only)",
     f"{_FB}/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth", "dino_resnet50_pretrain.pth",
     {"key_prefix": "", "source": "facebookresearch/dino hubconf / README (URL)"}),
    ("vicreg", "VICReg ResNet-50 (backbone only)",
     f"{_FB}/vicreg/resnet50.pth", "vicreg-resnet50.pth",
     {"sha256": "c843e7652491ff2f712734619fd74d85e5e92ac902615665ad3fd50dc6ada591", "key_prefix": "",
      "source": "facebookresearch/vicreg hubconf.py (URL); hub cache name and a weights table (sha256)"}),
)
for _name, _what, _url, _file, _extra in _ZOO:
    _add(ModelRecord(_name, "download", "resnet50", _what, url=_url, filename=_file, **_extra))

# Vision Transformers: the authors' own release files (facts: docs/models.md and the
# authors' READMEs). Architectures are read from the tensors; MoCo v3's head count from
# its arch string. Hashes: MAE's README gives md5 prefixes, DeiT's file names a sha256
# prefix (torch.hub check_hash); DINO, DINOv2 and MoCo v3 publish none, so the sha256 of
# the first download is recorded and later downloads must match it.
_DINO2 = f"{_FB}/dinov2"
_VIT_SOURCE = {
    "dino": "facebookresearch/dino README (URL); no published hash",
    "dinov2": "facebookresearch/dinov2 README, hub/backbones.py (URL); no published hash",
    "mae": "facebookresearch/mae README (URL, md5 prefix)",
    "mocov3": "facebookresearch/moco-v3 CONFIG.md (URL); no published hash",
    "deit": "facebookresearch/deit README (URL); sha256 prefix in the file name",
}
# (name, description, url, file name, arch read from the tensors, extra fields)
_VIT_ZOO: tuple[tuple[str, str, str, str, str, dict], ...] = (
    ("dino-vits16", "DINO ViT-S/16 (teacher backbone)",
     f"{_FB}/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth", "dino_deitsmall16_pretrain.pth",
     "vit-p16-d384-depth12-heads6", {"source": _VIT_SOURCE["dino"]}),
    ("dino-vitb16", "DINO ViT-B/16 (teacher backbone)",
     f"{_FB}/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth", "dino_vitbase16_pretrain.pth",
     "vit-p16-d768-depth12-heads12", {"source": _VIT_SOURCE["dino"]}),
    *(
        (f"dinov2-vit{s}14{'-reg4' if reg else ''}",
         f"DINOv2 ViT-{s.upper()}/14{' with 4 registers' if reg else ''} (LVD-142M)",
         f"{_DINO2}/dinov2_vit{s}14/dinov2_vit{s}14{'_reg4' if reg else ''}_pretrain.pth",
         f"dinov2_vit{s}14{'_reg4' if reg else ''}_pretrain.pth",
         f"vit-p14-d{dim}-depth{depth}-heads{heads}{'-reg4' if reg else ''}-ls",
         {"source": _VIT_SOURCE["dinov2"]})
        for s, dim, depth, heads in (("s", 384, 12, 6), ("b", 768, 12, 12), ("l", 1024, 24, 16))
        for reg in (False, True)
    ),
    ("mae-vitb16", "MAE ViT-B/16 encoder (pre-trained, not fine-tuned)",
     f"{_FB}/mae/pretrain/mae_pretrain_vit_base.pth", "mae_pretrain_vit_base.pth",
     "vit-p16-d768-depth12-heads12", {"md5_prefix": "8cad7c", "source": _VIT_SOURCE["mae"]}),
    ("mae-vitl16", "MAE ViT-L/16 encoder (pre-trained, not fine-tuned)",
     f"{_FB}/mae/pretrain/mae_pretrain_vit_large.pth", "mae_pretrain_vit_large.pth",
     "vit-p16-d1024-depth24-heads16", {"md5_prefix": "b8b06e", "source": _VIT_SOURCE["mae"]}),
    ("mocov3-vits", "MoCo v3 ViT-S/16, 300 epochs (12 heads of 32)",
     f"{_FB}/moco-v3/vit-s-300ep/vit-s-300ep.pth.tar", "vit-s-300ep.pth.tar",
     "vit-p16-d384-depth12-heads12", {"key_prefix": "module.base_encoder.", "source": _VIT_SOURCE["mocov3"]}),
    ("mocov3-vitb", "MoCo v3 ViT-B/16, 300 epochs",
     f"{_FB}/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar", "vit-b-300ep.pth.tar",
     "vit-p16-d768-depth12-heads12", {"key_prefix": "module.base_encoder.", "source": _VIT_SOURCE["mocov3"]}),
    ("deit-s", "DeiT-S/16 trained with ImageNet labels (the supervised ViT baseline; head dropped)",
     f"{_FB}/deit/deit_small_patch16_224-cd65a155.pth", "deit_small_patch16_224-cd65a155.pth",
     "vit-p16-d384-depth12-heads6", {"hash_prefix": "cd65a155", "source": _VIT_SOURCE["deit"]}),
)
for _name, _what, _url, _file, _arch, _extra in _VIT_ZOO:
    _add(ModelRecord(_name, "download", _arch, _what, url=_url, filename=_file, **_extra))

#: Published models sslinv lists but cannot load, with the reason (``--model NAME`` says it).
UNSUPPORTED: dict[str, str] = {
    "simclr-v1": (
        "the SimCLR v1 release is a TensorFlow checkpoint; converting it needs TensorFlow, "
        "which sslinv does not depend on. Convert it with the SimCLR repository's converter "
        "and pass the resulting PyTorch file as --model PATH."
    ),
    "simclr-v2": (
        "the SimCLR v2 release is a TensorFlow checkpoint; converting it needs TensorFlow, "
        "which sslinv does not depend on. Convert it (e.g. with simclrv2-pytorch) and pass "
        "the resulting PyTorch file as --model PATH."
    ),
    "byol": (
        "the BYOL release (pretrain_res50x1.pkl) is a pickled JAX/Haiku experiment state: "
        "reading it needs Python's unpickler with the JAX classes (it can run arbitrary code; "
        "sslinv only loads checkpoints with torch.load(weights_only=True)) and a hand-made "
        "layer mapping. Convert it with ssl-transfer's download_and_prepare_models.py and "
        "pass the resulting .pth file as --model PATH."
    ),
}

for _name, _arch, _what in (
    ("default", "resnet50", "MoCo v2 ResNet-50 trained with the default MoCo v2 augmentations"),
    ("ventral", "resnet50", "MoCo v2 ResNet-50 trained with the paper's 'ventral' augmentations"),
    ("dorsal", "resnet50", "MoCo v2 ResNet-50 trained with the paper's 'dorsal' augmentations"),
    ("default_w3", "resnet50w3", "MoCo v2 ResNet-50 (3x width) with the default augmentations"),
):
    _add(ModelRecord(_name, "checkpoint", _arch, f"{_what} (the paper's model)"))

_STANDIN = "moco-v2-200ep"
#: What to run instead of a paper model whose checkpoint is missing (its message says it).
PAPER_MODEL_STANDINS: dict[str, str] = {
    "default": (
        f"The paper's 'default' is the MoCo v2 recipe at 200 epochs, published as the zoo model "
        f"'{_STANDIN}': run with --model {_STANDIN} (downloaded and verified on first use)."
    ),
    **{
        name: (
            f"The paper's {name!r} model has no public release; the closest public model is "
            f"'{_STANDIN}' (the same MoCo v2 recipe with the default augmentations): --model {_STANDIN}."
        )
        for name in ("ventral", "dorsal")
    },
    "default_w3": (
        "The paper's 'default_w3' (ResNet-50, 3x width) has no public release; the closest public "
        f"model is '{_STANDIN}' (the same MoCo v2 recipe at 1x width): --model {_STANDIN}."
    ),
}


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


def _is_block_tap(layer: str) -> bool:
    head, _, index = layer.partition(".")
    return head == "blocks" and index.isdigit()


def check_layer(layer: str, known: tuple[str, ...] | None = None, what: str = "") -> str:
    """``layer`` if it names a feature layer (of ``what``, whose layers are ``known``).

    Without ``known``, any layer some model family has is accepted (ResNet stages, ViT
    taps, ``blocks.N`` for any N); the model itself checks again once built.
    """
    names = list(known) if known is not None else [*LAYERS, *VIT_LAYERS[1:]]
    ok = layer in names or ("blocks.N" in names and _is_block_tap(layer))
    if not ok:
        of = f" for {what}" if what else ""
        raise UnknownNameError(
            f"Unknown feature layer {layer!r}{of}.{did_you_mean(layer, names)} "
            f"Known: {', '.join(names)}."
        )
    return layer


def check_fuse(mode: str) -> str:
    if mode not in FUSE_MODES:
        raise UnknownNameError(
            f"Unknown fusion mode {mode!r}.{did_you_mean(mode, list(FUSE_MODES))} "
            f"Known: {', '.join(FUSE_MODES)}."
        )
    return mode
