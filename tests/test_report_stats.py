"""The report's statistics (exact Spearman p-values) and its parameter axes."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import permutation_test, spearmanr

from sslinv.report.axes import curve_axis, grid_matrix, points
from sslinv.report.correlate import min_p_value, spearman_test
from sslinv.transforms import FAMILIES, get_family

# ------------------------------------------------------------------- exact p-values
#
# Hand-computed: with n untied models there are n! equally likely orderings under the
# null; rho = 1 - 6 D / (n (n^2 - 1)) with D the sum of squared rank differences, and the
# distribution is symmetric about 0, so p = 2 * #{orderings with rho >= |rho_obs|} / n!.
#   n = 3: rho = 1 only for the identity          -> p = 2 * 1 / 6   = 1/3
#          rho = 0.5 (D = 2): identity + 2 swaps  -> p = 2 * 3 / 6   = 1
#   n = 4: rho = 1                                 -> p = 2 * 1 / 24  = 1/12
#          rho = 0.8 (D = 2): identity + 3 adjacent swaps -> p = 2 * 4 / 24 = 1/3
#   n = 5: rho = 1                                 -> p = 2 * 1 / 120 = 1/60
#          rho = 0.9 (D = 2): identity + 4 adjacent swaps -> p = 2 * 5 / 120 = 1/12


@pytest.mark.parametrize("x, y, rho, p", [
    ([1, 2, 3], [10, 20, 30], 1.0, Fraction(1, 3)),
    ([1, 2, 3], [30, 20, 10], -1.0, Fraction(1, 3)),
    ([1, 2, 3], [10, 30, 20], 0.5, Fraction(1, 1)),
    ([1, 2, 3, 4], [1, 2, 3, 4], 1.0, Fraction(1, 12)),
    ([1, 2, 3, 4], [2, 1, 3, 4], 0.8, Fraction(1, 3)),
    ([1, 2, 3, 4], [4, 3, 1, 2], -0.8, Fraction(1, 3)),
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 9], 1.0, Fraction(1, 60)),
    ([1, 2, 3, 4, 5], [1, 2, 4, 3, 5], 0.9, Fraction(1, 12)),
])
def test_exact_p_matches_hand_computed_values(x, y, rho, p):
    r, pv, method = spearman_test(x, y)
    assert method == "exact"
    assert r == pytest.approx(rho)
    assert pv == pytest.approx(float(p))


def test_three_models_perfect_rank_agreement_is_not_significant():
    """The bug of the t approximation: rho = 1 with n = 3 gave p = 0."""
    _, p, _ = spearman_test([0.1, 0.2, 0.3], [0.5, 0.6, 0.9])
    assert p == pytest.approx(1 / 3)
    assert min_p_value(3) == pytest.approx(1 / 3)
    assert min_p_value(5) == pytest.approx(1 / 60)


@pytest.mark.parametrize("n", [5, 6])
def test_exact_p_matches_scipy_exact_permutation_test(n):
    rng = np.random.default_rng(n)
    for _ in range(3):
        x, y = rng.normal(size=n), rng.normal(size=n)
        r, p, method = spearman_test(x, y)
        ref = permutation_test((x,), lambda a, y=y: spearmanr(a, y).statistic, permutation_type="pairings",
                               n_resamples=np.inf)
        assert method == "exact" and r == pytest.approx(spearmanr(x, y).statistic)
        assert p == pytest.approx(ref.pvalue)


def test_ties_use_mid_ranks_and_count_every_ordering():
    """With ties the null distribution is over the tied ranks themselves (brute force)."""
    x, y = [1.0, 2.0, 2.0, 3.0], [5.0, 6.0, 8.0, 7.0]
    r, p, _ = spearman_test(x, y)
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 4, 3.0])
    assert r == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    null = [np.corrcoef(rx, ry[list(perm)])[0, 1] for perm in itertools.permutations(range(4))]
    assert p == pytest.approx(np.mean(np.abs(null) >= abs(r) - 1e-9))


def test_above_the_exact_limit_samples_the_permutation_distribution():
    """Ten models: 20,000 random orderings (seeded: the same p every time) against all
    10! = 3,628,800, enumerated here; the t approximation is further off."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=10)
    y = x + 1.5 * rng.normal(size=10)
    rho, p, method = spearman_test(x, y)
    assert method == "sampled" and spearman_test(x, y)[1] == p
    rx, ry = x.argsort().argsort() - 4.5, y.argsort().argsort() - 4.5
    perms = np.array(list(itertools.permutations(range(10))), dtype=np.int8)
    exact = np.mean(np.abs(ry[perms] @ rx) / (rx @ rx) >= abs(rho) - 1e-9)
    se = np.sqrt(exact * (1 - exact) / 20_000)
    assert abs(p - exact) < 4 * se
    assert abs(p - exact) < abs(spearmanr(x, y).pvalue - exact)
    # Perfect agreement: never p = 0 (at least 1 / (1 + samples)).
    _, p_top, _ = spearman_test(np.arange(12.0), np.arange(12.0))
    assert p_top == pytest.approx(1 / 20_001)


def test_constant_values_have_no_rho():
    assert spearman_test([1, 1, 1], [1, 2, 3]) == (None, None, "")


# --------------------------------------------------------------------------- axes


def _grid(name, k=16, resize=73, crop=64):
    return get_family(name).grid(k, resize, crop)


@pytest.mark.parametrize("name, key", [
    ("rotation", "angle"), ("scale", "scale"), ("brightness", "brightness_factor"),
    ("contrast", "contrast_factor"), ("saturation", "saturation_factor"), ("hue", "hue_factor"),
    ("sharpness", "sharpness_factor"), ("posterize", "bits"),
])
def test_scalar_axes_are_the_parameters_in_the_file(name, key):
    g = _grid(name)
    axis = curve_axis(name, g.values)
    assert axis.kind == "line"
    assert axis.x == [float(p[key]) for p in g.params]
    assert axis.xlabel == get_family(name).description  # e.g. "rotation angle, degrees"


def test_blur_axis_is_sigma_and_deform_averages_repeated_sigmas():
    g = _grid("blur")
    assert curve_axis("blur", g.values).x == [p["sigma"][0] for p in g.params]
    g = _grid("deform", k=12)
    axis = curve_axis("deform", g.values)
    sigmas = [p["sigma"] for p in g.params]
    ys = [float(i) for i in range(len(sigmas))]
    pts = points(axis, ys)
    assert [x for x, _, _ in pts] == sorted(set(sigmas))
    for x, y, _ in pts:  # each sigma: the mean over its random fields
        assert y == pytest.approx(np.mean([yy for s, yy in zip(sigmas, ys) if s == x]))


@pytest.mark.parametrize("name, key", [("translation", "translate"), ("shear", "shear")])
def test_pair_grids_become_2d_maps_over_the_parameters(name, key):
    g = _grid(name)
    axis = curve_axis(name, g.values)
    assert axis.kind == "grid"
    pairs = [tuple(p[key]) for p in g.params]
    assert axis.gx == sorted({a for a, _ in pairs}) and axis.gy == sorted({b for _, b in pairs})
    ys = [float(i) for i in range(len(pairs))]
    matrix, _ = grid_matrix(axis, ys)
    for (a, b), y in zip(pairs, ys):  # each cell holds the value measured at its (x, y)
        assert matrix[axis.gy.index(b)][axis.gx.index(a)] == y


def test_crop_boxes_axis_is_the_box_area_and_names_each_box():
    resize = 73
    g = _grid("resized_crop", k=81, resize=resize)
    axis = curve_axis("resized_crop", g.values, resize=resize)
    assert axis.kind == "boxes"
    boxes = [(p["top"], p["left"], p["height"], p["width"]) for p in g.params]
    assert axis.x == pytest.approx([h * w / resize**2 for _, _, h, w in boxes])
    for (t, l, h, w), tip in zip(boxes, axis.tips):
        assert [float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", tip)] == pytest.approx(
            [t, l, h, w], rel=1e-3)


def test_toggles_are_off_and_on():
    for name in ("h_flip", "grayscale", "invert"):
        axis = curve_axis(name, _grid(name, k=2).values)
        assert axis.kind == "toggle" and axis.categories == ["off", "on"] and axis.x == [0.0, 1.0]


def test_every_family_has_an_axis():
    for name in FAMILIES.names():
        fam = get_family(name)
        assert curve_axis(name, fam.grid(fam.max_k or 16, 73, 64).values, resize=73) is not None, name


def test_unknown_shapes_get_no_axis():
    assert curve_axis("rotation", []) is None
    assert curve_axis("rotation", [[1, 2, 3]]) is None
    assert curve_axis("rotation", [1.0, "a"]) is None
