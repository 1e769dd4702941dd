"""The 18 synthetic transformation families and their parameter grids.

The grids are protocols.md section 2, computed the way the reference computed them
(``torch.linspace`` in float32, then Python floats), so parameter values match the
paper's to the last bit. Each family is a ``Family`` record: ``grid(k, resize, crop)``
gives the parameter dicts (JSON-serialisable, stored in result files) and
``view(img, param, resize, crop, seed)`` builds one view as a uint8 (3, crop, crop)
tensor, not normalised.

Order of operations (as the reference): the transformation acts on the full-size PIL
image, then the clean pipeline (resize the shorter side, centre crop) follows.
Exceptions: ``resized_crop`` makes the final crop itself, and ``translation`` shifts the
resized image before the centre crop (protocols.md; the reference shifted before
resizing). A param dict holds the torchvision functional arguments themselves, so a
result file says exactly what was called.

Reference quirks kept on purpose, for parity with the paper's numbers:

- ``translation`` and ``scale`` call ``FT.affine(..., shear=1.0)``: the reference's
  parameter lists held ``torch.ones`` for the shear, i.e. a 1 degree x-shear on top of
  every shift/zoom. Their identity views are therefore *not* exactly the clean view.
- ``scale`` has no exact identity (the table's index 0 is factor 0.25);
  ``brightness``/``contrast``/``saturation``/``hue`` use index k//2 (factor 2.63 at
  k=256, not 1.0); ``resized_crop`` index 0 is the top-left 0.75 crop; ``deform``
  index 0 is sigma 10. These are the table's conventions, not identities.
- ``resized_crop`` coordinates are fractions of ``resize`` but are applied to the
  full-size image (``FT.resized_crop(full_image, top, left, h, w, [crop, crop])``).
  Float coordinates: on PIL images ``FT.resized_crop`` -> ``FT.crop`` calls
  ``img.crop((left, top, left + width, top + height))`` with the floats, and PIL
  (``Image._crop``) rounds each box edge with Python's ``round`` (half to even) *after*
  the sums, e.g. top 21.333334 + height 149.33334 -> bottom round(170.66667) = 171.
  We pass the same floats through the same call, so the rounding is PIL's.
- ``translation``/``shear`` grids do not always contain (0, 0) exactly: m odd has no
  zero, and float32 ``linspace`` can leave a residue of ~1e-6 at the middle point for
  some even m (e.g. m = 6, 10). ``identity`` is the index of the grid point closest
  to (0, 0) (the first one on ties); it is exactly (0, 0) at the default k = 256 for
  both families.

Deviation from the reference, for speed:

- ``blur``: ``FT.gaussian_blur`` on a PIL image converts to a tensor and runs a dense
  23 x 23 depthwise ``conv2d`` (about 50 ms per 500 x 375 image on one CPU core). We
  apply the same float32 1-D kernel (computed with the same torch operations as
  torchvision's ``_get_gaussian_kernel1d``) as a separable filter with OpenCV
  (reflect-101 = torch's "reflect" padding), then round half to even and cast, like
  torchvision: about 1.5 ms, ~35x faster. Because the float summation order differs,
  about 4 pixels in 100,000 differ by 1 grey level (measured; the reference conv
  itself is not bit-stable across CPUs and GPUs). sigma = 1e-5 (index 0) is bit-exact.

``deform`` is described in ``sslinv.transforms.elastic``; its views depend on the
``seed`` passed to ``view`` (use a per-image seed, e.g. the image's pool index).
``Family.views`` builds several views of one image at once, byte-identical to stacked
``view`` calls: for the geometric families it renders only the window of each
transformed image the centre crop reads, resizes once for ``translation`` and the flips
and shares horizontal passes in ``resized_crop`` (``sslinv.transforms.pil_fast``, which
documents why each shortcut is exact). The appearance families act on each pixel (and
its neighbours, for sharpness and blur), so their views transform only that window (with
the few pixels around it a filter reads) and share what all views of an image have in
common: the enhancers' degenerate images (contrast's mean grey is still the whole
image's) and hue's HSV split. ``deform`` and ``equalize`` (a histogram of the whole
image) render one view per call. OpenCV (blur, deform) keeps its own thread pool:
in DataLoader workers call ``cv2.setNumThreads(1)`` in ``worker_init_fn``, as torch
does for itself.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from sslinv.registry import Registry
from sslinv.transforms.pipeline import _rgb, center_crop, finish, resize_shorter, to_tensor

if TYPE_CHECKING:
    import torch
    from PIL import Image

SPATIAL = "spatial"
APPEARANCE = "appearance"

# The reference's deform sigmas: linspace(10, 50, 8) cast to int, the 8 values tiled.
DEFORM_SIGMAS = (10, 15, 21, 27, 32, 38, 44, 50)
DEFORM_REPEATS = 32

#: The smallest ``k``: every family's grid then holds a view that differs from the clean
#: one (two-valued families stay at [off, on]; a one-value grid of rotation, blur or
#: sharpness would be the identity alone, and one of brightness/contrast/saturation/hue
#: a single extreme value labelled as the identity).
MIN_K = 2


@dataclass(frozen=True)
class Grid:
    """The parameter grid of one family at one (k, resize, crop)."""

    family: str
    k: int  # actual number of views, len(params); may be below the k asked for
    params: list[dict[str, Any]]  # JSON-serialisable, one per view: the argument of Family.view
    values: list[Any]  # JSON-serialisable value per view, for tables and plots
    identity: int | None  # index of the identity view as in the protocol table

    def __len__(self) -> int:
        return self.k


# A grid builder takes (k, resize, crop) -> (params, values, identity).
GridFn = Callable[[int, int, int], "tuple[list[dict[str, Any]], list[Any], int | None]"]
# A view function takes (rgb_img, param, resize, crop, seed) -> uint8 tensor (3, crop, crop).
ViewFn = Callable[["Image.Image", "dict[str, Any]", int, int, int], "torch.Tensor"]
# A batch function takes (rgb_img, params, resize, crop, seed) -> the stacked views
# (N, 3, crop, crop), a list of (3, crop, crop) views, or None to use the view function.
BatchFn = Callable[["Image.Image", "Sequence[dict[str, Any]]", int, int, int], "torch.Tensor | list | None"]


@dataclass(frozen=True)
class Family:
    """A synthetic transformation family: a grid of parameters and a view builder.

    The callables are module-level functions, so a Family pickles into DataLoader
    workers.
    """

    name: str
    default_k: int
    max_k: int | None  # fixed-size families cap k; None = unbounded
    kind: str  # "spatial" or "appearance"
    description: str
    make_grid: GridFn = field(repr=False, compare=False)
    apply: ViewFn = field(repr=False, compare=False)
    # Optional: builds several views of one image sharing work (see ``views``).
    apply_batch: BatchFn | None = field(default=None, repr=False, compare=False)
    # Modules the views import, for loader workers to start with
    # (``runtime.preload_for_workers``): torchvision takes about a second per process.
    # The batched geometric families need neither torchvision nor OpenCV (a geometry
    # they hand back to the one-view path imports torchvision where it runs).
    imports: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def grid(self, k: int | None, resize: int, crop: int) -> Grid:
        """The grid for ``k`` views (None -> ``default_k``; above ``max_k`` -> ``max_k``;
        below ``MIN_K`` is an error)."""
        if k is None:
            k = self.default_k
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int or None, got {k!r}")
        if k < MIN_K:
            raise ValueError(
                f"k must be at least {MIN_K} for transform {self.name!r}, got {k}: a smaller grid "
                "measures no change"
            )
        _check_sizes(resize, crop)
        if self.max_k is not None:
            k = min(k, self.max_k)
        params, values, identity = self.make_grid(k, resize, crop)
        return Grid(self.name, len(params), params, values, identity)

    def view(
        self, img: Image.Image, param: dict[str, Any], resize: int, crop: int, seed: int = 0
    ) -> torch.Tensor:
        """One transformed view of a full-size image: uint8 (3, crop, crop), not normalised.

        ``seed`` only matters for random families (deform): pass a per-image seed (for
        example the image's index in the pool); the same (img, param, seed) always gives
        the same view.
        """
        return self.apply(_rgb(img), param, resize, crop, seed)

    def views(
        self,
        img: Image.Image,
        params: Sequence[dict[str, Any]],
        resize: int,
        crop: int,
        seed: int = 0,
    ) -> torch.Tensor:
        """Several views of one image stacked: uint8 (len(params), 3, crop, crop).

        The same bytes as stacking ``view`` calls, in fewer CPU seconds for every
        family but ``deform`` and ``equalize`` (``sslinv.transforms.pil_fast``).
        """
        import torch

        img = _rgb(img)
        if not params:
            return torch.empty((0, 3, crop, crop), dtype=torch.uint8)
        out = self.apply_batch(img, params, resize, crop, seed) if self.apply_batch is not None else None
        if out is None:  # no batch function, or this geometry needs the one-view path
            out = [self.apply(img, p, resize, crop, seed) for p in params]
        return out if isinstance(out, torch.Tensor) else torch.stack(out)


def _check_sizes(resize: int, crop: int) -> None:
    for label, v in (("resize", resize), ("crop", crop)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{label} must be a positive int, got {v!r}")


# ---------------------------------------------------------------------------------
# Grid helpers: float32 linspace as in the reference, then Python floats
# ---------------------------------------------------------------------------------


def _linspace(start: float, end: float, steps: int, times: float | None = None) -> list[float]:
    """``torch.linspace(start, end, steps)`` in float32 (optionally ``* times`` in float32)."""
    import torch

    t = torch.linspace(start, end, steps, dtype=torch.float32)
    if times is not None:
        t = t * times
    return t.tolist()


def _first_k(start: float, end: float, k: int, times: float | None = None) -> list[float]:
    """first_k(linspace(start, end, k + 1)) of the protocol table."""
    return _linspace(start, end, k + 1, times)[:k]


def _nearest_origin(pairs: list[tuple[float, float]]) -> int:
    """Index of the pair closest to (0, 0); the first one on ties."""
    norms = [a * a + b * b for a, b in pairs]
    return norms.index(min(norms))


def _scalar_grid(key: str, values: list[Any], identity: int | None):
    params = [{key: v} for v in values]
    return params, list(values), identity


def _toggle_grid(k: int, resize: int, crop: int):
    values = [False, True][:k]
    return [{"apply": v} for v in values], values, 0


# ---------------------------------------------------------------------------------
# Grids, one per family
# ---------------------------------------------------------------------------------


def _rotation_grid(k: int, resize: int, crop: int):
    return _scalar_grid("angle", _first_k(0, 360, k), 0)


def _translation_grid(k: int, resize: int, crop: int):
    m = math.isqrt(k)
    s = (1 - crop / resize) / 2
    a = _first_k(-s, s, m, times=resize)
    pairs = list(itertools.product(a, a))
    params = [
        {"angle": 0.0, "translate": [dx, dy], "scale": 1.0, "shear": 1.0} for dx, dy in pairs
    ]
    return params, [[dx, dy] for dx, dy in pairs], _nearest_origin(pairs)


def _scale_grid(k: int, resize: int, crop: int):
    factors = _linspace(0.25, 2, k)
    params = [{"angle": 0.0, "translate": [0, 0], "scale": f, "shear": 1.0} for f in factors]
    return params, factors, 0


def _shear_grid(k: int, resize: int, crop: int):
    m = math.isqrt(k)
    a = _first_k(-160, 160, m)
    pairs = list(itertools.product(a, a))
    params = [
        {"angle": 0.0, "translate": [0, 0], "scale": 1.0, "shear": [sx, sy]} for sx, sy in pairs
    ]
    return params, [[sx, sy] for sx, sy in pairs], _nearest_origin(pairs)


def _resized_crop_grid(k: int, resize: int, crop: int):
    n = math.isqrt(math.isqrt(k))  # floor(k ** (1/4)), exactly
    a = _linspace(0, 0.25, n, times=resize)
    b = _linspace(0.75, 0.25, n, times=resize)
    boxes = list(itertools.product(a, a, b, b))
    params = [{"top": t, "left": l, "height": h, "width": w} for t, l, h, w in boxes]
    return params, [list(box) for box in boxes], 0


def _deform_grid(k: int, resize: int, crop: int):
    sigmas = (list(DEFORM_SIGMAS) * DEFORM_REPEATS)[:k]
    params = [{"sigma": s, "field": i} for i, s in enumerate(sigmas)]
    return params, sigmas, 0


def _factor_grid(key: str, start: float, end: float, mid: bool, k: int, resize: int, crop: int):
    # mid: identity index k//2 as in the protocol table (not an exact identity).
    return _scalar_grid(key, _linspace(start, end, k), k // 2 if mid else 0)


_brightness_grid = partial(_factor_grid, "brightness_factor", 0.25, 5, True)
_contrast_grid = partial(_factor_grid, "contrast_factor", 0.25, 5, True)
_saturation_grid = partial(_factor_grid, "saturation_factor", 0.25, 5, True)
_hue_grid = partial(_factor_grid, "hue_factor", -0.5, 0.5, True)
_sharpness_grid = partial(_factor_grid, "sharpness_factor", 1, 30, False)


def _blur_grid(k: int, resize: int, crop: int):
    ks = 1 + 2 * (crop // 20)
    sigmas = _linspace(1e-5, 20, k)
    params = [{"kernel_size": [ks, ks], "sigma": [s, s]} for s in sigmas]
    return params, sigmas, 0


def _posterize_grid(k: int, resize: int, crop: int):
    return _scalar_grid("bits", list(range(1, 8))[:k], None)


# ---------------------------------------------------------------------------------
# Views: the transformation on the full-size PIL image, then the clean pipeline
# ---------------------------------------------------------------------------------


def _rotation_view(img, p, resize, crop, seed):
    import torchvision.transforms.functional as FT

    return finish(FT.rotate(img, p["angle"]), resize, crop)


def _translate_resized(resized, p, crop):
    import torchvision.transforms.functional as FT

    return to_tensor(center_crop(FT.affine(resized, **p), crop))


def _translation_view(img, p, resize, crop, seed):
    # The shift acts on the resized image, in resized-image pixels (protocols.md).
    return _translate_resized(resize_shorter(img, resize), p, crop)


def _translation_batch(img, params, resize, crop, seed):
    from sslinv.transforms import pil_fast

    return pil_fast.translation_views(img, params, resize, crop)


def _affine_view(img, p, resize, crop, seed):
    import torchvision.transforms.functional as FT

    return finish(FT.affine(img, **p), resize, crop)


# Batch functions: the same bytes as the view functions, sharing or skipping work
# (sslinv.transforms.pil_fast); None hands a geometry they do not cover back to them.


def _rotation_batch(img, params, resize, crop, seed):
    from sslinv.transforms import pil_fast

    ops = [pil_fast.rotate_op(p["angle"], img.width, img.height) for p in params]
    return pil_fast.windowed_views(img, ops, resize, crop)


def _affine_batch(img, params, resize, crop, seed):
    from sslinv.transforms import pil_fast

    ops = [("affine", pil_fast.affine_matrix(p, img.width, img.height)) for p in params]
    return pil_fast.windowed_views(img, ops, resize, crop)


def _resized_crop_batch(img, params, resize, crop, seed):
    from sslinv.transforms import pil_fast

    return pil_fast.resized_crop_views(img, params, crop)


# The appearance families act on each pixel (and its neighbours, for sharpness and
# blur): their views render the crop's window only (``pil_fast.point_views``), with what
# all views of an image share made once: the enhancers' degenerate images (contrast's
# mean from the whole image, as Pillow takes it) and hue's HSV split.


def _enhance_batch(enhancer: str, key: str, img, params, resize, crop, seed, margin: int = 0):
    # torchvision's adjust_brightness / _saturation / _sharpness on PIL are
    # ImageEnhance.<enhancer>(img).enhance(factor); an enhancer built on the window
    # blends the same pixels (sharpness's 3 x 3 smoothing needs one pixel around).
    from PIL import ImageEnhance

    from sslinv.transforms import pil_fast

    def make(part, box):
        enhancer_ = getattr(ImageEnhance, enhancer)(part)
        return (enhancer_.enhance(p[key]) for p in params)

    return pil_fast.point_views(img, make, resize, crop, margin)


def _contrast_batch(img, params, resize, crop, seed):
    # ImageEnhance.Contrast blends with the mean grey of the whole image.
    from PIL import ImageEnhance

    from sslinv.transforms import pil_fast

    def make(part, box):
        enhancer = ImageEnhance.Contrast(img)
        enhancer.image, enhancer.degenerate = part, enhancer.degenerate.crop(box)
        return (enhancer.enhance(p["contrast_factor"]) for p in params)

    return pil_fast.point_views(img, make, resize, crop)


def _hue_batch(img, params, resize, crop, seed):
    # torchvision's adjust_hue on PIL, with the HSV split made once: H shifted by
    # int32(hue_factor * 255) as uint8 (wrapping), merged, back to RGB.
    import numpy as np
    from PIL import Image

    from sslinv.transforms import pil_fast

    if any(not -0.5 <= p["hue_factor"] <= 0.5 for p in params):
        return None  # the one-view path raises torchvision's error

    def make(part, box):
        h, s, v = part.convert("HSV").split()
        hue = np.array(h, dtype=np.uint8)
        for p in params:
            shifted = hue + np.int32(p["hue_factor"] * 255).astype(np.uint8)
            yield Image.merge("HSV", (Image.fromarray(shifted), s, v)).convert("RGB")

    return pil_fast.point_views(img, make, resize, crop)


def _blur_batch(img, params, resize, crop, seed):
    from sslinv.transforms import pil_fast

    margin = max(max(p["kernel_size"]) for p in params) // 2

    def make(part, box):
        return (gaussian_blur(part, p["kernel_size"], p["sigma"]) for p in params)

    return pil_fast.point_views(img, make, resize, crop, margin)


def _toggle_batch(op, img, params, resize, crop, seed):
    # {"apply": False} is the clean view (the window itself).
    from sslinv.transforms import pil_fast

    def make(part, box):
        done = None
        for p in params:
            if p["apply"] and done is None:
                done = op(part)
            yield done if p["apply"] else part

    return pil_fast.point_views(img, make, resize, crop)


def _grayscale(part):
    from PIL import Image

    grey = part.convert("L")  # torchvision's to_grayscale(3): L, stacked three times
    return Image.merge("RGB", (grey, grey, grey))


def _invert(part):
    from PIL import ImageOps

    return ImageOps.invert(part)


def _posterize_batch(img, params, resize, crop, seed):
    from PIL import ImageOps

    from sslinv.transforms import pil_fast

    def make(part, box):
        return (ImageOps.posterize(part, p["bits"]) for p in params)

    return pil_fast.point_views(img, make, resize, crop)


def _flip_batch(method: str, img, params, resize, crop, seed):
    from PIL import Image

    from sslinv.transforms import pil_fast

    flags = [bool(p["apply"]) for p in params]
    return pil_fast.flip_views(img, flags, Image.Transpose[method], resize, crop)


def _resized_crop_view(img, p, resize, crop, seed):
    import torchvision.transforms.functional as FT

    # Coordinates in resize-pixels applied to the full-size image, as the reference;
    # the output is the final crop x crop view (no resize/centre crop after).
    out = FT.resized_crop(img, p["top"], p["left"], p["height"], p["width"], [crop, crop])
    return to_tensor(out)


def _toggle_view(fn_name: str, kwargs: dict[str, Any], img, p, resize, crop, seed):
    # {"apply": False} is the clean view itself.
    if p["apply"]:
        import torchvision.transforms.functional as FT

        img = getattr(FT, fn_name)(img, **kwargs)
    return finish(img, resize, crop)


def _deform_view(img, p, resize, crop, seed):
    import numpy as np
    from PIL import Image

    from sslinv.transforms.elastic import elastic_deform

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng([seed, int(p["field"])])
    out = elastic_deform(np.asarray(img), p["sigma"], rng)
    return finish(Image.fromarray(out), resize, crop)


def _adjust_view(fn_name: str, img, p, resize, crop, seed):
    import torchvision.transforms.functional as FT

    return finish(getattr(FT, fn_name)(img, **p), resize, crop)


@lru_cache(maxsize=1024)
def _gaussian_kernel1d(size: int, sigma: float):
    """torchvision's 1-D Gaussian kernel, same float32 operations, as a numpy array."""
    import torch

    half = (size - 1) * 0.5
    x = torch.linspace(-half, half, steps=size, dtype=torch.float32)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    return (pdf / pdf.sum()).numpy()


def gaussian_blur(
    img: Image.Image, kernel_size: Sequence[int], sigma: Sequence[float]
) -> Image.Image:
    """``FT.gaussian_blur`` on a PIL image, separably (see the module docstring).

    Same float32 kernel, reflect padding (torch "reflect" = OpenCV reflect-101) and
    round-half-to-even as torchvision; differs from it by at most 1 grey level on a
    few pixels in 100,000.
    """
    import cv2
    import numpy as np
    from PIL import Image

    kx = _gaussian_kernel1d(int(kernel_size[0]), float(sigma[0]))
    ky = _gaussian_kernel1d(int(kernel_size[1]), float(sigma[1]))
    out = cv2.sepFilter2D(np.asarray(img), cv2.CV_32F, kx, ky, borderType=cv2.BORDER_REFLECT_101)
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return Image.fromarray(out.astype(np.uint8), mode=img.mode)


def _blur_view(img, p, resize, crop, seed):
    return finish(gaussian_blur(img, p["kernel_size"], p["sigma"]), resize, crop)


# partial objects of module-level functions pickle (DataLoader workers under spawn).
_hflip_view = partial(_toggle_view, "hflip", {})
_vflip_view = partial(_toggle_view, "vflip", {})
_grayscale_view = partial(_toggle_view, "rgb_to_grayscale", {"num_output_channels": 3})
_invert_view = partial(_toggle_view, "invert", {})
_equalize_view = partial(_toggle_view, "equalize", {})
_brightness_view = partial(_adjust_view, "adjust_brightness")
_contrast_view = partial(_adjust_view, "adjust_contrast")
_saturation_view = partial(_adjust_view, "adjust_saturation")
_hue_view = partial(_adjust_view, "adjust_hue")
_sharpness_view = partial(_adjust_view, "adjust_sharpness")
_posterize_view = partial(_adjust_view, "posterize")


# ---------------------------------------------------------------------------------
# The registry, in protocol-table order
# ---------------------------------------------------------------------------------

FAMILIES: Registry[Family] = Registry("transform")

_TABLE: list[tuple[str, int, int | None, str, str, GridFn, ViewFn]] = [
    # name, default k, max k, kind, description, grid, view
    ("rotation", 256, None, SPATIAL, "rotation angle, degrees", _rotation_grid, _rotation_view),
    ("translation", 256, None, SPATIAL, "shift (dx, dy) of the resized image, px",
     _translation_grid, _translation_view),
    ("scale", 256, None, SPATIAL, "zoom factor about the centre", _scale_grid, _affine_view),
    ("shear", 256, None, SPATIAL, "shear (sx, sy), degrees", _shear_grid, _affine_view),
    ("resized_crop", 256, None, SPATIAL, "crop (top, left, height, width) resized to crop",
     _resized_crop_grid, _resized_crop_view),
    ("h_flip", 2, 2, SPATIAL, "horizontal flip", _toggle_grid, _hflip_view),
    ("v_flip", 2, 2, SPATIAL, "vertical flip", _toggle_grid, _vflip_view),
    ("deform", 256, 256, SPATIAL, "elastic deformation sigma (32 random fields each)",
     _deform_grid, _deform_view),
    ("grayscale", 2, 2, APPEARANCE, "3-channel grey, ITU-R 601", _toggle_grid, _grayscale_view),
    ("brightness", 256, None, APPEARANCE, "brightness factor", _brightness_grid, _brightness_view),
    ("contrast", 256, None, APPEARANCE, "contrast factor", _contrast_grid, _contrast_view),
    ("saturation", 256, None, APPEARANCE, "saturation factor", _saturation_grid, _saturation_view),
    ("hue", 256, None, APPEARANCE, "hue shift, fraction of the hue circle", _hue_grid, _hue_view),
    ("blur", 256, None, APPEARANCE, "Gaussian blur sigma", _blur_grid, _blur_view),
    ("sharpness", 256, None, APPEARANCE, "sharpness factor", _sharpness_grid, _sharpness_view),
    ("invert", 2, 2, APPEARANCE, "colour inversion", _toggle_grid, _invert_view),
    ("equalize", 2, 2, APPEARANCE, "histogram equalisation", _toggle_grid, _equalize_view),
    ("posterize", 7, 7, APPEARANCE, "bits per channel", _posterize_grid, _posterize_view),
]  # fmt: skip

_BATCH: dict[str, BatchFn] = {
    "rotation": _rotation_batch,
    "translation": _translation_batch,
    "scale": _affine_batch,
    "shear": _affine_batch,
    "resized_crop": _resized_crop_batch,
    "h_flip": partial(_flip_batch, "FLIP_LEFT_RIGHT"),
    "v_flip": partial(_flip_batch, "FLIP_TOP_BOTTOM"),
    "grayscale": partial(_toggle_batch, _grayscale),
    "brightness": partial(_enhance_batch, "Brightness", "brightness_factor"),
    "contrast": _contrast_batch,
    "saturation": partial(_enhance_batch, "Color", "saturation_factor"),
    "hue": _hue_batch,
    "blur": _blur_batch,
    "sharpness": partial(_enhance_batch, "Sharpness", "sharpness_factor", margin=1),
    "invert": partial(_toggle_batch, _invert),
    "posterize": _posterize_batch,
}

# What each family's views import; the batched ones only Pillow and numpy (and OpenCV
# for blur and deform).
_IMPORTS = {**{name: () for name in _BATCH}, "blur": ("cv2",), "deform": ("cv2",)}
_TORCHVISION = ("torchvision.transforms.functional",)

for _name, _k, _max_k, _kind, _desc, _grid, _view in _TABLE:
    _family = Family(_name, _k, _max_k, _kind, _desc, _grid, _view, _BATCH.get(_name),
                     _IMPORTS.get(_name, _TORCHVISION))
    FAMILIES.register(_name, _family)
del _name, _k, _max_k, _kind, _desc, _grid, _view, _family


def get_family(name: str) -> Family:
    """The family called ``name``; UnknownNameError with a did-you-mean otherwise."""
    return FAMILIES.get(name)
