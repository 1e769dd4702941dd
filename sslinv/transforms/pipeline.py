"""The clean view pipeline shared by every transformation family.

``clean_view`` is the protocol's clean pipeline (protocols.md section 1) without the
normalisation: resize the shorter side to ``resize`` (bilinear, antialiased, on the PIL
image, exactly as ``torchvision.transforms.Resize``), centre crop ``crop`` and convert to a
uint8 ``(3, crop, crop)`` tensor. Normalisation is left to the caller, which does it once
per batch on the accelerator (``IMAGENET_MEAN``/``IMAGENET_STD``).

All PIL work stays on PIL; the only conversion is the final one to a tensor.
``resize_shorter`` and ``center_crop`` repeat torchvision's rules (output size,
crop offsets, zero padding) on Pillow directly, without importing torchvision: its
import costs about a second of every command's start (tests/test_transforms.py compares
them with torchvision's functionals). torch is imported inside the functions so that
importing ``sslinv.transforms`` (to list family names, for example) stays cheap.
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


def resized_size(w: int, h: int, resize: int) -> tuple[int, int]:
    """(width, height) after ``transforms.Resize(resize)``: the shorter side becomes
    ``resize``, the longer one ``int(resize * long / short)`` (torchvision's rule)."""
    if w <= h:
        return resize, int(resize * h / w)
    return int(resize * w / h), resize


def crop_start(size: int, crop: int) -> int:
    """Where torchvision's centre crop of ``crop`` pixels starts along an axis of
    ``size``: ``round((size - crop) / 2)``, Python's rounding (half to even)."""
    return int(round((size - crop) / 2.0))


def resize_shorter(img: Image.Image, resize: int) -> Image.Image:
    """``transforms.Resize(resize)`` on PIL: shorter side -> ``resize``, bilinear,
    antialiased (Pillow's resize); the image itself when it already has that size."""
    from PIL import Image

    size = resized_size(img.width, img.height, resize)
    return img if size == img.size else img.resize(size, Image.BILINEAR)


def center_crop(img: Image.Image, crop: int) -> Image.Image:
    """``transforms.CenterCrop(crop)`` on a PIL image: an image smaller than the crop is
    first padded with zeros, ``(crop - size) // 2`` before and the rest after; the
    window starts at ``round((size - crop) / 2)``."""
    from PIL import Image

    w, h = img.size
    if crop > w or crop > h:
        left, top = max(crop - w, 0) // 2, max(crop - h, 0) // 2
        padded = Image.new(img.mode, (max(w, crop), max(h, crop)), 0)
        padded.paste(img, (left, top))
        img, w, h = padded, padded.width, padded.height
        if (w, h) == (crop, crop):
            return img
    top, left = crop_start(h, crop), crop_start(w, crop)
    return img.crop((left, top, left + crop, top + crop))


def finish(img: Image.Image, resize: int, crop: int) -> torch.Tensor:
    """The clean pipeline after a transformation: resize, centre crop, to uint8 tensor."""
    return to_tensor(center_crop(resize_shorter(img, resize), crop))


def clean_view(img: Image.Image, resize: int, crop: int) -> torch.Tensor:
    """The untransformed view: uint8 (3, crop, crop), not normalised.

    Equal to ``Compose([Resize(resize), CenterCrop(crop), PILToTensor()])(img)``. For an
    image size this process has met a few times, only the window the crop reads is
    resampled (``pil_fast.clean_window``, the same bytes in 1.2-1.4x less CPU time).
    """
    from sslinv.transforms.pil_fast import clean_window

    img = _rgb(img)
    view = clean_window(img, resize, crop)
    return view if view is not None else finish(img, resize, crop)
