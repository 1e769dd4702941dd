"""Synthetic views rendered as batched tensor operations on any torch device.

The default renderer (``Family.view``/``Family.views``) works on PIL images in the
DataLoader workers, view by view, exactly as the reference did. This module builds the
same views from one uint8 image tensor (decoded once, on the CPU) with batched tensor
operations on the model's device, so on a GPU the CPU only decodes. It follows the PIL
path step for step - the transformation acts on the full-size image, then the clean
pipeline (shorter side to ``resize``, antialiased bilinear; centre crop). The
nearest-neighbour warps compute Pillow's 16.16 fixed-point coordinates and the resize
uses Pillow's own 22-bit integer weights (``pil_resize_weights``, from Pillow's
``precompute_coeffs``), in exact float64 sums, in the order of passes the installed
Pillow takes (``pass_order``), so both give Pillow's bytes. Two families differ: hue
goes through float HSV instead of PIL's 8-bit HSV, and the ``deform`` fields are drawn
by torch rather than numpy (same distribution; the affine jitter uses the PIL path's
numbers). ``benchmarks/render_drift.py`` measures the difference per family (pixels,
and the distance/similarity of a model's features); docs/gpu.md has the table. The PIL
path stays the default for parity with the paper.

Every family is one function ``(image, params, resize, crop, seed) -> views`` taking a
float32 (3, H, W) image with values 0..255 and returning float32 (N, 3, crop, crop)
views before the final rounding; ``render_views`` chunks the parameters, rounds and
casts to uint8.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sslinv.transforms import pil_fast
from sslinv.transforms.families import get_family
from sslinv.transforms.pil_fast import affine_matrix as pil_affine_matrix
from sslinv.transforms.pil_fast import fix16, rotate_op
from sslinv.transforms.pipeline import crop_start, resized_size

#: Views rendered per batched call (bounds the full-size intermediates in memory).
DEFAULT_CHUNK = 32


# ---------------------------------------------------------------------------- resize


def pil_resize_weights(in_size: int, out_size: int, in0: float = 0.0, in1: float | None = None) -> np.ndarray:
    """(out_size, in_size) weights of Pillow's antialiased bilinear resize along one axis.

    Pillow's ``precompute_coeffs`` (libImaging/Resample.c): output pixel ``i`` is centred
    at ``in0 + (i + 0.5) * scale`` with ``scale = (in1 - in0) / out_size``, the triangle
    filter is stretched by ``max(scale, 1)`` (that is the antialiasing), and each row is
    normalised to sum 1 over the pixels inside the image.
    """
    in1 = float(in_size) if in1 is None else in1
    scale = (in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    centres = in0 + (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(centres - support + 0.5), 0)
    xmax = np.minimum(np.trunc(centres + support + 0.5), in_size)
    x = np.arange(in_size)[None, :]
    w = np.clip(1.0 - np.abs((x - centres[:, None] + 0.5) * (1.0 / filterscale)), 0.0, None)
    w[(x < xmin[:, None]) | (x >= xmax[:, None])] = 0.0
    total = np.cumsum(w, axis=1)[:, -1:]  # summed left to right, as Pillow
    return np.divide(w, total, out=np.zeros_like(w), where=total != 0)


#: Pillow's 8-bit resize keeps the weights as integers of this many fractional bits.
PRECISION_BITS = 32 - 8 - 2


def pil_fixed_weights(weights: np.ndarray) -> np.ndarray:
    """Pillow's integer weights (``normalize_coeffs_8bpc``), as float64 integers."""
    scaled = weights * (1 << PRECISION_BITS)
    return np.trunc(np.where(scaled < 0, scaled - 0.5, scaled + 0.5))


def shorter_side_size(h: int, w: int, resize: int) -> tuple[int, int]:
    """(height, width) after ``transforms.Resize(resize)``: ``pipeline.resized_size`` in
    tensor order."""
    rw, rh = resized_size(w, h, resize)
    return rh, rw


def _crop_rows(weights: np.ndarray, start: int, size: int) -> np.ndarray:
    """Rows ``start .. start + size`` of ``weights``; rows outside are zero (padding)."""
    out = np.zeros((size, weights.shape[1]))
    lo, hi = max(start, 0), min(start + size, weights.shape[0])
    if hi > lo:
        out[lo - start : hi - start] = weights[lo:hi]
    return out


def resize_crop_weights(h: int, w: int, resize: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column weights of resize-shorter-side then centre crop (torchvision's
    ``center_crop`` offsets: ``round((size - crop) / 2)``)."""
    rh, rw = shorter_side_size(h, w, resize)
    wy = _crop_rows(pil_resize_weights(h, rh), crop_start(rh, crop), crop)
    wx = _crop_rows(pil_resize_weights(w, rw), crop_start(rw, crop), crop)
    return wy, wx


def pass_order(w: int, h: int, out_w: int, out_h: int) -> str:
    """The order of the installed Pillow's two resize passes for ``w`` x ``h`` ->
    ``out_w`` x ``out_h``: "hv" (horizontal first) or "vh" (``pil_fast.pass_order``
    asks Pillow once per size; Pillow 13 goes vertical first when the height shrinks by
    more than twice as many pixels as the width, Pillow 9-12 never)."""
    if min(w, h) <= 0:  # an empty box (no pixels to resize): nothing for Pillow to tell
        return "hv"
    # None: both orders gave Pillow's bytes on the probe, or neither did; horizontal
    # first is what every Pillow before 13 does, and what this module always did.
    return pil_fast.pass_order(w, h, out_w, out_h) or "hv"


def _separable(x: torch.Tensor, wy: np.ndarray, wx: np.ndarray, order: str = "hv") -> torch.Tensor:
    """Resample (N, 3, H, W) with (oh, H) / (N, oh, H) rows and (ow, W) / (N, ow, W)
    columns (float64 weights, quantised here: a float32 copy would move a few of
    Pillow's integers by one), as Pillow's 8-bit two-pass resize in Pillow's ``order``
    ("hv": columns first, "vh": rows first; see ``pass_order``), each pass with Pillow's
    integer weights, ``(sum + 2^21) >> 22`` and clipping, so the intermediate image is
    rounded to 8 bits as Pillow's. In float64 every sum is an exact integer (below
    2^53), so the result is Pillow's to the bit when ``x`` holds integers."""
    one = float(1 << PRECISION_BITS)
    half = float(1 << (PRECISION_BITS - 1))
    wx = torch.as_tensor(pil_fixed_weights(wx), dtype=torch.float64, device=x.device)
    wy = torch.as_tensor(pil_fixed_weights(wy), dtype=torch.float64, device=x.device)
    wx = wx if wx.ndim == 3 else wx.expand(x.shape[0], *wx.shape)
    wy = wy if wy.ndim == 3 else wy.expand(x.shape[0], *wy.shape)
    if order == "hv":
        t = torch.einsum("nchw,nvw->nchv", x.double(), wx).add_(half).div_(one).floor_().clamp_(0, 255)
        out = torch.einsum("nchv,nuh->ncuv", t, wy)
    elif order == "vh":
        t = torch.einsum("nchw,nuh->ncuw", x.double(), wy).add_(half).div_(one).floor_().clamp_(0, 255)
        out = torch.einsum("ncuw,nvw->ncuv", t, wx)
    else:
        raise ValueError(f"order must be 'hv' or 'vh', got {order!r}")
    return out.add_(half).div_(one).floor_().clamp_(0, 255).to(x.dtype)


def _finish(x: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """The clean pipeline on a batch of full-size float images."""
    h, w = x.shape[-2:]
    rh, rw = shorter_side_size(h, w, resize)
    wy, wx = resize_crop_weights(h, w, resize, crop)
    return _separable(x, wy, wx, pass_order(w, h, rw, rh))


def _t(a: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


def _u8(x: torch.Tensor) -> torch.Tensor:
    """Round half to even, clamp and cast (what PIL's fixed point does, up to ties)."""
    return x.round().clamp_(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------- warps (nearest)


def pil_rotate_matrix(angle: float, w: int, h: int) -> list[float] | None:
    """The inverse matrix Pillow's ``Image.rotate(angle)`` hands to its affine transform
    (``pil_fast.rotate_op``); None for the angles Pillow serves by a copy/transpose."""
    op, matrix = rotate_op(angle, w, h)
    return matrix if op == "affine" else None


def _warp_nearest(image: torch.Tensor, matrices: Sequence[Sequence[float] | None]) -> torch.Tensor:
    """Pillow's nearest-neighbour affine transform (``Image.transform(AFFINE)``, zero
    fill) of one (C, H, W) image, one view per inverse matrix (None: the image itself).

    Pillow (libImaging/Geometry.c, ``affine_fixed``) walks the output in 16.16 fixed
    point: source column ``(FIX(c + a/2 + b/2) + x FIX(a) + y FIX(b)) >> 16``, likewise
    for rows. The same integers are computed here (int64, exact), so the warp is
    bit-identical to Pillow's whenever Pillow takes its fixed-point path (coordinates
    within +-32768, i.e. any ordinary image).
    """
    c, h, w = image.shape
    dev = image.device
    coefs = []
    for m in matrices:
        m = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0] if m is None else list(m)
        coefs.append([fix16(m[2] + m[0] * 0.5 + m[1] * 0.5), fix16(m[0]), fix16(m[1]),
                      fix16(m[5] + m[3] * 0.5 + m[4] * 0.5), fix16(m[3]), fix16(m[4])])
    k = torch.tensor(coefs, dtype=torch.int64, device=dev).view(-1, 6, 1, 1)
    xs = torch.arange(w, dtype=torch.int64, device=dev).view(1, 1, w)
    ys = torch.arange(h, dtype=torch.int64, device=dev).view(1, h, 1)
    xin = (k[:, 0] + xs * k[:, 1] + ys * k[:, 2]) >> 16
    yin = (k[:, 3] + xs * k[:, 4] + ys * k[:, 5]) >> 16
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    flat = torch.where(inside, yin * w + xin, torch.zeros_like(xin)).view(-1)
    out = image.reshape(c, h * w)[:, flat].view(c, len(coefs), h, w).transpose(0, 1)
    return out * inside.unsqueeze(1).to(image.dtype)


def _rotation(img, params, resize, crop, seed):
    h, w = img.shape[-2:]
    views = []
    for p in params:
        angle = p["angle"] % 360.0
        if angle == 180:
            views.append(img.flip(-1).flip(-2))
        elif angle in (90, 270) and w == h:
            views.append(img.rot90(1 if angle == 90 else -1, (-2, -1)))
        else:
            views.append(None)
    todo = [i for i, v in enumerate(views) if v is None]
    if todo:
        warped = _warp_nearest(img, [pil_rotate_matrix(params[i]["angle"], w, h) for i in todo])
        for j, i in enumerate(todo):
            views[i] = warped[j]
    return _finish(torch.stack(views), resize, crop)


def _affine(img, params, resize, crop, seed):
    h, w = img.shape[-2:]
    return _finish(_warp_nearest(img, [pil_affine_matrix(p, w, h) for p in params]), resize, crop)


def _translation(img, params, resize, crop, seed):
    # The shift acts on the resized image; resize once, shift, centre crop.
    h, w = img.shape[-2:]
    rh, rw = shorter_side_size(h, w, resize)
    resized = _separable(img.unsqueeze(0), pil_resize_weights(h, rh), pil_resize_weights(w, rw),
                         pass_order(w, h, rw, rh))
    resized = _u8(resized).float()[0]
    shifted = _warp_nearest(resized, [pil_affine_matrix(p, rw, rh) for p in params])
    top, left = crop_start(rh, crop), crop_start(rw, crop)
    out = torch.zeros(len(params), 3, crop, crop, dtype=img.dtype, device=img.device)
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + crop, rh), min(left + crop, rw)
    out[:, :, t0 - top : t1 - top, l0 - left : l1 - left] = shifted[:, :, t0:t1, l0:l1]
    return out


def _resized_crop(img, params, resize, crop, seed):
    # PIL crops with each box edge rounded (Python round) and zero padding outside, then
    # resizes the box to crop x crop: per view, resize weights over the box's pixels, in
    # the pass order Pillow takes for that box size (views grouped by order).
    h, w = img.shape[-2:]
    wys, wxs, orders = [], [], []
    for p in params:
        top, left, bh, bw = p["top"], p["left"], p["height"], p["width"]
        y0, y1 = round(top), round(top + bh)
        x0, x1 = round(left), round(left + bw)
        wys.append(_box_weights(h, y0, y1, crop))
        wxs.append(_box_weights(w, x0, x1, crop))
        orders.append(pass_order(x1 - x0, y1 - y0, crop, crop))
    out = torch.empty(len(params), 3, crop, crop, dtype=img.dtype, device=img.device)
    for order in sorted(set(orders)):
        idx = [i for i, o in enumerate(orders) if o == order]
        x = img.unsqueeze(0).expand(len(idx), -1, -1, -1)
        out[idx] = _separable(x, np.stack([wys[i] for i in idx]), np.stack([wxs[i] for i in idx]), order)
    return out


def _box_weights(size: int, start: int, stop: int, out: int) -> np.ndarray:
    """Weights resizing pixels ``start..stop`` (zero outside ``0..size``) to ``out``."""
    box = pil_resize_weights(stop - start, out)
    full = np.zeros((out, size))
    lo, hi = max(start, 0), min(stop, size)
    if hi > lo:
        full[:, lo:hi] = box[:, lo - start : hi - start]
    return full


def _flip(dim: int):
    def render(img, params, resize, crop, seed):
        views = [img.flip(dim) if p["apply"] else img for p in params]
        return _finish(torch.stack(views), resize, crop)

    return render


# ------------------------------------------------------------------------------ deform


def _deform(img, params, resize, crop, seed):
    """Affine jitter (the PIL path's random numbers) then the smoothed uniform field
    (drawn by torch), both bilinear with reflect-101 borders (``grid_sample`` reflection
    with ``align_corners=True``)."""
    import cv2

    from sslinv.transforms.elastic import ALPHA, ALPHA_AFFINE, BLUR_KERNEL

    h, w = img.shape[-2:]
    dev = img.device
    c0, c1 = np.float32(h // 2), np.float32(w // 2)
    q = np.float32(min(h, w) // 3)
    src = np.array([[c0 + q, c1 + q], [c0 + q, c1 - q], [c0 - q, c1 - q]], dtype=np.float32)
    mats, sigmas, gens = [], [], []
    seeds = [seed] * len(params) if isinstance(seed, int) else list(seed)
    for p, view_seed in zip(params, seeds):
        rng = np.random.default_rng([view_seed, int(p["field"])])
        dst = src + rng.uniform(-ALPHA_AFFINE, ALPHA_AFFINE, size=src.shape).astype(np.float32)
        fwd = np.vstack([cv2.getAffineTransform(src, dst), [0, 0, 1]])
        mats.append(np.linalg.inv(fwd)[:2])  # output pixel -> source pixel
        sigmas.append(float(p["sigma"]))
        gens.append(torch.Generator(device=dev).manual_seed(int(view_seed) * 1_000_003 + int(p["field"])))
    n = len(params)
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=img.dtype), torch.arange(w, device=dev, dtype=img.dtype),
                            indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, h * w, 3)
    src_xy = pix.expand(n, -1, -1).bmm(_t(np.stack(mats), img).transpose(1, 2)).view(n, h, w, 2)
    x = img.unsqueeze(0).expand(n, -1, -1, -1)
    warped = F.grid_sample(x, _normalise(src_xy, h, w), mode="bilinear", padding_mode="reflection", align_corners=True)
    warped = warped.round_().clamp_(0, 255)
    # Fields: Uniform(-1, 1) per pixel, Gaussian blur 17 x 17 (reflect-101), times alpha.
    fields = torch.stack([torch.rand(2, h, w, generator=g, device=dev) for g in gens]) * 2 - 1
    ks = BLUR_KERNEL[0]
    r = torch.arange(ks, device=dev, dtype=img.dtype) - (ks - 1) / 2
    k1 = torch.exp(-(r[None, :] ** 2) / (2 * torch.tensor(sigmas, device=dev, dtype=img.dtype)[:, None] ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)  # (n, ks): cv2.getGaussianKernel
    kk = k1.repeat_interleave(2, 0)  # one kernel per field channel
    f = F.pad(fields.view(1, 2 * n, h, w), (ks // 2,) * 4, mode="reflect")
    f = F.conv2d(f, kk.view(2 * n, 1, 1, ks), groups=2 * n)
    f = F.conv2d(f, kk.view(2 * n, 1, ks, 1), groups=2 * n).view(n, 2, h, w) * ALPHA
    grid = torch.stack([xs + f[:, 0], ys + f[:, 1]], -1)
    out = F.grid_sample(warped, _normalise(grid, h, w), mode="bilinear", padding_mode="reflection",
                        align_corners=True)
    return _finish(out.round_().clamp_(0, 255), resize, crop)


def _normalise(xy: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel coordinates (centres at integers) -> grid_sample's [-1, 1], align_corners=True."""
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=xy.dtype, device=xy.device)
    return xy * scale - 1.0


# ------------------------------------------------------------------------- appearance


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma as PIL's ``convert("L")`` (rounded), shape (..., 1, H, W)."""
    r, g, b = x.unbind(-3)
    return (r * 0.299 + g * 0.587 + b * 0.114).round().unsqueeze(-3)


def _blend(a: torch.Tensor, b: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """Pillow's ``Image.blend(b, a, f)`` (what ``ImageEnhance`` does) with one factor per
    view: ``b + f (a - b)`` in float32, clamped, truncated to an integer."""
    f = torch.tensor([float(v) for v in factors], dtype=torch.float32, device=a.device).view(-1, 1, 1, 1)
    return (b + f * (a - b)).clamp_(0, 255).trunc_()


def _toggle(op: Callable[[torch.Tensor], torch.Tensor]):
    def render(img, params, resize, crop, seed):
        done = op(img.unsqueeze(0))[0]
        return _finish(torch.stack([done if p["apply"] else img for p in params]), resize, crop)

    return render


def _equalize(x: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.functional import equalize

    return equalize(x.to(torch.uint8)).float()


def _brightness(img, params, resize, crop, seed):
    return _finish(_blend(img.unsqueeze(0), torch.zeros_like(img).unsqueeze(0), [p["brightness_factor"] for p in params]),
                   resize, crop)


def _contrast(img, params, resize, crop, seed):
    mean = torch.floor(_grey(img).mean(dtype=torch.float64) + 0.5).float()  # PIL: int(mean + 0.5) of the L image
    return _finish(_blend(img.unsqueeze(0), mean.expand_as(img).unsqueeze(0), [p["contrast_factor"] for p in params]),
                   resize, crop)


def _saturation(img, params, resize, crop, seed):
    grey = _grey(img).expand_as(img).unsqueeze(0)
    return _finish(_blend(img.unsqueeze(0), grey, [p["saturation_factor"] for p in params]), resize, crop)


def _hue(img, params, resize, crop, seed):
    from torchvision.transforms._functional_tensor import _hsv2rgb, _rgb2hsv

    hsv = _rgb2hsv(img / 255.0)  # once for every view
    shifts = torch.tensor([float(p["hue_factor"]) for p in params], dtype=img.dtype, device=img.device)
    h = (hsv[0].unsqueeze(0) + shifts.view(-1, 1, 1)) % 1.0
    n = len(params)
    views = _hsv2rgb(torch.stack([h, hsv[1].expand_as(h), hsv[2].expand_as(h)], 1)) * 255.0
    return _finish(views.view(n, 3, *img.shape[-2:]).round_().clamp_(0, 255), resize, crop)


def _blur(img, params, resize, crop, seed):
    # Same float32 kernel as torchvision (sslinv.transforms.families._gaussian_kernel1d),
    # reflect padding, one grouped separable convolution for all views.
    from sslinv.transforms.families import _gaussian_kernel1d

    n = len(params)
    ks = int(params[0]["kernel_size"][0])
    k1 = _t(np.stack([_gaussian_kernel1d(ks, float(p["sigma"][0])) for p in params]), img)
    kk = k1.repeat_interleave(3, 0)
    x = F.pad(img.unsqueeze(0).expand(n, -1, -1, -1).reshape(1, 3 * n, *img.shape[-2:]), (ks // 2,) * 4, mode="reflect")
    x = F.conv2d(x, kk.view(3 * n, 1, 1, ks), groups=3 * n)
    x = F.conv2d(x, kk.view(3 * n, 1, ks, 1), groups=3 * n)
    return _finish(x.view(n, 3, *img.shape[-2:]).round_().clamp_(0, 255), resize, crop)


def _sharpness(img, params, resize, crop, seed):
    kernel = torch.ones(3, 3, dtype=img.dtype, device=img.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(3, 1, 3, 3)
    smooth = img.clone()  # borders stay, as torchvision and PIL's SMOOTH filter
    smooth[:, 1:-1, 1:-1] = F.conv2d(img.unsqueeze(0), kernel, groups=3)[0].round_()
    return _finish(_blend(img.unsqueeze(0), smooth.unsqueeze(0), [p["sharpness_factor"] for p in params]), resize, crop)


def _posterize(img, params, resize, crop, seed):
    masks = torch.tensor([-int(2 ** (8 - int(p["bits"]))) for p in params], dtype=torch.int32, device=img.device)
    q = img.to(torch.int32).unsqueeze(0) & masks.view(-1, 1, 1, 1)
    return _finish(q.to(img.dtype), resize, crop)


RENDERERS: dict[str, Callable] = {
    "rotation": _rotation,
    "translation": _translation,
    "scale": _affine,
    "shear": _affine,
    "resized_crop": _resized_crop,
    "h_flip": _flip(-1),
    "v_flip": _flip(-2),
    "deform": _deform,
    "grayscale": _toggle(lambda x: _grey(x).expand_as(x)),
    "brightness": _brightness,
    "contrast": _contrast,
    "saturation": _saturation,
    "hue": _hue,
    "blur": _blur,
    "sharpness": _sharpness,
    "invert": _toggle(lambda x: 255.0 - x),
    "equalize": _toggle(_equalize),
    "posterize": _posterize,
}


# --------------------------------------------------------------------------------- API


def image_tensor(img) -> torch.Tensor:
    """A decoded PIL image (any mode) as a uint8 (3, H, W) tensor, decoded once."""
    from sslinv.transforms.pipeline import _rgb, to_tensor

    return to_tensor(_rgb(img))


def clean_view(image: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """The untransformed view (uint8 (3, crop, crop)) on ``image``'s device."""
    return _u8(_finish(image.float().unsqueeze(0), resize, crop))[0]


def render_views(family: str, image: torch.Tensor, params: Sequence[dict[str, Any]], resize: int, crop: int,
                 seed: int | Sequence[int] = 0, chunk: int | None = None) -> torch.Tensor:
    """The views of one image for ``family`` (one per param), uint8 (N, 3, crop, crop),
    computed on ``image``'s device ``chunk`` views at a time (default: ``chunk_for`` the
    image's size, at most ``DEFAULT_CHUNK``).

    ``image``: uint8 (3, H, W), the full-size decoded image (move it to the device
    first). ``params``: entries of ``Family.grid(...).params``. ``seed``: as
    ``Family.view``'s, one for every view or a sequence of one per view (as the
    synthetic command's per-(image, parameter) seeds); only ``deform`` uses it.
    """
    name = get_family(family).name
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a uint8 (3, H, W) tensor, got {tuple(image.shape)} {image.dtype}")
    out = torch.empty(len(params), 3, crop, crop, dtype=torch.uint8, device=image.device)
    chunk = min(DEFAULT_CHUNK, chunk_for(tuple(image.shape[-2:]))) if chunk is None else chunk
    x = image.float()
    if not isinstance(seed, int) and len(seed) != len(params):
        raise ValueError(f"got {len(seed)} seeds for {len(params)} views")
    for s in range(0, len(params), max(1, chunk)):
        part = list(params[s : s + chunk])
        seeds = seed if isinstance(seed, int) else list(seed[s : s + chunk])
        out[s : s + len(part)] = _u8(RENDERERS[name](x, part, resize, crop, seeds))
    return out


def chunk_for(image_hw: tuple[int, int], budget_bytes: int = 2**30) -> int:
    """Views per chunk keeping the full-size intermediates near ``budget_bytes``: about
    80 bytes per pixel and view (int64 warp indices, float copies of the image)."""
    per_view = 80 * image_hw[0] * image_hw[1]
    return max(1, min(256, budget_bytes // max(per_view, 1)))


__all__ = ["RENDERERS", "chunk_for", "clean_view", "image_tensor", "pil_resize_weights", "render_views"]

