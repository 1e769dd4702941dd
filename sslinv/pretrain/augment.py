"""MoCo v2 augmentation presets and custom augmentation lists (protocols.md section 6).

A pipeline is a list of augmentation names, applied in the order given, to a PIL image;
each name builds one torchvision transform:

==============  =====================================================================
name            transform (``S`` = ``--image-size``, 224 in the paper)
==============  =====================================================================
resized_crop    ``RandomResizedCrop(S, scale=(0.2, 1.0))``
h_flip          ``RandomHorizontalFlip()`` (p = 0.5)
v_flip          ``RandomVerticalFlip()`` (p = 0.5)
color_jitter    ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``
grayscale       ``RandomGrayscale(p=0.2)``
blur            ``RandomApply([GaussianBlur(sigma in [0.1, 2.0])], p=0.5)``
==============  =====================================================================

When ``resized_crop`` is not in the list, ``Resize(S)`` and ``CenterCrop(S)`` are
appended (after the other augmentations), so every view is ``S x S``. The view ends as
a uint8 tensor; normalisation happens per batch on the device.

Presets, exactly the reference's (linusericsson/ssl-invariances
``pretraining/main_moco.py``; the ``default`` list is MoCo v2's ``--aug-plus``):

- ``default``: resized_crop, color_jitter, grayscale, blur, h_flip;
- ``ventral``: resized_crop, h_flip (spatial only);
- ``dorsal``: color_jitter, grayscale, blur, then resize + centre crop (appearance only);
- ``default_w3``: the ``default`` list on ResNet-50 with 3x width.

The blur is MoCo's: a PIL ``ImageFilter.GaussianBlur`` whose radius (its standard
deviation) is drawn uniformly from [0.1, 2.0], not torchvision's kernel-size-bound
``GaussianBlur``. Its sigma is drawn from torch's RNG (MoCo draws it from Python's
``random``), so one ``torch.manual_seed`` fixes a whole view; see ``TwoViews``.

This module imports torch and torchvision only inside functions: the preset and
augmentation names serve shell completion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sslinv.errors import UnknownNameError, UsageError
from sslinv.registry import did_you_mean

if TYPE_CHECKING:
    import torch
    from PIL import Image

#: Augmentation names a custom ``--augment`` list may use, in the reference's order.
AUGMENTATIONS = ("resized_crop", "h_flip", "v_flip", "color_jitter", "grayscale", "blur")

# The parameters of each augmentation (MoCo v2 / the reference).
CROP_SCALE = (0.2, 1.0)
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
JITTER_P = 0.8
GRAYSCALE_P = 0.2
BLUR_SIGMA = (0.1, 2.0)
BLUR_P = 0.5


@dataclass(frozen=True)
class Preset:
    """A named training recipe: the augmentation list and the architecture it goes with."""

    name: str
    augment: tuple[str, ...]
    arch: str
    description: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("default", ("resized_crop", "color_jitter", "grayscale", "blur", "h_flip"), "resnet50",
               "MoCo v2's augmentations (spatial and appearance)"),
        Preset("ventral", ("resized_crop", "h_flip"), "resnet50",
               "spatial augmentations only: random resized crop and horizontal flip"),
        Preset("dorsal", ("color_jitter", "grayscale", "blur"), "resnet50",
               "appearance augmentations only: colour jitter, grey-scale, blur"),
        Preset("default_w3", ("resized_crop", "color_jitter", "grayscale", "blur", "h_flip"), "resnet50w3",
               "MoCo v2's augmentations on ResNet-50 with 3x width"),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        names = list(PRESETS)
        raise UnknownNameError(
            f"Unknown preset {name!r}.{did_you_mean(name, names)} Known: {', '.join(names)}. "
            "For another mix of augmentations pass --augment (e.g. --augment resized_crop,blur)."
        )
    return PRESETS[name]


def parse_augment(text: str) -> list[str]:
    """``"resized_crop, h_flip"`` -> ``["resized_crop", "h_flip"]``, checked (did-you-mean)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise UsageError(
            f"--augment {text!r} lists no augmentation. Give a comma-separated list of: "
            f"{', '.join(AUGMENTATIONS)}."
        )
    return check_augment(names)


def check_augment(names: list[str] | tuple[str, ...]) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name not in AUGMENTATIONS:
            raise UnknownNameError(
                f"Unknown augmentation {name!r}.{did_you_mean(name, list(AUGMENTATIONS))} "
                f"Known: {', '.join(AUGMENTATIONS)}."
            )
        if name in seen:
            raise UsageError(f"Augmentation {name!r} is listed twice in --augment; list each once.")
        seen.add(name)
    return list(names)


class PILGaussianBlur:
    """MoCo v2's blur: PIL Gaussian blur with radius (sigma) uniform in ``sigma``.

    The idea is SimCLR's, the definition MoCo's (``moco/loader.py``); sigma is drawn from
    torch's global RNG so that seeding torch fixes it.
    """

    def __init__(self, sigma: tuple[float, float] = BLUR_SIGMA) -> None:
        self.sigma = (float(sigma[0]), float(sigma[1]))

    def __call__(self, img: Image.Image) -> Image.Image:
        import torch
        from PIL import ImageFilter

        lo, hi = self.sigma
        radius = lo + (hi - lo) * float(torch.rand(()))
        return img.filter(ImageFilter.GaussianBlur(radius=radius))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"


def _build_one(name: str, size: int):
    import torchvision.transforms as T

    if name == "resized_crop":
        return T.RandomResizedCrop(size, scale=CROP_SCALE)
    if name == "h_flip":
        return T.RandomHorizontalFlip()
    if name == "v_flip":
        return T.RandomVerticalFlip()
    if name == "color_jitter":
        return T.RandomApply([T.ColorJitter(*JITTER)], p=JITTER_P)
    if name == "grayscale":
        return T.RandomGrayscale(p=GRAYSCALE_P)
    if name == "blur":
        return T.RandomApply([PILGaussianBlur(BLUR_SIGMA)], p=BLUR_P)
    raise UnknownNameError(f"Unknown augmentation {name!r}. Known: {', '.join(AUGMENTATIONS)}.")


def build_pipeline(names: list[str] | tuple[str, ...], size: int = 224):
    """The ``torchvision.transforms.Compose`` of ``names`` (PIL in, uint8 (3, size, size) out).

    As the reference: augmentations in list order; without ``resized_crop``,
    ``Resize(size)`` + ``CenterCrop(size)`` follow them; then ``PILToTensor`` (the
    reference's ``ToTensor`` + ``Normalize`` are applied per batch on the device).
    """
    import torchvision.transforms as T

    names = check_augment(names)
    if size < 1:
        raise UsageError(f"--image-size must be positive, not {size}.")
    steps = [_build_one(n, size) for n in names]
    if "resized_crop" not in names:
        steps += [T.Resize(size), T.CenterCrop(size)]
    steps.append(T.PILToTensor())
    return T.Compose(steps)


def view_seed(seed: int, epoch: int, index: int) -> int:
    """The torch seed of image ``index``'s two views in ``epoch`` (independent of workers,
    ranks and resumption, so an interrupted run sees the same views when resumed)."""
    return ((seed * 1_000_003 + epoch) * 2_654_435_761 + index) % (2**63 - 1)


def two_views(pipeline, img: Image.Image, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The query and key views of ``img`` (the pipeline applied twice), seeded by ``seed``.

    torchvision's random transforms draw from torch's global CPU generator: it is forked,
    seeded, and restored, so the caller's RNG is untouched. Only the CPU generator is
    seeded: ``torch.manual_seed`` would also queue a CUDA seeding (with a stack trace)
    in processes where CUDA is not initialised, costing milliseconds per image.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        return pipeline(img), pipeline(img)
