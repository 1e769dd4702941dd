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
    want = clean_view(img, RESIZE, CROP)
    assert (got.int() - want.int()).abs().max() <= 1
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
