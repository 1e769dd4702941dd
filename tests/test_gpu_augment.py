"""Pretraining augmentation as batched tensor operations (sslinv.pretrain.gpu_augment)."""

from __future__ import annotations

import pytest
import torch

from sslinv.pretrain import augment
from sslinv.pretrain.gpu_augment import GPUAugment, batch_generator, crop_box


def images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        h, w = 40 + 7 * i, 60 - 3 * i
        base = torch.randint(0, 256, (3, 1, 1), generator=g, dtype=torch.uint8).expand(3, h, w).clone()
        base[:, :, : w // 3] = torch.randint(0, 256, (3, 1, 1), generator=g, dtype=torch.uint8)  # an asymmetric edge
        out.append(base)
    return out


@pytest.mark.parametrize("preset", sorted(augment.PRESETS))
def test_shapes_ranges_and_determinism(preset):
    aug = GPUAugment(augment.PRESETS[preset].augment, size=32)
    imgs = images()
    a = aug(imgs, torch.Generator().manual_seed(3))
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, aug(imgs, torch.Generator().manual_seed(3)))
    q, k = aug.two_views(imgs, torch.Generator().manual_seed(3))
    assert torch.equal(q, a) and not torch.equal(q, k)
    assert not torch.equal(a, aug(imgs, torch.Generator().manual_seed(4)))
    # A batch tensor of equal-sized images works too.
    same = torch.stack([im[:, :40, :40] for im in imgs])
    assert aug(same, torch.Generator().manual_seed(0)).shape == (6, 3, 32, 32)


def test_each_preset_runs_its_ops():
    assert GPUAugment(augment.PRESETS["default"].augment).ops == [
        "resized_crop", "color_jitter", "grayscale", "blur", "h_flip"]
    assert GPUAugment(augment.PRESETS["ventral"].augment).ops == ["resized_crop", "h_flip"]
    assert GPUAugment(augment.PRESETS["dorsal"].augment).ops == [
        "resize_center_crop", "color_jitter", "grayscale", "blur"]


def test_ventral_keeps_colours_dorsal_changes_them():
    flat = [torch.full((3, 50, 70), 0, dtype=torch.uint8) + torch.tensor([200, 60, 30], dtype=torch.uint8).view(3, 1, 1)
            for _ in range(32)]
    ventral = GPUAugment(augment.PRESETS["ventral"].augment, 24)(flat, torch.Generator().manual_seed(0))
    assert (ventral.int() - torch.tensor([200, 60, 30]).view(1, 3, 1, 1)).abs().max() <= 1
    dorsal = GPUAugment(augment.PRESETS["dorsal"].augment, 24)(flat, torch.Generator().manual_seed(0))
    changed = (dorsal.int() - torch.tensor([200, 60, 30]).view(1, 3, 1, 1)).abs().amax(dim=(1, 2, 3)) > 2
    assert 0.5 < changed.float().mean() < 1.0  # jitter p = 0.8, grey p = 0.2: most, not all
    grey = (dorsal[:, 0] == dorsal[:, 1]).all(dim=(1, 2)) & (dorsal[:, 1] == dorsal[:, 2]).all(dim=(1, 2))
    assert 0 < grey.sum() < 32


def test_flips_happen_about_half_the_time():
    imgs = [torch.zeros(3, 30, 30, dtype=torch.uint8) for _ in range(200)]
    for im in imgs:
        im[:, :, :10] = 255  # bright left third
    out = GPUAugment(["h_flip"], 30)(imgs, torch.Generator().manual_seed(1))
    flipped = out[:, 0, 15, -1] == 255
    assert 70 < int(flipped.sum()) < 130


def test_crop_box_follows_random_resized_crop():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = crop_box(375, 500, g)
        assert 0 <= top and top + h <= 375 and 0 <= left and left + w <= 500
        area = h * w / (375 * 500)
        assert 0.15 < area <= 1.0 and 0.7 < w / h < 1.4
    assert crop_box(10, 1000, g) == (0, 493, 10, 13)  # no box fits: the central fallback


def test_errors_and_generators():
    with pytest.raises(Exception, match="Unknown augmentation"):
        GPUAugment(["resized_crap"])
    with pytest.raises(ValueError, match="uint8"):
        GPUAugment(["h_flip"], 8)([torch.zeros(3, 8, 8)], torch.Generator())
    a = batch_generator(0, 1, 2).initial_seed()
    assert a == batch_generator(0, 1, 2).initial_seed() != batch_generator(0, 1, 3).initial_seed()


def test_jitter_changes_each_chosen_image_by_its_own_draws():
    """``_jitter`` picks the images of each step on the host (no device wait): the result
    is the plain masked computation, image by image, with the same draws."""
    from sslinv.pretrain import gpu_augment as G

    def masked(x, g):
        n = x.shape[0]
        b, c, s, h = G.JITTER
        apply = torch.rand(n, generator=g) < G.JITTER_P
        factors = [torch.empty(n).uniform_(1 - b, 1 + b, generator=g), torch.empty(n).uniform_(1 - c, 1 + c, generator=g),
                   torch.empty(n).uniform_(1 - s, 1 + s, generator=g), torch.empty(n).uniform_(-h, h, generator=g)]
        order = torch.stack([torch.randperm(4, generator=g) for _ in range(n)])
        x = x.clone()
        for step in range(4):
            for i in range(n):
                if not apply[i]:
                    continue
                op, y, f = int(order[i, step]), x[i : i + 1], factors[int(order[i, step])][i : i + 1]
                if op == 0:
                    y = G._blend(y, torch.zeros_like(y), f)
                elif op == 1:
                    y = G._blend(y, G._grey(y).mean(dim=(1, 2, 3), keepdim=True).expand_as(y), f)
                elif op == 2:
                    y = G._blend(y, G._grey(y).expand_as(y), f)
                else:
                    y = G._hue(y, f)
                x[i : i + 1] = y
        return x

    x = torch.rand(23, 3, 16, 16)
    for seed in range(3):
        got = G._jitter(x, torch.Generator().manual_seed(seed))
        want = masked(x, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
