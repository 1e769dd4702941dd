"""Exact shortcuts for rendering many views of one image on PIL (``Family.views``).

Every shortcut gives the bytes of the one-view-per-call path (``Family.view``:
torchvision's functionals on PIL, then ``Resize`` + ``CenterCrop``), on which the
paper's numbers rest. They follow from Pillow's own arithmetic (``libImaging/Resample.c``
and ``Geometry.c``: the weights and the warp are computed alike from Pillow 9 to 13, the
order of the two resize passes is not, see ``pass_order``), reproduced here wherever a
decision depends on it:

- **The centre crop reads a window of the image.** Each output pixel of Pillow's
  antialiased two-pass resize (horizontal pass, rounding to 8 bits, vertical pass) is a
  sum of a few input pixels times integer weights: ``precompute_coeffs`` in double
  precision (``pil_weights`` repeats the same operations in the same order; the test
  suite compares it with Pillow's own weights, read from a 32-bit resize of an
  identity image), then ``trunc(k * 2^22 + 0.5)``. So only the window of the
  transformed image the crop reads is rendered (the warp of the other pixels is
  skipped); the horizontal pass runs on the window's rows only and the vertical pass on
  the crop's columns (``Resampler``).
- **A sub-box resize along an axis** (``Image.resize(..., box=...)``) replaces the full
  pass when its integer weights equal the full pass's, compared in full per image size
  (``axis_plan``, ``_same_integers``). Pillow takes box edges as float32, so this holds
  when the scale is a short binary fraction, as on the shorter side at resize 256 or 128
  (375 / 256). Otherwise, with ``size / out = p / q`` in lowest terms, a plain resize
  of input ``m p .. (m + t) p`` to ``t q`` outputs has the full pass's scale and its
  centres shifted by ``m p``: the shortest such canvas holding the window replaces the
  full pass when its integers are the same (``aligned_canvas``; 500 -> 170 at resize
  128 resizes 400 -> 136). Other axes (500 -> 341 at resize 256, no shorter period)
  keep their full pass, whose cost sets the floor.
- **Pillow's nearest-neighbour affine warp is 16.16 fixed point** (``affine_fixed``):
  source column ``(FIX(c + a/2 + b/2) + x FIX(a) + y FIX(b)) >> 16``. A window starting at
  (ox, oy) gets the same integers when its constant c' satisfies
  ``FIX(c' + a/2 + b/2) = FIX(c + a/2 + b/2) + ox FIX(a) + oy FIX(b)``
  (``shifted_matrix``; else the full warp is made and cut).
- **Rows the warp leaves black need no resampling.** Whether Pillow's pixel reads the
  image is a pair of integer inequalities per row (``content_rows``); a view that zooms
  out or shears hard has whole rows of its window black. The horizontal pass runs on the
  rows with image only (a black row resamples to a black row: Pillow's sums start at
  half a unit and add zero), and the vertical pass on the output rows that reach them,
  through a sub-box where its integers are the full box's (``box_outputs``).
- **The warp is written straight into the horizontal canvas** where the x axis has one
  (``Resampler.warped``): no window image, no paste.
- **Flips commute with the resize** when the integer weights read backwards are the
  same (``mirror_symmetric``, true for every size we tried): the flipped view is a
  mirrored window of the clean resize, so ``h_flip``/``v_flip`` resize once.
- ``translation`` resizes once and warps only the crop window; ``resized_crop`` shares
  the horizontal pass between views with the same column box.
- **Pixel operations** (the appearance families) commute with cutting the window out
  of the image when each output pixel depends on its own neighbourhood only
  (``point_views``): the window, grown by the filter's reach, is transformed, cut back
  and resampled like the warps' windows.

Outside these conditions the plain route is taken: the full warp cut to the window
(Pillow's pure-scaling or floating-point warp), the one-view path (a crop larger than
the resized image, a pass order that cannot be told), so a result never depends on the
route. tests/test_render_batch.py compares bytes over many image sizes and parameters.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from sslinv.transforms.pipeline import crop_start, resized_size

if TYPE_CHECKING:
    import torch

#: Pillow's 8-bit resize keeps its weights as integers with this many fractional bits.
PRECISION_BITS = 22
_BLACK = (0, 0, 0)  # torchvision's fill for affine/rotate on an RGB image

# ------------------------------------------------------------------------- resize plan


def pil_weights(
    in_size: int, in0: float, in1: float, out_size: int, first: int = 0, count: int | None = None
) -> np.ndarray:
    """Pillow's bilinear (antialiased) resize weights along one axis, dense float64, rows
    ``first .. first + count`` of the (out_size, in_size) table (default: all):
    ``precompute_coeffs`` with the same double operations in the same order (box edges
    as float32, as Pillow receives them; each row normalised by its sum accumulated left
    to right)."""
    count = out_size - first if count is None else count
    f0, f1 = np.float32(in0), np.float32(in1)
    scale = float(np.float32(f1 - f0)) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    inv = 1.0 / filterscale
    out_size = count  # from here on, the rows asked for
    center = float(f0) + (np.arange(first, first + count, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    count = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    valid = taps[None, :] < count[:, None]
    d = np.abs(((taps[None, :] + xmin[:, None]).astype(np.float64) - center[:, None] + 0.5) * inv)
    w = np.where(valid & (d < 1.0), 1.0 - d, 0.0)
    total = np.zeros(out_size)
    for t in range(ksize):  # sequential, as Pillow sums
        total = total + w[:, t]
    k = np.divide(w, total[:, None], out=w.copy(), where=total[:, None] != 0)
    dense = np.zeros((out_size, in_size))
    rows = np.broadcast_to(np.arange(out_size)[:, None], valid.shape)
    cols = xmin[:, None] + taps[None, :]
    dense[rows[valid], cols[valid]] = k[valid]
    return dense


def _same_integers(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two weight tables give Pillow's 8-bit resize the same integers
    (``normalize_coeffs_8bpc``: ``trunc(k * 2^22 + 0.5)``), with every product at least
    1e-6 away from a rounding edge, so that last-bit differences between this double
    arithmetic and the compiled one cannot change an integer."""
    if a.shape != b.shape:
        return False
    used = (a != 0) | (b != 0)  # a few taps per row: compare those only
    qa, qb = a[used] * float(1 << PRECISION_BITS) + 0.5, b[used] * float(1 << PRECISION_BITS) + 0.5
    if not np.array_equal(np.floor(qa), np.floor(qb)):  # weights are >= 0 for bilinear
        return False
    margin = min(np.abs(qa - np.round(qa)).min(initial=1.0), np.abs(qb - np.round(qb)).min(initial=1.0))
    return bool(margin > 1e-6)


@dataclass(frozen=True)
class AxisPlan:
    """How to produce ``crop`` pixels from ``start`` on of one axis resized ``size -> out``.

    ``lo:hi`` is the input range the crop reads (nonzero weights). With ``box`` set, a
    boxed resize of the input ``lo:hi`` (box edges relative to ``lo``) gives exactly the
    crop. Otherwise ``canvas`` = (first, length, count, offset): input ``first:first +
    length`` (holding ``lo:hi``; input pixels outside ``lo:hi`` may hold anything) resized
    without a box to ``count`` outputs, of which ``offset:offset + crop`` are the crop.
    That is the full pass, (0, size, out, start), unless a shorter period-aligned canvas
    gives the same integers (``aligned_canvas``).
    """

    size: int
    out: int
    start: int
    crop: int
    lo: int
    hi: int
    box: tuple[float, float] | None
    canvas: tuple[int, int, int, int] | None = None


@lru_cache(maxsize=4096)
def axis_plan(size: int, out: int, start: int, crop: int) -> AxisPlan:
    full = pil_weights(size, 0.0, float(size), out, start, crop)
    used = np.flatnonzero(full.any(axis=0))
    lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
    scale = Fraction(size, out)
    b0, b1 = float(start * scale - lo), float((start + crop) * scale - lo)
    if _same_integers(pil_weights(hi - lo, b0, b1, crop), full[:, lo:hi]):
        return AxisPlan(size, out, start, crop, lo, hi, (b0, b1))
    return AxisPlan(size, out, start, crop, lo, hi, None, aligned_canvas(size, out, start, crop, lo, hi, full))


def aligned_canvas(
    size: int, out: int, start: int, crop: int, lo: int, hi: int, full: np.ndarray
) -> tuple[int, int, int, int]:
    """The shortest canvas (first, length, count, offset) whose plain resize gives the
    integers of the full ``size -> out`` pass on outputs ``start .. start + crop``
    (``full``: those rows of the full pass); the full pass itself when none is shorter.

    With ``size / out = p / q`` in lowest terms, input ``m p .. (m + t) p`` resized to
    ``t q`` outputs has the same double scale, and its centres are the full pass's
    shifted by ``m p`` (up to the last bit of a product, hence the comparison of the
    integers, with ``_same_integers``'s margin). Pillow drops taps outside its input, so
    a canvas edge inside the image is safe only where the crop's taps do not reach it,
    and at the image's own edges the canvas ends there too (``size`` is a multiple of p).
    """
    g = math.gcd(size, out)
    p, q = size // g, out // g
    m0, m1 = lo // p, -(-hi // p)  # the aligned periods holding lo:hi, then one more each side
    for a, b in ((m0, m1), (m0 - 1, m1), (m0, m1 + 1), (m0 - 1, m1 + 1)):
        first, length, count, offset = a * p, (b - a) * p, (b - a) * q, start - a * q
        if a < 0 or b > g or b - a >= g or offset < 0 or offset + crop > count:
            continue
        canvas = pil_weights(length, 0.0, float(length), count, offset, crop)
        if _same_integers(canvas, full[:, first : first + length]):  # lo:hi lies inside
            return first, length, count, offset
    return 0, size, out, start


@lru_cache(maxsize=4096)
def box_outputs(plan: AxisPlan, first: int, stop: int) -> tuple[int, int, tuple[float, float] | None] | None:
    """For an axis with a box plan: the crop's outputs ``a .. b`` whose taps reach input
    ``lo + first .. lo + stop`` (all the others read none of it) and the box, relative
    to ``lo`` as the plan's, whose resize to ``b - a`` outputs gives exactly those
    outputs' integers; None when no box does (box edges are float32 in Pillow)."""
    n = plan.hi - plan.lo
    full = pil_weights(n, plan.box[0], plan.box[1], plan.crop)
    reached = np.flatnonzero(full[:, max(first, 0) : max(stop, 0)].any(axis=1))
    if reached.size == 0:
        return 0, 0, None
    a, b = int(reached[0]), int(reached[-1]) + 1
    if (a, b) == (0, plan.crop):
        return a, b, plan.box
    step = (plan.box[1] - plan.box[0]) / plan.crop
    b0, b1 = plan.box[0] + a * step, plan.box[0] + b * step
    if float(np.float32(b0)) != b0 or float(np.float32(b1)) != b1 or b1 > n:
        return None
    return (a, b, (b0, b1)) if _same_integers(pil_weights(n, b0, b1, b - a), full[a:b]) else None


@lru_cache(maxsize=4096)
def mirror_symmetric(size: int, out: int, start: int, crop: int) -> bool:
    """Whether resizing a flipped image (``size -> out``) and flipping the resized one
    agree on outputs ``start .. start + crop``: Pillow's integer weights of those rows
    equal those of the mirrored rows read backwards."""
    rows = pil_weights(size, 0.0, float(size), out, start, crop)
    mirrored = pil_weights(size, 0.0, float(size), out, out - start - crop, crop)
    return _same_integers(rows, mirrored[::-1, ::-1])


@lru_cache(maxsize=4096)
def pass_order(w: int, h: int, out_w: int, out_h: int) -> str | None:
    """Which pass Pillow's ``resize((out_w, out_h))`` of a ``w`` x ``h`` RGB image runs
    first: "hv" (horizontal, then vertical) or "vh"; None if it cannot be told.

    Pillow 9-12 always start with the horizontal pass; Pillow 13 starts with the
    vertical one when the height shrinks by more than twice as many pixels as the
    width. Rather than trust a version's rule, ask this Pillow once per size: resize a
    noise image in one call and in each order of two one-axis calls, and compare
    (about 1.5 ms for a 500 x 375 image, once per size).
    """
    if out_w == w or out_h == h:
        return "hv"  # a single pass (or none): the order does not matter
    # A one-band probe: Pillow chooses the order from the sizes alone, for every mode.
    probe = Image.fromarray(np.random.default_rng([w, h, out_w, out_h]).integers(0, 256, (h, w), dtype=np.uint8))
    size = (out_w, out_h)
    ref = probe.resize(size, Image.BILINEAR).tobytes()
    hv = probe.resize((out_w, h), Image.BILINEAR).resize(size, Image.BILINEAR).tobytes() == ref
    vh = probe.resize((w, out_h), Image.BILINEAR).resize(size, Image.BILINEAR).tobytes() == ref
    return None if hv == vh else "hv" if hv else "vh"


@dataclass(frozen=True)
class Geometry:
    """Resize shorter side to ``resize`` and centre crop ``crop`` of a ``w`` x ``h`` image."""

    w: int
    h: int
    crop: int
    x: AxisPlan
    y: AxisPlan
    order: str  # Pillow's pass order for this size, "hv" or "vh" (``pass_order``)

    @property
    def window(self) -> tuple[int, int, int, int]:
        """The source box (left, top, right, bottom) the crop reads."""
        return self.x.lo, self.y.lo, self.x.hi, self.y.hi


@lru_cache(maxsize=4096)
def geometry(w: int, h: int, resize: int, crop: int) -> Geometry | None:
    """The plan for one image size; None when the crop needs padding (crop larger than
    the resized image) or Pillow's pass order is unclear: the one-view path then."""
    rw, rh = resized_size(w, h, resize)
    if crop > rw or crop > rh:
        return None
    order = pass_order(w, h, rw, rh)
    if order is None:
        return None
    left, top = crop_start(rw, crop), crop_start(rh, crop)
    return Geometry(w, h, crop, axis_plan(w, rw, left, crop), axis_plan(h, rh, top, crop), order)


class Resampler:
    """The clean pipeline's crop x crop output from the window (``Geometry.window``) of
    a transformed image, for many views of one image size.

    Two one-axis resizes in Pillow's order (``Geometry.order``), each rounding to 8 bits
    as Pillow's passes do. An axis with a box plan is resampled as a sub-box; an axis
    without one gets a plain resize of its canvas (``AxisPlan.canvas``: the full length,
    or a shorter period-aligned stretch) holding the window where the image has it (the
    pixels around it feed only outputs that are cut away, so canvases are reused between
    views without clearing).
    """

    def __init__(self, g: Geometry):
        self.g = g
        self._canvases: OrderedDict[tuple[int, int], Image.Image] = OrderedDict()

    def _canvas(self, size: tuple[int, int]) -> Image.Image:
        """A canvas of this size, kept for the next view: the recently used few (bands of
        many heights come and go, the full window's height stays)."""
        if size in self._canvases:
            self._canvases.move_to_end(size)
        else:
            if len(self._canvases) >= 8:
                self._canvases.popitem(last=False)
            self._canvases[size] = Image.new("RGB", size)
        return self._canvases[size]

    def _horizontal(self, im: Image.Image) -> Image.Image:
        """Columns x.lo:x.hi in -> the crop's columns out."""
        x, c, rows = self.g.x, self.g.crop, im.height
        if x.box:
            return im.resize((c, rows), Image.BILINEAR, box=(x.box[0], 0, x.box[1], rows))
        wide = self._canvas((x.canvas[1], rows))
        wide.paste(im, (x.lo - x.canvas[0], 0))
        return self._resize_canvas(wide)

    def _resize_canvas(self, wide: Image.Image) -> Image.Image:
        """A canvas of the horizontal axis (``AxisPlan.canvas``) -> the crop's columns."""
        _, _, count, offset = self.g.x.canvas
        rows = wide.height
        return wide.resize((count, rows), Image.BILINEAR).crop((offset, 0, offset + self.g.crop, rows))

    def _vertical(self, im: Image.Image) -> Image.Image:
        """Rows y.lo:y.hi in -> the crop's rows out."""
        y, c, cols = self.g.y, self.g.crop, im.width
        if y.box:
            return im.resize((cols, c), Image.BILINEAR, box=(0, y.box[0], cols, y.box[1]))
        first, length, count, offset = y.canvas
        tall = self._canvas((cols, length))
        tall.paste(im, (0, y.lo - first))
        return tall.resize((cols, count), Image.BILINEAR).crop((0, offset, cols, offset + c))

    def __call__(self, window: Image.Image) -> Image.Image:
        if self.g.order == "hv":
            return self._vertical(self._horizontal(window))
        return self._horizontal(self._vertical(window))

    def band(self, band: Image.Image, top: int) -> Image.Image:
        """The crop from rows ``top .. top + band.height`` of the window when all its
        other rows are black (``content_rows``), for Pillow's order "hv" only.

        The horizontal pass runs on the band's rows alone: a black row resamples to a
        black row (Pillow's sums start at half a unit and add nothing).
        """
        if self.g.order != "hv":
            raise ValueError("Resampler.band follows Pillow's horizontal-first order only")
        return self._finish(self._horizontal(band), top)

    def warped(self, img: Image.Image, m: Sequence[float], top: int, bottom: int) -> Image.Image | None:
        """The crop of the warp of ``img`` by ``m`` when only rows ``top .. bottom`` of the
        window reach the image (``content_rows``; all rows, or a band): ``band`` of those
        rows of ``warp_window``. None for Pillow's order "vh" (``__call__`` then).

        Where the x axis has a canvas, the warp is written straight into it, with no
        window image and no paste: Pillow's region transform writes from column 0 of its
        target whatever the region's left edge, so it covers the canvas from its first
        column to the window's right edge, and the extra columns on the left feed only
        outputs that are cut away, like the canvas's stale pixels further right.
        """
        g = self.g
        if g.order != "hv":
            return None
        if g.x.canvas is not None:
            first, length = g.x.canvas[:2]
            sub = shifted_matrix(m, img.width, img.height, (first, g.y.lo + top, g.x.hi, g.y.lo + bottom))
            if sub is not None:
                wide = self._canvas((length, bottom - top))
                img.load()
                wide.im.transform((0, 0, g.x.hi - first, bottom - top), img.im, Image.AFFINE, sub, Image.NEAREST, 1)
                return self._finish(self._resize_canvas(wide), top)
        return self.band(warp_window(img, m, (g.x.lo, g.y.lo + top, g.x.hi, g.y.lo + bottom)), top)

    def _finish(self, passed: Image.Image, top: int) -> Image.Image:
        """The vertical pass on rows ``top ..`` of the window after the horizontal one
        (``passed``), the window's other rows being black: they are placed in black rows,
        and only the output rows that reach them are resampled where a box gives exactly
        those (``box_outputs``)."""
        g, c = self.g, self.g.crop
        rows = g.y.hi - g.y.lo
        if passed.height == rows:
            return self._vertical(passed)
        full = Image.new("RGB", (c, rows))
        full.paste(passed, (0, top))
        span = box_outputs(g.y, top, top + passed.height) if g.y.box else None
        if span is None:
            return self._vertical(full)
        first, stop, box = span  # only these output rows read the band; the others are black
        out = Image.new("RGB", (c, c))
        if stop > first:
            out.paste(full.resize((c, stop - first), Image.BILINEAR, box=(0, box[0], c, box[1])), (0, first))
        return out


_local = threading.local()


def resampler(g: Geometry) -> Resampler:
    """This thread's ``Resampler`` for ``g``, kept for the next image of that size so its
    canvases are reused (one per thread: loader threads render at the same time)."""
    cache = getattr(_local, "resamplers", None)
    if cache is None:
        cache = _local.resamplers = {}
    if g not in cache:
        if len(cache) >= 16:  # a few recent sizes: each holds canvases of ~0.5 MB
            cache.clear()
        cache[g] = Resampler(g)
    return cache[g]


# ------------------------------------------------------------------ warps on a window


def fix16(v: float) -> int:
    """Pillow's ``FIX``: 16.16 fixed point, ``floor(v * 65536 + 0.5)``."""
    return math.floor(v * 65536.0 + 0.5)


def _fixed_ok(m: Sequence[float], w: int, h: int) -> bool:
    """Pillow takes its 16.16 fixed-point path for this matrix and output size (not the
    pure-scaling path, and every corner within +-32768)."""
    if m[1] == 0 and m[3] == 0:
        return False
    return all(
        abs(x * m[0] + y * m[1] + m[2]) < 32768.0 and abs(x * m[3] + y * m[4] + m[5]) < 32768.0
        for x, y in ((0, 0), (w, h), (0, h), (w, 0))
    )


def _solve_constant(target: int, a: float, b: float) -> float | None:
    """A double c with Pillow's ``FIX(c + a * 0.5 + b * 0.5) == target``."""
    c = target / 65536.0 - a * 0.5 - b * 0.5
    for _ in range(4):
        got = fix16(c + a * 0.5 + b * 0.5)
        if got == target:
            return c
        c += (target - got) / 65536.0
    return None


def shifted_matrix(m: Sequence[float], w: int, h: int, box: tuple[int, int, int, int]) -> tuple[float, ...] | None:
    """The matrix whose Pillow warp onto ``box``'s size gives ``box`` of the full ``w`` x
    ``h`` warp by ``m``, pixel for pixel; None when that cannot be guaranteed. Cached: a
    family's grid meets the same matrices on every image of a size."""
    return _shifted_matrix(tuple(m), w, h, box)


@lru_cache(maxsize=4096)
def _shifted_matrix(m: tuple[float, ...], w: int, h: int, box: tuple[int, int, int, int]) -> tuple[float, ...] | None:
    ox, oy, x1, y1 = box
    if not _fixed_ok(m, w, h):
        return None
    a0, a1, a3, a4 = fix16(m[0]), fix16(m[1]), fix16(m[3]), fix16(m[4])
    c2 = _solve_constant(fix16(m[2] + m[0] * 0.5 + m[1] * 0.5) + ox * a0 + oy * a1, m[0], m[1])
    c5 = _solve_constant(fix16(m[5] + m[3] * 0.5 + m[4] * 0.5) + ox * a3 + oy * a4, m[3], m[4])
    if c2 is None or c5 is None:
        return None
    out = (m[0], m[1], c2, m[3], m[4], c5)
    return out if _fixed_ok(out, x1 - ox, y1 - oy) else None


def warp_window(img: Image.Image, m: Sequence[float], box: tuple[int, int, int, int]) -> Image.Image:
    """``box`` of ``img.transform(img.size, AFFINE, m)`` (nearest, black fill)."""
    w, h = img.size
    sub = shifted_matrix(m, w, h, box)
    if sub is None:
        return img.transform((w, h), Image.AFFINE, list(m), Image.NEAREST, fillcolor=_BLACK).crop(box)
    size = (box[2] - box[0], box[3] - box[1])
    out = Image.new(img.mode, size)  # black; Pillow leaves the pixels outside the image as they are
    img.load()
    out.im.transform((0, 0, *size), img.im, Image.AFFINE, sub, Image.NEAREST, 0)  # Image.transform's call
    return out


def _span(base: np.ndarray, step: int, lo: int, hi: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first and last x in ``0 .. n - 1`` with ``lo <= base + step * x <= hi``
    (exact integers; first > last where there is none)."""
    if step > 0:  # ceil((lo - base) / step), floor((hi - base) / step)
        return -((base - lo) // step), (hi - base) // step
    if step < 0:  # ceil((base - hi) / -step), floor((base - lo) / -step)
        return -((hi - base) // -step), (base - lo) // -step
    inside = (base >= lo) & (base <= hi)
    return np.where(inside, 0, n), np.where(inside, n - 1, -1)


@lru_cache(maxsize=4096)
def content_rows(m: tuple[float, ...], w: int, h: int, box: tuple[int, int, int, int]) -> tuple[int, int] | None:
    """The rows ``top .. bottom`` (relative to ``box``) of ``box`` of Pillow's warp of a
    ``w`` x ``h`` image by ``m`` (nearest, fixed point: ``_fixed_ok``) that hold a pixel
    of the image; every other row of the box is all fill. None off the fixed-point path.

    Pillow's pixel (x, y) reads source column ``X >> 16`` with ``X = a2 + y a1 + x a0``
    (``affine_fixed``'s integers, 32-bit without overflow there) and row ``Y >> 16``
    likewise; it is inside when ``0 <= X <= 65536 w - 1`` and ``0 <= Y <= 65536 h - 1``,
    an interval of x per row for each, computed exactly. A view that zooms out or shears
    hard leaves whole rows of the window black, and they need no resampling. Cached:
    a family's grid meets the same matrices on every image of a size.
    """
    if not _fixed_ok(m, w, h):
        return None
    a0, a1, a3, a4 = fix16(m[0]), fix16(m[1]), fix16(m[3]), fix16(m[4])
    a2, a5 = fix16(m[2] + m[0] * 0.5 + m[1] * 0.5), fix16(m[5] + m[3] * 0.5 + m[4] * 0.5)
    x0, y0, x1, y1 = box
    y = np.arange(y0, y1, dtype=np.int64)
    first_x, last_x = _span(a2 + y * a1 + x0 * a0, a0, 0, (w << 16) - 1, x1 - x0)
    first_y, last_y = _span(a5 + y * a4 + x0 * a3, a3, 0, (h << 16) - 1, x1 - x0)
    first = np.maximum(np.maximum(first_x, first_y), 0)
    last = np.minimum(np.minimum(last_x, last_y), x1 - x0 - 1)
    rows = np.flatnonzero(first <= last)
    if rows.size == 0:
        return 0, 0
    return int(rows[0]), int(rows[-1]) + 1


_FLIPPED = {
    Image.Transpose.FLIP_LEFT_RIGHT: (True, False),
    Image.Transpose.FLIP_TOP_BOTTOM: (False, True),
    Image.Transpose.ROTATE_180: (True, True),
}


def transposed_window(img: Image.Image, method: Image.Transpose, box: tuple[int, int, int, int]) -> Image.Image:
    """``box`` of ``img.transpose(method)``, transposing only that window for flips."""
    if method not in _FLIPPED:
        return img.transpose(method).crop(box)
    w, h = img.size
    fx, fy = _FLIPPED[method]
    x0, y0, x1, y1 = box
    src = (w - x1 if fx else x0, h - y1 if fy else y0, w - x0 if fx else x1, h - y0 if fy else y1)
    return img.crop(src).transpose(method)


# --------------------------------------------------------------- Pillow's matrices


def rotate_op(angle: float, w: int, h: int) -> tuple[str, Any]:
    """What ``Image.rotate(angle)`` (no expand, centre, translate) does: ("copy", None),
    ("transpose", method) or ("affine", inverse matrix), with Pillow's double arithmetic."""
    angle = angle % 360.0
    if angle == 0:
        return "copy", None
    if angle == 180:
        return "transpose", Image.Transpose.ROTATE_180
    if angle in (90, 270) and w == h:
        return "transpose", Image.Transpose.ROTATE_90 if angle == 90 else Image.Transpose.ROTATE_270
    cx, cy = w / 2, h / 2
    a = -math.radians(angle)
    m = [round(math.cos(a), 15), round(math.sin(a), 15), 0.0, round(-math.sin(a), 15), round(math.cos(a), 15), 0.0]
    m[2], m[5] = m[0] * -cx + m[1] * -cy + m[2], m[3] * -cx + m[4] * -cy + m[5]
    m[2] += cx
    m[5] += cy
    return "affine", m


def affine_matrix(p: dict[str, Any], w: int, h: int) -> list[float]:
    """The inverse matrix ``FT.affine(img, **p)`` hands to Pillow for a ``w`` x ``h``
    image, without importing torchvision: the same argument handling (a number as shear
    is ``[shear, 0]``, one value is used for both axes) and the same double operations
    in the same order (tests/test_render_batch.py compares it with torchvision's).

    With rotation ``r``, shears ``sx``/``sy`` and scale ``s`` about the centre
    ``(w/2, h/2)``, the forward linear part is ``[[a, b], [c, d]]`` with determinant 1;
    Pillow gets its inverse ``[[d, -b], [-c, a]] / s``, then the inverse of the
    translation and the centre shift.
    """
    import numbers

    angle, (tx, ty), shear, scale = p["angle"], p["translate"], p["shear"], p["scale"]
    if isinstance(shear, numbers.Number):
        shear = [shear, 0.0]
    shear = list(shear)
    if len(shear) == 1:
        shear = [shear[0], shear[0]]
    if len(shear) != 2:
        raise ValueError(f"shear must be a number or one or two values, got {p['shear']!r}")
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    cx, cy = w * 0.5, h * 0.5
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [x / scale for x in (d, -b, 0.0, -c, a, 0.0)]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    return m


# ------------------------------------------------------------------------- the views


# A window function: (img, source box) -> that box of the transformed full-size image.
Window = Callable[[Image.Image, "tuple[int, int, int, int]"], Image.Image]


def _window_of(op: str, arg: Any) -> Window:
    if op == "copy":
        return lambda img, box: img.crop(box)
    if op == "transpose":
        return lambda img, box: transposed_window(img, arg, box)
    return lambda img, box: warp_window(img, arg, box)


def _stack(views: list[Image.Image], crop: int) -> torch.Tensor:
    """PIL crop x crop views -> contiguous uint8 (N, 3, crop, crop). Pillow writes each
    band into its plane (cheaper than a strided channel transpose)."""
    import torch

    out = np.empty((len(views), 3, crop * crop), np.uint8)
    for i, v in enumerate(views):
        for band, raw in enumerate("RGB"):
            out[i, band] = np.frombuffer(v.tobytes("raw", raw), np.uint8)
    return torch.from_numpy(out.reshape(len(views), 3, crop, crop))


def windowed_views(img: Image.Image, ops: Sequence[tuple[str, Any]], resize: int, crop: int) -> torch.Tensor | None:
    """Views ``finish(op(img))`` for each op of ``rotate_op``'s kinds, rendering only the
    window of each transformed image the crop reads; None when the geometry needs the
    one-view path."""
    g = geometry(img.width, img.height, resize, crop)
    if g is None:
        return None
    resample = resampler(g)
    views = []
    for op, arg in ops:
        rows = content_rows(tuple(arg), img.width, img.height, g.window) if op == "affine" else None
        view = None
        if rows is not None and img.mode == "RGB":
            # A black view when nothing of the image reaches the window.
            view = Image.new("RGB", (crop, crop)) if rows[0] == rows[1] else resample.warped(img, arg, *rows)
        views.append(view if view is not None else resample(_window_of(op, arg)(img, g.window)))
    return _stack(views, crop)


def point_views(
    img: Image.Image,
    make: Callable[[Image.Image, tuple[int, int, int, int]], Iterable[Image.Image]],
    resize: int,
    crop: int,
    margin: int = 0,
) -> torch.Tensor | None:
    """Views ``finish(op(img))`` for operations that set each pixel from the pixels
    within ``margin`` of it (the appearance families; statistics of the whole image, such
    as contrast's mean, are the caller's): ``make(part, box)`` yields the transformed
    ``part``, the crop's window grown by ``margin`` and clipped to the image (``box``, in
    image pixels), once per view; each is cut back to the window and resampled
    (``Resampler``). None when the geometry needs the one-view path.

    The grown edges are where an operation on ``part`` differs from one on the whole
    image (a filter's border rule, a blur's padding); where ``box`` meets the image's own
    edge the two agree, and elsewhere the ``margin`` pixels are cut away.
    """
    g = geometry(img.width, img.height, resize, crop)
    if g is None or img.mode != "RGB":
        return None
    x0, y0, x1, y1 = g.window
    box = (max(x0 - margin, 0), max(y0 - margin, 0), min(x1 + margin, img.width), min(y1 + margin, img.height))
    inner = (x0 - box[0], y0 - box[1], x1 - box[0], y1 - box[1])
    whole = inner == (0, 0, box[2] - box[0], box[3] - box[1])
    resample = resampler(g)
    return _stack([resample(v if whole else v.crop(inner)) for v in make(img.crop(box), box)], crop)


#: ``clean_window`` plans an image size once it has seen it this many times.
CLEAN_AFTER = 3
_sizes_seen: dict[tuple[int, int, int, int], int] = {}


def clean_window(img: Image.Image, resize: int, crop: int) -> torch.Tensor | None:
    """``pipeline.clean_view(img, resize, crop)``, the same bytes, resampling only the
    window the centre crop reads (``Resampler``); None, for the plain path, on the first
    ``CLEAN_AFTER`` calls with each (width, height, resize, crop) in this process, on a
    geometry ``windowed_views`` does not cover, and for an image not in RGB mode.

    Planning a size costs about 2 ms (mostly ``pass_order``'s probe), more than the
    plain clean view, and a photo collection has a long tail of sizes seen once: only
    sizes that recur are planned (the plans are cached, ``geometry``).
    """
    if img.mode != "RGB":
        return None
    key = (img.width, img.height, resize, crop)
    seen = _sizes_seen.get(key, 0)
    if seen < CLEAN_AFTER:
        _sizes_seen[key] = seen + 1
        return None
    view = point_views(img, lambda window, box: (window,), resize, crop)  # no operation: the clean view
    return None if view is None else view[0]


def flip_views(img: Image.Image, flags: Sequence[bool], method: Image.Transpose, resize: int, crop: int):
    """Clean (False) and flipped (True) views sharing one resize when Pillow's weights
    along the flipped axis are mirror-symmetric on the crop; None for the one-view path."""
    w, h = img.size
    rw, rh = resized_size(w, h, resize)
    if crop > rw or crop > rh:
        return None
    c = crop
    x0, y0 = crop_start(rw, c), crop_start(rh, c)
    horizontal = method == Image.Transpose.FLIP_LEFT_RIGHT
    if not (mirror_symmetric(w, rw, x0, c) if horizontal else mirror_symmetric(h, rh, y0, c)):
        return windowed_views(img, [("transpose", method) if f else ("copy", None) for f in flags], resize, crop)
    # flip(resize(img)) == resize(flip(img)) on the crop: the flipped view is the
    # mirrored window of the clean resize (the same one call, whatever its pass order).
    resized = img.resize((rw, rh), Image.BILINEAR) if (rw, rh) != img.size else img
    clean = resized.crop((x0, y0, x0 + c, y0 + c))
    if horizontal:
        x0 = rw - x0 - c
    else:
        y0 = rh - y0 - c
    flipped = resized.crop((x0, y0, x0 + c, y0 + c)).transpose(method)
    return _stack([flipped if f else clean for f in flags], crop)


def translation_views(img: Image.Image, params: Sequence[dict[str, Any]], resize: int, crop: int):
    """``center_crop(FT.affine(resize(img), **p))`` for each p, warping only the crop
    window of the resized image; None for the one-view path."""
    from sslinv.transforms.pipeline import resize_shorter

    resized = resize_shorter(img, resize)
    rw, rh = resized.size
    if crop > rw or crop > rh:
        return None
    left, top = crop_start(rw, crop), crop_start(rh, crop)
    box = (left, top, left + crop, top + crop)
    return _stack([warp_window(resized, affine_matrix(p, rw, rh), box) for p in params], crop)


def resized_crop_views(img: Image.Image, params: Sequence[dict[str, Any]], crop: int):
    """``FT.resized_crop(img, top, left, height, width, [crop, crop])`` for each param;
    None for the one-view path.

    PIL crops with each box edge rounded (Python ``round``, zero padding outside), then
    resizes the box. Rows are independent in the horizontal pass and columns in the
    vertical one, so views with the same columns share a horizontal pass, and views with
    the same rows share a vertical pass, run once on their bands side by side (boxes
    Pillow resizes vertically first are rendered one call each).
    """
    import torch

    boxes = [
        (round(p["left"]), round(p["top"]), round(p["left"] + p["width"]), round(p["top"] + p["height"]))
        for p in params
    ]
    if any(x1 <= x0 or y1 <= y0 for x0, y0, x1, y1 in boxes):
        return None
    out = np.empty((len(boxes), 3, crop, crop), np.uint8)
    columns: dict[tuple[int, int], list[int]] = {}
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        if pass_order(x1 - x0, y1 - y0, crop, crop) == "hv":
            columns.setdefault((x0, x1), []).append(i)
        else:  # Pillow resizes this box vertically first (or the order is unclear)
            _planes(out, [i], img.crop(boxes[i]).resize((crop, crop), Image.BILINEAR), crop)
    # Horizontal passes, one per column box, over the rows its views use.
    passed: dict[int, tuple[Image.Image, int]] = {}
    for (x0, x1), members in columns.items():
        r0 = min(boxes[i][1] for i in members)
        r1 = max(boxes[i][3] for i in members)
        band = img.crop((x0, r0, x1, r1))
        if x1 - x0 != crop:
            band = band.resize((crop, r1 - r0), Image.BILINEAR)
        passed.update((i, (band, r0)) for i in members)
    # Vertical passes, one per row box, on the views' rows side by side.
    rows: dict[tuple[int, int], list[int]] = {}
    for i in passed:
        rows.setdefault((boxes[i][1], boxes[i][3]), []).append(i)
    for (y0, y1), members in rows.items():
        strip = Image.new("RGB", (crop * len(members), y1 - y0))
        for j, i in enumerate(members):
            band, r0 = passed[i]
            strip.paste(band, (crop * j, r0 - y0))  # rows y0:y1 of the band; Pillow clips the rest
        if y1 - y0 != crop:
            strip = strip.resize((strip.width, crop), Image.BILINEAR)
        _planes(out, members, strip, crop)
    return torch.from_numpy(out)


def _planes(out: np.ndarray, index: list[int], strip: Image.Image, crop: int) -> None:
    """Write views lying side by side in ``strip`` (crop x crop each) into
    ``out[index]``, one band at a time."""
    n = len(index)
    for band, raw in enumerate("RGB"):
        plane = np.frombuffer(strip.tobytes("raw", raw), np.uint8).reshape(crop, n, crop)
        out[index, band] = plane.transpose(1, 0, 2)
