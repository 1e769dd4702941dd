"""MoCo v2's augmentations as batched tensor operations on the training device.

The default path (``sslinv.pretrain.augment``) builds every view with PIL in DataLoader
workers: 137 images/s per core for the ``default`` preset and 52 for ``dorsal``, which
leaves a GPU waiting. Here the workers only decode (uint8 tensors), and the views of a
whole batch are made on the device, from the same augmentation names and parameters
(``augment.AUGMENTATIONS``, ``CROP_SCALE``, ``JITTER``, ...).

What matches the PIL path exactly (the distribution of the random parameters):

- ``resized_crop``: the box is drawn as ``RandomResizedCrop.get_params`` draws it (area
  uniform in ``CROP_SCALE`` of the image, log aspect ratio uniform in [3/4, 4/3], ten
  attempts, then the central fallback), on the full decoded image;
- ``color_jitter`` (p = 0.8): brightness, contrast and saturation factors uniform in
  [0.6, 1.4], hue shift uniform in [-0.1, 0.1], the four applied in a random order per
  image, as ``ColorJitter``;
- ``grayscale`` (p = 0.2), ``h_flip`` / ``v_flip`` (p = 0.5), ``blur`` (p = 0.5,
  sigma uniform in [0.1, 2.0]);
- the order of the list, and ``Resize`` + ``CenterCrop`` after the others when
  ``resized_crop`` is absent.

What is approximated:

- resampling: the crop is resized by ``F.interpolate`` (bilinear, antialiased) in float
  instead of PIL's 8-bit resize, and colour operations run in float without rounding
  between steps (differences of about one grey level);
- blur: a true Gaussian (kernel radius ``ceil(3 sigma)``, replicated borders) instead of
  PIL's ``GaussianBlur``, which approximates one by three box blurs;
- without ``resized_crop`` (``dorsal``) the image is resized and centre cropped first
  and the appearance operations act on the ``S x S`` image (the PIL path applies them to
  the full image, then resizes); the blur's sigma is scaled by ``S / shorter side`` so
  it blurs the same share of the image;
- the random numbers come from a ``torch.Generator`` per batch, not from the global RNG
  per image, so the views differ from the PIL path's for the same seed (the same seed
  gives the same views on any device).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sslinv.pretrain.augment import (
    BLUR_P,
    BLUR_SIGMA,
    CROP_SCALE,
    GRAYSCALE_P,
    JITTER,
    JITTER_P,
    check_augment,
)

CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)


def crop_box(h: int, w: int, g: torch.Generator, scale=CROP_SCALE, ratio=CROP_RATIO) -> tuple[int, int, int, int]:
    """``RandomResizedCrop.get_params``: (top, left, height, width), drawn from ``g``."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1], generator=g))
        aspect = math.exp(float(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=g)))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            return top, left, ch, cw
    in_ratio = w / h  # fallback: the central crop of the allowed aspect ratios
    if in_ratio < min(ratio):
        cw, ch = w, round(w / min(ratio))
    elif in_ratio > max(ratio):
        ch, cw = h, round(h * max(ratio))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x.unsqueeze(0), size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _resize_center_crop(x: torch.Tensor, s: int) -> tuple[torch.Tensor, float]:
    """``Resize(s)`` + ``CenterCrop(s)`` of one (3, H, W) float image; also the scale."""
    h, w = x.shape[-2:]
    scale = s / min(h, w)
    nh, nw = (int(s * h / w), s) if w <= h else (s, int(s * w / h))
    y = _resize(x, (nh, nw))
    top, left = round((nh - s) / 2.0), round((nw - s) / 2.0)
    return y[:, top : top + s, left : left + s], scale


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (f.view(-1, 1, 1, 1) * a + (1 - f.view(-1, 1, 1, 1)) * b).clamp(0, 1)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms._functional_tensor import _hsv2rgb, _rgb2hsv

    hsv = _rgb2hsv(x)
    h = (hsv[:, 0] + shift.view(-1, 1, 1)) % 1.0
    return _hsv2rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], 1))


def _jitter(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)`` per image, batched."""
    n = x.shape[0]
    b, c, s, h = JITTER
    apply = torch.rand(n, generator=g) < JITTER_P
    factors = [torch.empty(n).uniform_(1 - b, 1 + b, generator=g), torch.empty(n).uniform_(1 - c, 1 + c, generator=g),
               torch.empty(n).uniform_(1 - s, 1 + s, generator=g), torch.empty(n).uniform_(-h, h, generator=g)]
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(n)])  # per image, as ColorJitter
    dev = x.device
    factors = [f.to(dev, x.dtype) for f in factors]
    for step in range(4):
        for op in range(4):
            # The images to change are chosen on the host, where the draws are: no
            # device-to-host wait (a mask on the device would need one per step).
            rows = (apply & (order[:, step] == op)).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            rows = rows.to(dev, non_blocking=True)
            y = x.index_select(0, rows)
            f = factors[op].index_select(0, rows)
            if op == 0:
                y = _blend(y, torch.zeros_like(y), f)
            elif op == 1:
                y = _blend(y, _grey(y).mean(dim=(1, 2, 3), keepdim=True).expand_as(y), f)
            elif op == 2:
                y = _blend(y, _grey(y).expand_as(y), f)
            else:
                y = _hue(y, f)
            x = x.index_copy(0, rows, y)
    return x


def _grayscale(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    sel = (torch.rand(x.shape[0], generator=g) < GRAYSCALE_P).to(x.device).view(-1, 1, 1, 1)
    return torch.where(sel, _grey(x).expand_as(x), x)


def _blur(x: torch.Tensor, g: torch.Generator, sigma_scale: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with p = 0.5 and sigma uniform in BLUR_SIGMA, one kernel per image."""
    n = x.shape[0]
    apply = torch.rand(n, generator=g) < BLUR_P
    sigma = torch.empty(n).uniform_(BLUR_SIGMA[0], BLUR_SIGMA[1], generator=g) * sigma_scale.cpu()
    if not bool(apply.any()):
        return x
    r = max(1, math.ceil(3 * float(sigma[apply].max())))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    k = (k / k.sum(1, keepdim=True)).to(x.device)
    kk = k.repeat_interleave(3, 0)
    y = F.pad(x.reshape(1, 3 * n, *x.shape[-2:]), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, kk.view(3 * n, 1, 1, -1), groups=3 * n)
    y = F.conv2d(y, kk.view(3 * n, 1, -1, 1), groups=3 * n).view_as(x)
    return torch.where(apply.to(x.device).view(-1, 1, 1, 1), y, x)


def _flip(x: torch.Tensor, g: torch.Generator, dim: int) -> torch.Tensor:
    sel = (torch.rand(x.shape[0], generator=g) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(sel, x.flip(dim), x)


class GPUAugment:
    """The pipeline of ``names`` (``augment.AUGMENTATIONS``) for ``size x size`` views.

    ``aug(images, generator)`` takes a uint8 batch (B, 3, H, W) or a list of uint8
    (3, H_i, W_i) images (any device; views are made where the images are) and returns
    uint8 (B, 3, size, size) views.
    """

    def __init__(self, names: Sequence[str], size: int = 224) -> None:
        self.names = check_augment(list(names))
        if size < 1:
            raise ValueError(f"size must be positive, not {size}")
        self.size = size

    @property
    def ops(self) -> list[str]:
        """The operations in the order applied (``resize_center_crop`` added as in PIL)."""
        spatial_first = ["resized_crop"] if "resized_crop" in self.names else ["resize_center_crop"]
        return spatial_first + [n for n in self.names if n != "resized_crop"]

    def __call__(self, images: torch.Tensor | Sequence[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        imgs = list(images)
        if not imgs:
            raise ValueError("no images to augment")
        s = self.size
        # The geometry first, per image (sizes differ); then every other op batched.
        crops, scales = [], []
        for img in imgs:
            if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
                raise ValueError(f"images must be uint8 (3, H, W), got {tuple(img.shape)} {img.dtype}")
            x = img.float() / 255.0
            if "resized_crop" in self.names:
                top, left, h, w = crop_box(x.shape[-2], x.shape[-1], generator)
                crops.append(_resize(x[:, top : top + h, left : left + w], (s, s)))
                scales.append(1.0)
            else:
                y, scale = _resize_center_crop(x, s)
                crops.append(y)
                scales.append(scale)
        x = torch.stack(crops)
        sigma_scale = torch.tensor(scales)
        for name in self.names:
            if name == "color_jitter":
                x = _jitter(x, generator)
            elif name == "grayscale":
                x = _grayscale(x, generator)
            elif name == "blur":
                x = _blur(x, generator, sigma_scale)
            elif name == "h_flip":
                x = _flip(x, generator, -1)
            elif name == "v_flip":
                x = _flip(x, generator, -2)
        return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)

    def two_views(self, images, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Query and key views of a batch (the pipeline twice, as ``augment.two_views``)."""
        return self(images, generator), self(images, generator)


def batch_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The generator of one training batch: the same views on any device and worker count."""
    from sslinv.pretrain.augment import view_seed

    return torch.Generator().manual_seed(view_seed(seed, epoch, step))
