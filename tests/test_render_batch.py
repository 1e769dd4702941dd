"""Batched PIL rendering (``Family.views``, sslinv.transforms.pil_fast) against stacked
``Family.view`` calls, byte for byte, for the geometric and the appearance families.

The images are uniform noise, so a pixel taken from the wrong place shows. A weight off
by one unit in 2^22 would change few pixels, so Pillow's weights themselves are checked
against ``pil_weights`` (``test_weights_are_pillows``), read from a 32-bit resize of an
identity image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as FT
from PIL import Image

from sslinv.transforms import get_family
from sslinv.transforms import pil_fast as P
from sslinv.transforms.pipeline import clean_view

GEOMETRIC = ["rotation", "translation", "scale", "shear", "resized_crop", "h_flip", "v_flip"]
PAIRS = [(256, 224), (128, 112), (224, 224), (73, 64)]
# (width, height): landscape / portrait, odd / even, square, the benchmark's 500 x 375.
SIZES = [(500, 375), (375, 500), (400, 400), (333, 500), (201, 599), (598, 203), (256, 256), (457, 311)]
# (width, height, resize, crop) where an axis without a box plan resizes a canvas shorter
# than the image: landscape / portrait, odd sizes, upscaling, canvases ending at the
# image's last pixel (marked), at 128/112, 256/224 and 224/224.
CANVAS_SIZES = [
    (500, 375, 128, 112), (375, 500, 128, 112), (640, 480, 128, 112), (371, 297, 128, 112),
    (503, 732, 128, 112), (580, 189, 256, 224), (225, 405, 256, 224), (251, 668, 224, 224),
    (462, 430, 256, 224),  # ends at the image's right edge
    (642, 791, 256, 224),  # ends at the bottom edge
    (216, 199, 224, 224),  # ends at the right edge, height upscaled
    (159, 196, 256, 224),  # ends at the bottom edge, both axes upscaled
]  # fmt: skip


def noise(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)


def random_params(name: str, rng: np.random.Generator, resize: int) -> list[dict]:
    """Grid-like and off-grid parameters, with the special cases of each family."""
    u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    if name == "rotation":
        return [{"angle": a} for a in (0.0, 90.0, 180.0, 270.0, -90.0, 360.0, u(-400, 400), u(0, 360))]
    if name == "translation":
        d = resize / 4
        shifts = [[0.0, 0.0], [u(-d, d), u(-d, d)], [u(-d, d), u(-d, d)], [-d, d]]
        return [{"angle": 0.0, "translate": t, "scale": 1.0, "shear": s} for t in shifts for s in (1.0, 0.0)]
    if name == "scale":
        return [{"angle": 0.0, "translate": [0, 0], "scale": f, "shear": s}
                for f in (0.25, u(0.25, 2), u(0.25, 2), 2.0) for s in (1.0, 0.0)]  # fmt: skip
    if name == "shear":
        pairs = [[0.0, 0.0], [u(-160, 160), u(-160, 160)], [u(-160, 160), 0.0], [0.0, u(-160, 160)], [-160.0, 120.0]]
        return [{"angle": 0.0, "translate": [0, 0], "scale": 1.0, "shear": s} for s in pairs]
    if name == "resized_crop":
        boxes = [[u(0, 0.3), u(0, 0.3), u(0.2, 0.8), u(0.2, 0.8)] for _ in range(5)]
        boxes += [[0.0, 0.0, 0.75, 0.75], [0.0, 0.0, 0.75, 0.25], [2.0, 0.1, 0.5, 3.0]]  # the last one pads
        return [{"top": t * resize, "left": l * resize, "height": h * resize, "width": w * resize}
                for t, l, h, w in boxes]  # fmt: skip
    return [{"apply": a} for a in (False, True, True, False)]


def assert_same_views(name: str, img: Image.Image, params: list[dict], resize: int, crop: int) -> None:
    fam = get_family(name)
    batched = fam.views(img, params, resize, crop, seed=3)
    single = torch.stack([fam.view(img, p, resize, crop, seed=3) for p in params])
    assert batched.dtype == torch.uint8 and batched.is_contiguous()
    assert batched.shape == single.shape == (len(params), 3, crop, crop)
    diff = (batched != single).any(dim=(1, 2, 3)).nonzero().flatten().tolist()
    assert not diff, f"{name} {img.size} {resize}/{crop}: views {[params[i] for i in diff]} differ"


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_views_are_the_stacked_single_views(name, size):
    rng = np.random.default_rng([size[0], size[1], len(name)])
    img = noise(*size, seed=size[0])
    i = SIZES.index(size)
    for resize, crop in (PAIRS[i % len(PAIRS)], PAIRS[(i + 1) % len(PAIRS)]):  # each pair on four sizes
        params = random_params(name, rng, resize) + get_family(name).grid(16, resize, crop).params[::4]
        assert_same_views(name, img, params, resize, crop)


@pytest.mark.parametrize("resize_crop", [(256, 96), (256, 224), (300, 64)], ids=lambda s: f"{s[0]}-{s[1]}")
def test_resized_crop_grid_including_boxes_pillow_resizes_vertically_first(resize_crop):
    # resize 256 / crop 96: boxes of 192 x 64 shrink in height more than twice as many
    # pixels as in width, which Pillow 13 resizes vertically first.
    resize, crop = resize_crop
    params = get_family("resized_crop").grid(256, resize, crop).params
    for size in ((500, 375), (300, 700)):
        assert_same_views("resized_crop", noise(*size), params, resize, crop)


@pytest.mark.slow
@pytest.mark.parametrize("name", GEOMETRIC)
def test_views_are_the_stacked_single_views_over_many_sizes(name):
    rng = np.random.default_rng(len(name))
    for i in range(40):
        w, h = (int(v) for v in rng.integers(200, 601, 2))
        for resize, crop in PAIRS:
            assert_same_views(name, noise(w, h, seed=i), random_params(name, rng, resize), resize, crop)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_padding_and_small_images_take_the_single_view_path(name):
    # crop larger than the resized image (centre crop pads), and tiny images.
    rng = np.random.default_rng(0)
    for (w, h), resize, crop in [((300, 200), 64, 100), ((30, 17), 24, 20), ((9, 40), 8, 8)]:
        assert_same_views(name, noise(w, h, seed=w), random_params(name, rng, resize), resize, crop)


def test_non_rgb_images_are_converted_first():
    for mode in ("L", "RGBA", "CMYK"):
        img = noise(320, 240, seed=5, mode=mode)
        assert_same_views("rotation", img, [{"angle": 33.0}, {"angle": 180.0}], 128, 112)


def test_empty_params():
    assert get_family("scale").views(noise(64, 48), [], 32, 28).shape == (0, 3, 28, 28)


# --- appearance families: the window of each pixel operation -------------------------

APPEARANCE = ["grayscale", "brightness", "contrast", "saturation", "hue", "blur", "sharpness", "invert", "posterize"]


def appearance_params(name: str, rng: np.random.Generator, resize: int, crop: int) -> list[dict]:
    """The family's grid points and values off the grid (the identities, extremes)."""
    u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    grid = get_family(name).grid(8, resize, crop).params
    extra = {
        "brightness": [{"brightness_factor": f} for f in (0.0, 1.0, u(0, 8), -0.5)],  # PIL extrapolates
        "contrast": [{"contrast_factor": f} for f in (0.0, 1.0, u(0, 8), -0.5)],
        "saturation": [{"saturation_factor": f} for f in (0.0, 1.0, u(0, 8))],
        "hue": [{"hue_factor": f} for f in (-0.5, 0.5, 0.0, u(-0.5, 0.5))],
        "sharpness": [{"sharpness_factor": f} for f in (0.0, 1.0, u(0, 40))],
        "blur": [{"kernel_size": [k, k2], "sigma": [u(0.1, 9), u(0.1, 9)]} for k, k2 in ((3, 9), (31, 5))],
        "posterize": [{"bits": b} for b in (1, 8)],
    }
    return grid + extra.get(name, [])


@pytest.mark.parametrize("name", APPEARANCE)
@pytest.mark.parametrize("size", SIZES + [(230, 230), (224, 300)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_appearance_views_are_the_stacked_single_views(name, size):
    # Window edges inside the image, and windows that reach the image's own edges (a
    # square image at 224/224, an image barely larger than the crop).
    rng = np.random.default_rng([size[0], size[1], len(name)])
    img = noise(*size, seed=size[0] + size[1])
    for resize, crop in PAIRS:
        assert_same_views(name, img, appearance_params(name, rng, resize, crop), resize, crop)


def test_hue_views_refuse_what_a_single_view_refuses():
    fam, img = get_family("hue"), noise(300, 200)
    for shift in (0.7, -0.51):
        with pytest.raises(ValueError, match="hue_factor"):
            fam.view(img, {"hue_factor": shift}, 128, 112)
        with pytest.raises(ValueError, match="hue_factor"):
            fam.views(img, [{"hue_factor": 0.1}, {"hue_factor": shift}], 128, 112)


# --- Pillow's arithmetic ------------------------------------------------------------


def pillow_weights_q30(in_size: int, out: int, box: tuple[float, float] | None) -> np.ndarray:
    """Pillow's own weights (out, in) times 2^30, rounded: a 32-bit integer image resize
    uses the double weights directly, and row r of an identity image times 2^30 answers
    with column r of the weight table."""
    eye = Image.fromarray(np.eye(in_size, dtype=np.int32) * (1 << 30))
    b0, b1 = (0.0, float(in_size)) if box is None else box
    return np.asarray(eye.resize((out, in_size), Image.BILINEAR, box=(b0, 0, b1, in_size))).astype(np.int64).T


def ours_q30(in_size: int, out: int, box: tuple[float, float] | None) -> np.ndarray:
    b0, b1 = (0.0, float(in_size)) if box is None else box
    k = P.pil_weights(in_size, b0, b1, out) * float(1 << 30)
    return np.trunc(k + 0.5).astype(np.int64)  # Pillow's ROUND_UP for k >= 0


def test_weights_are_pillows():
    rng = np.random.default_rng(0)
    cases = [(375, 256, None), (500, 341, None), (37, 400, None), (600, 73, None)]
    plans = [(w, h, resize, crop) for w, h in SIZES for resize, crop in PAIRS] + CANVAS_SIZES
    for w, h, resize, crop in plans:  # the boxes and canvases the plans use
        g = P.geometry(w, h, resize, crop)
        for axis in (g.x, g.y) if g else ():
            cases.append((axis.size, axis.out, None))
            if axis.box:
                cases.append((axis.hi - axis.lo, axis.crop, axis.box))
            else:
                cases.append((axis.canvas[1], axis.canvas[2], None))
    for _ in range(40):
        size, out = int(rng.integers(10, 600)), int(rng.integers(5, 400))
        a = float(rng.uniform(0, size / 2))
        cases.append((size, out, (a, float(rng.uniform(a + 1, size)))))
    for size, out, box in cases:
        assert np.array_equal(pillow_weights_q30(size, out, box), ours_q30(size, out, box)), (size, out, box)


def test_plans():
    # 375 -> 256 scales by 375/256, a short binary fraction: the crop rows resample as a
    # box; 500 -> 341 does not (its box edges would round to float32).
    g = P.geometry(500, 375, 256, 224)
    assert g.y.box is not None and g.x.box is None
    assert (g.x.start, g.y.start) == (58, 16)
    assert g.window == (g.x.lo, g.y.lo, g.x.hi, g.y.hi)
    assert 0 < g.x.lo < 58 * 500 / 341 and 282 * 500 / 341 < g.x.hi < 500
    assert P.geometry(300, 200, 64, 100) is None  # needs padding
    assert P.mirror_symmetric(500, 341, 58, 224) and P.mirror_symmetric(375, 256, 16, 224)
    assert not P._same_integers(np.array([[0.5, 0.5]]), np.array([[0.5, 0.5 + 2**-20]]))


def test_warp_window_is_the_window_of_the_full_warp():
    img = noise(301, 207, seed=2)
    rng = np.random.default_rng(2)
    for angle in (0.5, 33.0, 90.0, 271.3):
        op, m = P.rotate_op(angle, *img.size)
        assert op == "affine"
        full = img.rotate(angle)
        for _ in range(5):
            x0, y0 = int(rng.integers(0, 150)), int(rng.integers(0, 100))
            box = (x0, y0, x0 + int(rng.integers(1, 150)), y0 + int(rng.integers(1, 100)))
            assert P.shifted_matrix(m, *img.size, box) is not None
            assert P.warp_window(img, m, box).tobytes() == full.crop(box).tobytes()


def test_pure_scaling_and_float_warps_fall_back_to_the_full_warp():
    m = P.affine_matrix({"angle": 0.0, "translate": [0, 0], "scale": 0.5, "shear": 0.0}, 200, 100)
    assert m[1] == 0 and m[3] == 0  # Pillow's ImagingScaleAffine, not the fixed-point path
    assert P.shifted_matrix(m, 200, 100, (10, 10, 50, 50)) is None
    img = noise(200, 100)
    full = FT.affine(img, angle=0.0, translate=[0, 0], scale=0.5, shear=0.0)
    assert P.warp_window(img, m, (10, 10, 50, 50)).tobytes() == full.crop((10, 10, 50, 50)).tobytes()
    far = [1.0, 0.2, 40000.0, 0.1, 1.0, 0.0]  # coordinates beyond 16.16 fixed point
    assert P.shifted_matrix(far, 200, 100, (0, 0, 10, 10)) is None


@pytest.mark.parametrize("method", ["FLIP_LEFT_RIGHT", "FLIP_TOP_BOTTOM", "ROTATE_180", "ROTATE_90", "TRANSPOSE"])
def test_transposed_window(method):
    img = noise(123, 77, seed=1)
    t = Image.Transpose[method]
    full = img.transpose(t)
    box = (5, 7, 60, 40)
    assert P.transposed_window(img, t, box).tobytes() == full.crop(box).tobytes()


def test_pass_order_follows_this_pillow():
    # One call against both orders of two one-axis calls, on a size where the orders
    # give different bytes: the probe must name the one that matches.
    img = noise(201, 599, seed=4)
    order = P.pass_order(201, 599, 128, 381)
    first = (201, 381) if order == "vh" else (128, 599)
    two_calls = img.resize(first, Image.BILINEAR).resize((128, 381), Image.BILINEAR)
    assert two_calls.tobytes() == img.resize((128, 381), Image.BILINEAR).tobytes()
    assert P.pass_order(500, 375, 341, 256) == "hv"  # Pillow 9-13 agree on the usual sizes
    assert P.pass_order(500, 375, 500, 256) == "hv"  # one pass only


# --- rows the warp leaves black -------------------------------------------------------


def affine_ops(w: int, h: int, rng: np.random.Generator) -> list[list[float]]:
    """Matrices of the affine families: grid points, random ones, and warps that leave a
    band of the window or nothing of it (far shifts, small scales, hard shears)."""
    params = [p for name in ("scale", "shear") for p in get_family(name).grid(16, 256, 224).params]
    u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    params += [{"angle": u(-180, 180), "translate": [u(-w, w), u(-h, h)], "scale": u(0.1, 2), "shear": [u(-80, 80), 0.0]}
               for _ in range(12)]  # fmt: skip
    params += [{"angle": 0.0, "translate": [0.0, dy * h], "scale": 0.3, "shear": 1.0} for dy in (-2, -0.4, 0.45, 3)]
    matrices = [P.affine_matrix(p, w, h) for p in params]
    matrices += [P.rotate_op(a, w, h)[1] for a in (10.0, 45.0, 90.0, 200.0)]
    return matrices


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (201, 599), (457, 311)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_content_rows_are_the_rows_the_warp_reaches(size):
    w, h = size
    white = Image.new("RGB", size, (255, 255, 255))
    rng = np.random.default_rng(w)
    seen = set()
    for resize, crop in ((256, 224), (128, 112)):
        g = P.geometry(w, h, resize, crop)
        for m in affine_ops(w, h, rng):
            rows = P.content_rows(tuple(m), w, h, g.window)
            if rows is None:  # off the fixed-point path
                assert not P._fixed_ok(m, w, h)
                continue
            reached = np.flatnonzero(np.asarray(P.warp_window(white, m, g.window)).any(axis=(1, 2)))
            assert rows == ((int(reached[0]), int(reached[-1]) + 1) if reached.size else (0, 0)), m
            seen.add("none" if rows[0] == rows[1] else "all" if rows == (0, g.y.hi - g.y.lo) else "band")
    assert seen == {"none", "band", "all"}


@pytest.mark.parametrize("case", [(500, 375, 256, 224), (500, 375, 128, 112), (375, 500, 256, 224),
                                  (201, 599, 128, 112), (457, 311, 224, 224), (640, 480, 128, 112)],
                         ids=lambda s: "{}x{}-{}-{}".format(*s))  # fmt: skip
def test_windowed_views_of_warps_that_leave_rows_black(case):
    # Each view against the one-view path (Pillow's full warp, resize, centre crop):
    # rows with nothing of the image, warps straight into the horizontal canvas, bands.
    from sslinv.transforms.pipeline import finish

    w, h, resize, crop = case
    img = noise(w, h, seed=w)
    ops = affine_ops(w, h, np.random.default_rng(h))
    views = P.windowed_views(img, [("affine", m) for m in ops], resize, crop)
    for m, view in zip(ops, views):
        full = img.transform((w, h), Image.AFFINE, list(m), Image.NEAREST, fillcolor=(0, 0, 0))
        assert torch.equal(view, finish(full, resize, crop)), m


@pytest.mark.parametrize("case", [(500, 375, 256, 224), (500, 375, 128, 112), (375, 500, 256, 224),
                                  (640, 480, 128, 112), (159, 196, 256, 224)],
                         ids=lambda s: "{}x{}-{}-{}".format(*s))  # fmt: skip
def test_band_is_the_window_with_black_rows_around_it(case):
    # Any band of rows, at the window's edges too and one row high: resampling the band
    # alone (horizontal pass on its rows, vertical pass on the output rows that reach
    # it) gives the bytes of resampling the whole window with the other rows black.
    w, h, resize, crop = case
    g = P.geometry(w, h, resize, crop)
    resample = P.Resampler(g)
    rows, cols = g.y.hi - g.y.lo, g.x.hi - g.x.lo
    rng = np.random.default_rng(w * h)
    bands = [(0, rows), (0, 1), (rows - 1, rows), (0, rows // 2), (rows // 3, rows)]
    bands += [tuple(sorted(int(v) for v in rng.choice(rows + 1, 2, replace=False))) for _ in range(8)]
    for top, bottom in bands:
        band = noise(cols, bottom - top, seed=top)
        window = Image.new("RGB", (cols, rows))
        window.paste(band, (0, top))
        assert resample.band(band, top).tobytes() == resample(window).tobytes(), (top, bottom)


def test_box_outputs_gives_the_rows_of_the_full_box():
    g = P.geometry(500, 375, 256, 224)
    n = g.y.hi - g.y.lo
    assert P.box_outputs(g.y, 0, n) == (0, 224, g.y.box)
    first, stop, box = P.box_outputs(g.y, 100, 150)
    assert 0 < first < stop < 224 and g.y.box[0] < box[0] < box[1] < g.y.box[1]
    full = P.pil_weights(n, *g.y.box, 224)
    assert not full[:first, 100:150].any() and not full[stop:, 100:150].any()
    assert full[first, 100:150].any() and full[stop - 1, 100:150].any()
    assert P.box_outputs(g.y, 400, 500)[:2] == (0, 0)  # below the window: no output reaches it


# --- period-aligned canvases ---------------------------------------------------------


def short_canvases(w: int, h: int, resize: int, crop: int) -> list[P.AxisPlan]:
    g = P.geometry(w, h, resize, crop)
    return [a for a in (g.x, g.y) if a.box is None and a.canvas[1] < a.size]


@pytest.mark.parametrize("case", CANVAS_SIZES, ids=lambda s: "{}x{}-{}-{}".format(*s))
def test_canvas_views_are_the_stacked_single_views(case):
    w, h, resize, crop = case
    assert short_canvases(*case), "the plan no longer takes a shorter canvas here"
    img = noise(w, h, seed=w + h)
    rng = np.random.default_rng(w)
    for name in ("rotation", "scale", "shear"):
        assert_same_views(name, img, random_params(name, rng, resize), resize, crop)


def test_plan_takes_a_shorter_canvas_for_500x375():
    # 500 -> 170 is 50 / 17: input 50:450 resized to 136 outputs holds the crop's 112
    # from output 12 on (29 - 17); at resize 256, 500 -> 341 has no shorter period.
    g = P.geometry(500, 375, 128, 112)
    assert g.x.box is None and g.x.canvas == (50, 400, 136, 12)
    assert 50 <= g.x.lo and g.x.hi <= 450 and g.y.box is not None and g.y.canvas is None
    assert P.geometry(375, 500, 128, 112).y.canvas == (50, 400, 136, 12)
    assert P.geometry(500, 375, 256, 224).x.canvas == (0, 500, 341, 58)


def test_aligned_canvas_against_pillow_along_one_axis():
    # Random axes (shrinking and enlarging) and crops anywhere, including crops from
    # output 0 (lo == 0) and up to the last output (hi == size): wherever the plan takes
    # a canvas, Pillow's resize of it gives the crop of Pillow's full resize.
    rng = np.random.default_rng(0)
    taken, at_edges = 0, set()
    for _ in range(600):
        size = int(rng.integers(10, 700))
        out = int(rng.integers(3, 3 * size))
        crop = int(rng.integers(1, out + 1))
        start = int(rng.choice([0, out - crop, rng.integers(0, out - crop + 1)]))
        a = P.axis_plan(size, out, start, crop)
        if a.box is not None:
            continue
        first, length, count, offset = a.canvas
        assert first <= a.lo and a.hi <= first + length <= size
        if length == size:
            assert a.canvas == (0, size, out, start)
            continue
        taken += 1
        at_edges.update(edge for edge, hit in (("lo", a.lo == 0), ("hi", a.hi == size)) if hit)
        line = noise(size, 2, seed=size)
        full = line.resize((out, 2), Image.BILINEAR).crop((start, 0, start + crop, 2))
        short = line.crop((first, 0, first + length, 2)).resize((count, 2), Image.BILINEAR)
        assert short.crop((offset, 0, offset + crop, 2)).tobytes() == full.tobytes(), (size, out, start, crop)
    assert taken > 50 and at_edges == {"lo", "hi"}


# --- the windowed clean view ---------------------------------------------------------


def test_clean_window_is_clean_view_once_a_size_recurs(monkeypatch):
    monkeypatch.setattr(P, "_sizes_seen", {})
    sizes = [(500, 375, 128, 112), (375, 500, 256, 224), (462, 430, 256, 224), (201, 599, 73, 64), (224, 224, 224, 224)]
    for w, h, resize, crop in sizes:
        for i in range(P.CLEAN_AFTER):  # the first calls with a size: the plain path
            assert P.clean_window(noise(w, h, seed=i), resize, crop) is None
        for i in range(3):
            img = noise(w, h, seed=10 + i)
            got = P.clean_window(img, resize, crop)
            assert got is not None and got.is_contiguous()
            assert torch.equal(got, clean_view(img, resize, crop)), (w, h, resize, crop)
    # Counted per (width, height, resize, crop): a new crop or a transposed size starts over.
    assert P.clean_window(noise(500, 375), 128, 96) is None
    assert P.clean_window(noise(375, 500), 128, 112) is None
    assert P.clean_window(noise(500, 375), 128, 112) is not None


def test_clean_window_declines_what_it_does_not_cover(monkeypatch):
    monkeypatch.setattr(P, "_sizes_seen", {})
    for _ in range(P.CLEAN_AFTER + 1):
        assert P.clean_window(noise(300, 200), 64, 100) is None  # the crop pads
        assert P.clean_window(noise(320, 240, mode="L"), 128, 112) is None  # not RGB


def test_views_rendered_by_threads_at_once_are_the_serial_ones():
    """Loader threads render at the same time, each with its own canvases (``resampler``
    is per thread): the bytes do not depend on what the other threads do."""
    from concurrent.futures import ThreadPoolExecutor

    families = [get_family(name) for name in ("rotation", "scale", "hue", "sharpness")]
    imgs = [noise(500, 375, seed) for seed in range(12)]

    def render(img):
        views = [fam.views(img, fam.grid(8, 128, 112).params, 128, 112) for fam in families]
        return torch.cat(views), clean_view(img, 128, 112)

    serial = [render(img) for img in imgs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(render, imgs))
    for (a, ca), (b, cb) in zip(serial, threaded):
        assert torch.equal(a, b) and torch.equal(ca, cb)
