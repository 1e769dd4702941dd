"""Synthetic transformation families: grids against the protocol table, views, identities.

Parametrized over the FAMILIES registry: a family added without an entry in EXPECTED
below fails ``test_every_family_is_covered``.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as FT
from PIL import Image

from sslinv.errors import UnknownNameError
from sslinv.registry import Registry
from sslinv.transforms import (
    FAMILIES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Family,
    Grid,
    clean_view,
    get_family,
)
from sslinv.transforms.elastic import elastic_deform
from sslinv.transforms.families import gaussian_blur

ORDER = [
    "rotation", "translation", "scale", "shear", "resized_crop", "h_flip", "v_flip", "deform",
    "grayscale", "brightness", "contrast", "saturation", "hue", "blur", "sharpness", "invert",
    "equalize", "posterize",
]  # fmt: skip

# Protocol table (protocols.md section 2) at resize 256 / crop 224, computed by hand:
# name -> (default_k, max_k, kind, {k: (n_views, identity, first value, last value)}).
# k=None is the default k. Values are the Grid.values entries.
F, T_ = False, True
EXPECTED: dict[str, tuple] = {
    "rotation": (256, None, "spatial", {
        None: (256, 0, 0.0, 360 * 255 / 256), 16: (16, 0, 0.0, 337.5), 4: (4, 0, 0.0, 270.0)}),
    # s = (1 - 224/256)/2 = 1/16; a = first_m(linspace(-s, s, m+1)) * 256
    "translation": (256, None, "spatial", {
        None: (256, 136, [-16.0, -16.0], [14.0, 14.0]),
        16: (16, 10, [-16.0, -16.0], [8.0, 8.0]),
        4: (4, 3, [-16.0, -16.0], [0.0, 0.0]),
        20: (16, 10, [-16.0, -16.0], [8.0, 8.0])}),  # floor(sqrt(20))^2 = 16 views
    "scale": (256, None, "spatial", {
        None: (256, 0, 0.25, 2.0), 16: (16, 0, 0.25, 2.0), 4: (4, 0, 0.25, 2.0)}),
    "shear": (256, None, "spatial", {
        None: (256, 136, [-160.0, -160.0], [140.0, 140.0]),
        16: (16, 10, [-160.0, -160.0], [80.0, 80.0]),
        4: (4, 3, [-160.0, -160.0], [0.0, 0.0])}),
    # n = floor(k^(1/4)); tops/lefts linspace(0, .25, n)*256, sizes linspace(.75, .25, n)*256
    "resized_crop": (256, None, "spatial", {
        None: (256, 0, [0.0, 0.0, 192.0, 192.0], [64.0, 64.0, 64.0, 64.0]),
        16: (16, 0, [0.0, 0.0, 192.0, 192.0], [64.0, 64.0, 64.0, 64.0]),
        4: (1, 0, [0.0, 0.0, 192.0, 192.0], [0.0, 0.0, 192.0, 192.0])}),
    "h_flip": (2, 2, "spatial", {None: (2, 0, F, T_), 16: (2, 0, F, T_), 2: (2, 0, F, T_)}),
    "v_flip": (2, 2, "spatial", {None: (2, 0, F, T_), 16: (2, 0, F, T_), 2: (2, 0, F, T_)}),
    "deform": (256, 256, "spatial", {
        None: (256, 0, 10, 50), 16: (16, 0, 10, 50), 4: (4, 0, 10, 27), 1000: (256, 0, 10, 50)}),
    "grayscale": (2, 2, "appearance", {None: (2, 0, F, T_), 16: (2, 0, F, T_)}),
    "brightness": (256, None, "appearance", {
        None: (256, 128, 0.25, 5.0), 16: (16, 8, 0.25, 5.0), 4: (4, 2, 0.25, 5.0)}),
    "contrast": (256, None, "appearance", {
        None: (256, 128, 0.25, 5.0), 16: (16, 8, 0.25, 5.0), 4: (4, 2, 0.25, 5.0)}),
    "saturation": (256, None, "appearance", {
        None: (256, 128, 0.25, 5.0), 16: (16, 8, 0.25, 5.0), 4: (4, 2, 0.25, 5.0)}),
    "hue": (256, None, "appearance", {
        None: (256, 128, -0.5, 0.5), 16: (16, 8, -0.5, 0.5), 4: (4, 2, -0.5, 0.5)}),
    "blur": (256, None, "appearance", {
        None: (256, 0, 1e-5, 20.0), 16: (16, 0, 1e-5, 20.0), 4: (4, 0, 1e-5, 20.0)}),
    "sharpness": (256, None, "appearance", {
        None: (256, 0, 1.0, 30.0), 16: (16, 0, 1.0, 30.0), 4: (4, 0, 1.0, 30.0)}),
    "invert": (2, 2, "appearance", {None: (2, 0, F, T_), 16: (2, 0, F, T_)}),
    "equalize": (2, 2, "appearance", {None: (2, 0, F, T_), 16: (2, 0, F, T_)}),
    "posterize": (7, 7, "appearance", {
        None: (7, None, 1, 7), 16: (7, None, 1, 7), 4: (4, None, 1, 4)}),
}

# Whether the identity view is exactly the clean view. False where the table's identity
# is a convention (scale 0.25, k//2 factors, sigma 10 deform, 0.75 crop) or where the
# reference's 1 degree shear quirk applies (translation (0, 0)).
EXACT_IDENTITY = {
    "rotation": True, "translation": False, "scale": False, "shear": True,
    "resized_crop": False, "h_flip": True, "v_flip": True, "deform": False,
    "grayscale": True, "brightness": False, "contrast": False, "saturation": False,
    "hue": False, "blur": True, "sharpness": True, "invert": True, "equalize": True,
    "posterize": False,
}  # fmt: skip

GRID_CASES = [(name, k) for name, spec in EXPECTED.items() for k in spec[3]]
SIZES = [(128, 112), (256, 224)]


@pytest.fixture(scope="module")
def image() -> Image.Image:
    """A non-square 400 x 300 RGB image: smooth gradients, edges and mild noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400].astype(np.float32)
    r = 128 + 100 * np.sin(xx / 23.0)
    g = 128 + 100 * np.cos(yy / 17.0)
    b = np.where((xx // 50 + yy // 50) % 2 == 0, 220.0, 40.0)
    arr = np.stack([r, g, b], axis=-1) + rng.normal(0, 8, (300, 400, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _same(value, expected) -> bool:
    if isinstance(expected, list):
        return len(value) == len(expected) and all(_same(v, e) for v, e in zip(value, expected))
    if isinstance(expected, bool):
        return value is expected
    return value == pytest.approx(expected, rel=1e-6, abs=1e-6)


# --- registry ------------------------------------------------------------------------


def test_registry_order_and_kind():
    assert isinstance(FAMILIES, Registry)
    assert FAMILIES.names() == ORDER
    assert all(isinstance(FAMILIES.get(n), Family) for n in FAMILIES)


def test_every_family_is_covered():
    assert set(EXPECTED) == set(FAMILIES.names())
    assert set(EXACT_IDENTITY) == set(FAMILIES.names())


def test_unknown_name_did_you_mean():
    message = r"Unknown transform 'rotaton'\. Did you mean 'rotation'"
    with pytest.raises(UnknownNameError, match=message):
        get_family("rotaton")


def test_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


# --- grids ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ORDER)
def test_family_record(name):
    default_k, max_k, kind, _ = EXPECTED[name]
    fam = get_family(name)
    assert (fam.name, fam.default_k, fam.max_k, fam.kind) == (name, default_k, max_k, kind)
    assert pickle.loads(pickle.dumps(fam)) == fam


@pytest.mark.parametrize(("name", "k"), GRID_CASES)
def test_grid_against_protocol(name, k):
    n_views, identity, first, last = EXPECTED[name][3][k]
    grid = get_family(name).grid(k, 256, 224)
    assert isinstance(grid, Grid)
    assert grid.family == name
    assert grid.k == n_views == len(grid.params) == len(grid.values)
    assert grid.identity == identity
    assert _same(grid.values[0], first), grid.values[0]
    assert _same(grid.values[-1], last), grid.values[-1]
    # JSON round trip keeps everything (result files store params and values).
    assert json.loads(json.dumps([grid.params, grid.values])) == [grid.params, grid.values]


def test_grid_float32_values_as_reference():
    # The reference used torch.linspace (float32); values must be those floats exactly.
    angles = get_family("rotation").grid(None, 256, 224).values
    assert angles == torch.linspace(0, 360, 257)[:256].tolist()
    factors = get_family("brightness").grid(None, 256, 224).values
    assert factors == torch.linspace(0.25, 5, 256).tolist()
    # k//2 is not factor 1 (as the reference).
    assert factors[128] == pytest.approx(2.6343, abs=1e-4)


def test_translation_and_scale_keep_the_one_degree_shear():
    for name in ("translation", "scale"):
        params = get_family(name).grid(16, 256, 224).params
        assert all(p["shear"] == 1.0 for p in params)


def test_translation_offsets_scale_with_resize():
    grid = get_family("translation").grid(16, 128, 112)  # s = 1/16, a * 128 = -8, -4, 0, 4
    assert grid.values[0] == [-8.0, -8.0] and grid.values[-1] == [4.0, 4.0]
    assert grid.params[grid.identity]["translate"] == [0.0, 0.0]


def test_odd_grid_identity_is_nearest_origin():
    # m = 3: a = (-160, -53.3, 53.3), no exact 0; the centre point (1, 1) is the closest.
    grid = get_family("shear").grid(9, 256, 224)
    assert grid.k == 9 and grid.identity == 4
    assert grid.values[4] == pytest.approx([-53.333, -53.333], abs=1e-3)


def test_blur_kernel_size_follows_crop():
    fam = get_family("blur")
    assert fam.grid(4, 256, 224).params[0]["kernel_size"] == [23, 23]
    assert fam.grid(4, 128, 112).params[0]["kernel_size"] == [11, 11]


def test_deform_sigmas_are_tiled():
    values = get_family("deform").grid(None, 256, 224).values
    assert values[:9] == [10, 15, 21, 27, 32, 38, 44, 50, 10]
    assert values == torch.linspace(10, 50, 8).to(int).repeat(32).tolist()


@pytest.mark.parametrize("k", [1, 0, -3])
def test_grid_rejects_k_below_two(k):
    with pytest.raises(ValueError, match="k must be at least 2"):
        get_family("rotation").grid(k, 256, 224)


def test_grid_caps_k_and_defaults():
    assert get_family("h_flip").grid(100, 256, 224).k == 2
    assert get_family("posterize").grid(None, 256, 224).k == 7
    assert get_family("rotation").grid(1000, 256, 224).k == 1000  # unbounded


# --- views ---------------------------------------------------------------------------


@pytest.mark.parametrize("resize_crop", SIZES, ids=lambda s: f"{s[0]}-{s[1]}")
@pytest.mark.parametrize("name", ORDER)
def test_view_shape_and_dtype(image, name, resize_crop):
    resize, crop = resize_crop
    fam = get_family(name)
    grid = fam.grid(16, resize, crop)
    for i in sorted({0, grid.k // 2, grid.k - 1}):
        view = fam.view(image, grid.params[i], resize, crop, seed=1)
        assert view.dtype == torch.uint8
        assert view.shape == (3, crop, crop)


@pytest.mark.parametrize("name", ORDER)
def test_identity_view_vs_clean(image, name):
    fam = get_family(name)
    grid = fam.grid(None, 256, 224)
    clean = clean_view(image, 256, 224)
    index = 0 if grid.identity is None else grid.identity
    view = fam.view(image, grid.params[index], 256, 224, seed=0)
    assert torch.equal(view, clean) is EXACT_IDENTITY[name]


def test_translation_without_the_shear_quirk_is_exact_at_origin(image):
    grid = get_family("translation").grid(None, 256, 224)
    param = dict(grid.params[grid.identity], shear=0.0)
    view = get_family("translation").view(image, param, 256, 224)
    assert torch.equal(view, clean_view(image, 256, 224))


def test_translation_shifts_the_resized_image(image):
    param = get_family("translation").grid(16, 256, 224).params[0]
    resized = FT.resize(image, 256)
    expected = FT.pil_to_tensor(FT.center_crop(FT.affine(resized, **param), [224, 224]))
    assert torch.equal(get_family("translation").view(image, param, 256, 224), expected)


def test_full_image_families_match_torchvision(image):
    # transformation on the full-size image, then Resize -> CenterCrop -> PILToTensor.
    pipeline = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])
    cases = {
        "rotation": lambda p: FT.rotate(image, p["angle"]),
        "scale": lambda p: FT.affine(image, angle=0, translate=[0, 0], scale=p["scale"], shear=1.0),
        "shear": lambda p: FT.affine(image, angle=0, translate=[0, 0], scale=1.0, shear=p["shear"]),
        "hue": lambda p: FT.adjust_hue(image, p["hue_factor"]),
        "sharpness": lambda p: FT.adjust_sharpness(image, p["sharpness_factor"]),
        "posterize": lambda p: FT.posterize(image, p["bits"]),
        "grayscale": lambda p: FT.rgb_to_grayscale(image, num_output_channels=3),
        "equalize": lambda p: FT.equalize(image),
    }
    for name, reference in cases.items():
        fam = get_family(name)
        param = fam.grid(16, 256, 224).params[-1]
        assert torch.equal(fam.view(image, param, 256, 224), pipeline(reference(param))), name


def test_resized_crop_rounds_float_boxes_like_pil(image):
    fam = get_family("resized_crop")
    grid = fam.grid(None, 256, 224)
    param = next(p for p in grid.params if p["top"] % 1 and p["height"] % 1)
    t, l, h, w = param["top"], param["left"], param["height"], param["width"]
    # PIL rounds each box edge (half to even) after the sums; no resize/centre crop after.
    box = (round(l), round(t), round(l + w), round(t + h))
    expected = image.crop(box).resize((224, 224), Image.BILINEAR)
    assert torch.equal(fam.view(image, param, 256, 224), FT.pil_to_tensor(expected))


@pytest.mark.parametrize("sigma", [0.7, 5.0, 20.0])
def test_blur_matches_torchvision_up_to_float_rounding(image, sigma):
    ours = np.asarray(gaussian_blur(image, [23, 23], [sigma, sigma])).astype(int)
    ref = np.asarray(FT.gaussian_blur(image, [23, 23], [sigma, sigma])).astype(int)
    diff = np.abs(ours - ref)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("name", ORDER)
def test_views_batch_equals_single_views(image, name):
    # Byte for byte; tests/test_render_batch.py covers the geometric families' batch
    # paths over many image sizes and parameters.
    fam = get_family(name)
    params = fam.grid(16, 128, 112).params[::3]
    stacked = fam.views(image, params, 128, 112, seed=4)
    assert stacked.shape == (len(params), 3, 112, 112) and stacked.is_contiguous()
    for i, p in enumerate(params):
        assert torch.equal(stacked[i], fam.view(image, p, 128, 112, seed=4))


def test_family_pickles_with_same_views(image):
    for name in ("hue", "h_flip", "deform"):
        fam = get_family(name)
        param = fam.grid(None, 128, 112).params[-1]
        copy = pickle.loads(pickle.dumps(fam))
        expected = fam.view(image, param, 128, 112, 2)
        assert torch.equal(copy.view(image, param, 128, 112, 2), expected)


# --- deform --------------------------------------------------------------------------


def test_deform_deterministic_per_seed_and_field(image):
    fam = get_family("deform")
    params = fam.grid(None, 128, 112).params
    a = fam.view(image, params[3], 128, 112, seed=7)
    assert torch.equal(a, fam.view(image, params[3], 128, 112, seed=7))
    assert not torch.equal(a, fam.view(image, params[3], 128, 112, seed=8))
    # params[11] has the same sigma as params[3] but its own random field.
    assert params[11]["sigma"] == params[3]["sigma"]
    assert not torch.equal(a, fam.view(image, params[11], 128, 112, seed=7))


def test_deform_is_dominated_by_the_affine_jitter(image):
    # alpha = 1 moves pixels by a few hundredths of a pixel: without the alpha_affine
    # jitter the image barely changes; with it, it moves a lot.
    arr = np.asarray(image)
    still = elastic_deform(arr, 10, np.random.default_rng(0), alpha_affine=0.0)
    moved = elastic_deform(arr, 10, np.random.default_rng(0))
    assert still.shape == moved.shape == arr.shape and still.dtype == np.uint8
    assert np.abs(still.astype(int) - arr).mean() < 1.0
    assert np.abs(moved.astype(int) - arr).mean() > 10.0


def test_deform_rejects_negative_seed(image):
    fam = get_family("deform")
    with pytest.raises(ValueError, match="seed"):
        fam.view(image, fam.grid(2, 128, 112).params[0], 128, 112, seed=-1)


# --- clean view ----------------------------------------------------------------------


@pytest.mark.parametrize("resize_crop", SIZES + [(224, 224)], ids=lambda s: f"{s[0]}-{s[1]}")
def test_clean_view_matches_torchvision(image, resize_crop):
    resize, crop = resize_crop
    expected = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.PILToTensor()])(image)
    view = clean_view(image, resize, crop)
    assert view.dtype == torch.uint8 and view.is_contiguous()
    assert torch.equal(view, expected)


def test_clean_view_converts_non_rgb(image):
    grey = image.convert("L")
    assert clean_view(grey, 128, 112).shape == (3, 112, 112)
    assert torch.equal(clean_view(grey, 128, 112), clean_view(grey.convert("RGB"), 128, 112))


# --- the clean pipeline and the affine matrix without torchvision ---------------------


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (333, 500), (256, 256), (300, 100), (97, 61),
                                  (111, 224), (224, 111), (60, 40), (1, 7)])
@pytest.mark.parametrize("resize_crop", [(256, 224), (128, 112), (64, 64), (32, 40)])
def test_resize_and_crop_match_torchvision(size, resize_crop):
    """Sizes, offsets and zero padding (crop larger than the image, odd differences) as
    torchvision's functionals, byte for byte."""
    from sslinv.transforms.pipeline import center_crop, resize_shorter

    resize, crop = resize_crop
    rng = np.random.default_rng(size)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    resized = resize_shorter(img, resize)
    want = FT.resize(img, resize)
    assert resized.size == want.size and resized.tobytes() == want.tobytes()
    for source in (img, resized):
        got, ref = center_crop(source, crop), FT.center_crop(source, [crop, crop])
        assert got.size == ref.size == (crop, crop) and got.tobytes() == ref.tobytes()


@pytest.mark.parametrize("name", ["scale", "shear", "translation"])
@pytest.mark.parametrize("wh", [(500, 375), (375, 500), (97, 61)])
def test_affine_matrix_matches_torchvision(name, wh):
    """The inverse matrix of ``FT.affine`` on PIL, to the last bit, for every grid point
    (and the argument forms torchvision accepts)."""
    from torchvision.transforms.functional import _get_inverse_affine_matrix

    from sslinv.transforms.pil_fast import affine_matrix

    w, h = wh
    params = get_family(name).grid(64, 256, 224).params
    params += [{"angle": 30, "translate": (3, -2.5), "scale": 0.7, "shear": 12.0},
               {"angle": -10.5, "translate": [0, 0], "scale": 1.3, "shear": (5.0,)}]
    for p in params:
        shear = p["shear"]
        shear = [shear, 0.0] if isinstance(shear, (int, float)) else list(shear)
        shear = shear * 2 if len(shear) == 1 else shear
        angle = float(p["angle"]) if isinstance(p["angle"], int) else p["angle"]
        want = _get_inverse_affine_matrix([w * 0.5, h * 0.5], angle, list(p["translate"]), p["scale"], shear)
        assert affine_matrix(p, w, h) == want, p


def test_batched_views_import_no_torchvision(tmp_path):
    """Rendering the batched families (as a loader worker forked from a process that has
    not imported torchvision does) and the clean view leaves torchvision unimported
    (OpenCV comes in for blur, which names it); ``preload_for_workers`` imports what the
    other families need."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from sslinv.transforms import FAMILIES, clean_view, get_family\n"
        "img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8))\n"
        "clean_view(img, 128, 112)\n"
        "from sslinv.runtime import preload_for_workers\n"
        "for _, fam in FAMILIES.items():\n"
        "    if fam.apply_batch is not None:\n"
        "        preload_for_workers(fam.imports)\n"
        "        fam.views(img, fam.grid(4, 128, 112).params, 128, 112, seed=0)\n"
        "print('torchvision' in sys.modules, 'cv2' in sys.modules, get_family('blur').imports)\n"
        "preload_for_workers(get_family('equalize').imports)\n"
        "print('torchvision' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "('cv2',)", "True"]


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (333, 500)])
def test_clean_view_is_torchvisions_when_a_size_recurs(size):
    """From the fourth image of a size on, clean_view resamples only the crop's window
    (``pil_fast.clean_window``): still torchvision's bytes, image after image."""
    from sslinv.transforms import pil_fast

    pipe = T.Compose([T.Resize(128), T.CenterCrop(112), T.PILToTensor()])
    rng = np.random.default_rng(size)
    for i in range(pil_fast.CLEAN_AFTER + 2):
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        assert torch.equal(clean_view(img, 128, 112), pipe(img)), i
    assert pil_fast.clean_window(img, 128, 112) is not None  # the window path was taken
