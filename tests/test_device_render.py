"""Views rendered as batched tensor operations (sslinv.transforms.device) against the
PIL path, for all 18 families."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sslinv.transforms import FAMILIES, clean_view
from sslinv.transforms import device as D

RESIZE, CROP = 48, 40
# Families whose device path follows a different algorithm (documented in docs/gpu.md):
# hue in float HSV (PIL: 8-bit HSV), deform with torch's random fields and bilinear
# grid_sample (PIL path: numpy fields, OpenCV's fixed-point remap).
LOOSE = {"hue": 3.0, "deform": 2.0}


def textured(h=90, w=120, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([127 + 100 * np.sin(2 * np.pi * (3 * xx + 2 * yy + c / 3)) for c in range(3)], -1)
    img += rng.normal(0, 20, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", FAMILIES.names())
def test_device_views_follow_the_pil_path(name):
    fam = FAMILIES.get(name)
    img = textured(seed=len(name))
    params = fam.grid(9, RESIZE, CROP).params
    want = fam.views(img, params, RESIZE, CROP, seed=5)
    got = D.render_views(name, D.image_tensor(img), params, RESIZE, CROP, seed=5, chunk=4)
    assert got.dtype == torch.uint8 and got.shape == want.shape
    diff = (got.int() - want.int()).abs().float()
    assert diff.mean() < LOOSE.get(name, 0.02), (name, float(diff.mean()))
    if name not in LOOSE:  # the last bits only: at most one grey level, on few pixels
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01


@pytest.mark.parametrize("name", ["rotation", "scale", "shear"])
def test_warps_are_pillows_fixed_point_to_the_bit(name):
    fam = FAMILIES.get(name)
    img = textured(75, 100, seed=3)
    params = fam.grid(16, RESIZE, CROP).params
    t = D.image_tensor(img).float()
    h, w = t.shape[-2:]
    if name == "rotation":
        mats = [D.pil_rotate_matrix(p["angle"], w, h) for p in params]
        pil = [np.asarray(img.rotate(p["angle"])) for p in params]
    else:
        import torchvision.transforms.functional as FT

        mats = [D.pil_affine_matrix(p, w, h) for p in params]
        pil = [np.asarray(FT.affine(img, **p)) for p in params]
    ours = D._warp_nearest(t, mats).permute(0, 2, 3, 1).to(torch.uint8).numpy()
    for i, m in enumerate(mats):
        if m is not None:
            assert np.array_equal(ours[i], pil[i]), (name, params[i])


def test_clean_view_and_resize_weights():
    img = textured(101, 77)
    got = D.clean_view(D.image_tensor(img), RESIZE, CROP)
    assert torch.equal(got, clean_view(img, RESIZE, CROP))  # Pillow's integers, to the bit
    w = D.pil_resize_weights(100, 30)
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert (D.pil_resize_weights(7, 7) == np.eye(7)).all()  # same size: identity


def test_deform_is_seeded_and_errors_are_clear():
    img = D.image_tensor(textured())
    params = FAMILIES.get("deform").grid(3, RESIZE, CROP).params
    a = D.render_views("deform", img, params, RESIZE, CROP, seed=1)
    assert torch.equal(a, D.render_views("deform", img, params, RESIZE, CROP, seed=1))
    assert not torch.equal(a, D.render_views("deform", img, params, RESIZE, CROP, seed=2))
    with pytest.raises(ValueError, match="uint8"):
        D.render_views("rotation", img.float(), params[:1], RESIZE, CROP)
    with pytest.raises(Exception, match="Did you mean"):
        D.render_views("rotatoin", img, params[:1], RESIZE, CROP)


def test_chunks_bound_memory_and_do_not_change_views():
    assert D.chunk_for((375, 500)) == 71 and D.chunk_for((4000, 6000)) == 1
    img = D.image_tensor(textured())
    params = FAMILIES.get("rotation").grid(7, RESIZE, CROP).params
    whole = D.render_views("rotation", img, params, RESIZE, CROP)
    assert torch.equal(whole, D.render_views("rotation", img, params, RESIZE, CROP, chunk=3))


def test_per_view_seeds_as_the_synthetic_command_passes_them():
    img = D.image_tensor(textured())
    params = FAMILIES.get("deform").grid(3, RESIZE, CROP).params
    seeds = [11, 12, 13]
    together = D.render_views("deform", img, params, RESIZE, CROP, seed=seeds, chunk=2)
    for i, (p, s) in enumerate(zip(params, seeds)):
        assert torch.equal(together[i], D.render_views("deform", img, [p], RESIZE, CROP, seed=s)[0])
    with pytest.raises(ValueError, match="3 views"):
        D.render_views("deform", img, params, RESIZE, CROP, seed=[1, 2])


# Tall portraits: the installed Pillow 13 resizes these vertically first (Pillow 9-12:
# horizontally first); the device renderer asks Pillow (pil_fast.pass_order) and follows.
TALL = [(201, 599), (220, 700)]  # (w, h), shorter side to 128: height shrinks > 2x as much


def _differing(a: torch.Tensor, b: torch.Tensor) -> tuple[int, float]:
    d = (a.int() - b.int()).abs()
    return int(d.max()), float((d > 0).float().mean())


@pytest.mark.parametrize("w,h", TALL)
def test_tall_portraits_follow_pillows_pass_order(w, h):
    from sslinv.transforms.pil_fast import pass_order

    rh, rw = D.shorter_side_size(h, w, 128)
    order = pass_order(w, h, rw, rh)
    if order is None:
        pytest.skip("this Pillow's pass order cannot be told for this size")
    assert D.pass_order(w, h, rw, rh) == order
    img = textured(h, w, seed=w)
    t = D.image_tensor(img)
    want = clean_view(img, 128, 112)
    assert torch.equal(D.clean_view(t, 128, 112), want), (order, _differing(D.clean_view(t, 128, 112), want))
    # The other order is a different image (so the test can fail): about a pixel in five.
    other = "hv" if order == "vh" else "vh"
    wy, wx = D.resize_crop_weights(h, w, 128, 112)
    wrong = D._u8(D._separable(t.float().unsqueeze(0), wy, wx, other))[0]
    assert _differing(wrong, want)[1] > 0.05


def test_translation_and_resized_crop_follow_the_pass_order():
    w, h = TALL[0]
    img = textured(h, w, seed=1)
    t = D.image_tensor(img)
    fam = FAMILIES.get("translation")
    params = fam.grid(4, 128, 112).params
    assert torch.equal(D.render_views("translation", t, params, 128, 112), fam.views(img, params, 128, 112))
    # Boxes Pillow resizes vertically first (tall, shrinking) beside ones it does not.
    from sslinv.transforms.pil_fast import pass_order

    boxes = [{"top": 10.0, "left": 20.0, "height": 400.0, "width": 60.0},
             {"top": 30.4, "left": 5.6, "height": 90.0, "width": 150.0},
             {"top": 0.0, "left": 0.0, "height": 500.0, "width": 80.0}]
    assert {pass_order(round(p["left"] + p["width"]) - round(p["left"]),
                       round(p["top"] + p["height"]) - round(p["top"]), 40, 40) for p in boxes} == {"hv", "vh"}
    want = FAMILIES.get("resized_crop").views(img, boxes, 128, 40)
    assert torch.equal(D.render_views("resized_crop", t, boxes, 128, 40), want)


def test_landscape_keeps_horizontal_first(monkeypatch):
    img = textured(90, 120, seed=2)
    t = D.image_tensor(img).float().unsqueeze(0)
    wy, wx = D.resize_crop_weights(90, 120, RESIZE, CROP)
    hv = D._separable(t, wy, wx, "hv")
    assert D.pass_order(120, 90, 64, RESIZE) == "hv"
    assert torch.equal(D._finish(t, RESIZE, CROP), hv)
    assert D.pass_order(0, 599, 40, 40) == "hv"  # an empty box: nothing to ask Pillow
    photo = textured(375, 500, seed=3)  # the usual landscape size: horizontal first, PIL's bytes
    assert torch.equal(D.clean_view(D.image_tensor(photo), 128, 112), clean_view(photo, 128, 112))
    # An order Pillow's probe cannot tell falls back to horizontal first.
    from sslinv.transforms import pil_fast

    monkeypatch.setattr(pil_fast, "pass_order", lambda *size: None)
    assert D.pass_order(201, 599, 128, 381) == "hv"
    with pytest.raises(ValueError, match="'hv' or 'vh'"):
        D._separable(t, wy, wx, "vv")
