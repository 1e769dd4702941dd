"""The clean view pipeline shared by every transformation family.

``clean_view`` is the protocol's clean pipeline (protocols.md section 1) without the
normalisation: resize the shorter side to ``resize`` (bilinear, antialiased, on the PIL
image, exactly as ``torchvision.transforms.Resize``), centre crop ``crop`` and convert to a
uint8 ``(3, crop, crop)`` tensor. Normalisation is left to the caller, which does it once
per batch on the accelerator (``IMAGENET_MEAN``/``IMAGENET_STD``).

All PIL work stays on PIL; the only conversion is the final one to a tensor.
torch and torchvision are imported inside the functions so that importing
``sslinv.transforms`` (to list family names, for example) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _rgb(img: Image.Image) -> Image.Image:
    # Loaders hand over RGB images; convert the odd greyscale/CMYK/RGBA/16-bit image
    # defensively, scaling deep images as the loaders do.
    from sslinv.data.folder import to_rgb8

    return img if img.mode == "RGB" else to_rgb8(img)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB image -> contiguous uint8 tensor (3, H, W) (same values as ``pil_to_tensor``)."""
    import numpy as np
    import torch

    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()


def resize_shorter(img: Image.Image, resize: int) -> Image.Image:
    """``transforms.Resize(resize)`` on PIL: shorter side -> ``resize``, bilinear, antialiased."""
    import torchvision.transforms.functional as FT

    return FT.resize(img, resize)


def center_crop(img: Image.Image, crop: int) -> Image.Image:
    """``transforms.CenterCrop(crop)`` on a PIL image (zero padding if the image is smaller)."""
    import torchvision.transforms.functional as FT

    return FT.center_crop(img, [crop, crop])


def finish(img: Image.Image, resize: int, crop: int) -> torch.Tensor:
    """The clean pipeline after a transformation: resize, centre crop, to uint8 tensor."""
    return to_tensor(center_crop(resize_shorter(img, resize), crop))


def clean_view(img: Image.Image, resize: int, crop: int) -> torch.Tensor:
    """The untransformed view: uint8 (3, crop, crop), not normalised.

    Equal to ``Compose([Resize(resize), CenterCrop(crop), PILToTensor()])(img)``.
    """
    return finish(_rgb(img), resize, crop)
