"""Statistics and metrics against plain numpy / scipy computations."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis

from sslinv.evaluate.stats import (
    RunningStats,
    pair_metrics,
    regularisation_warning,
    whitening_from_stats,
)


def _features(n=300, d=12, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    return (rng.normal(size=(n, d)) @ mix + rng.normal(size=d) * 3).astype(np.float32)


def test_streaming_matches_numpy_cov_for_uneven_batches():
    x = _features()
    rs = RunningStats(x.shape[1])
    for chunk in np.array_split(x, [1, 7, 50, 51, 200]):
        rs.update(torch.from_numpy(chunk))
    assert rs.n == len(x)
    np.testing.assert_allclose(rs.mean.numpy(), x.astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rs.covariance().numpy(), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-10)


def test_merge_equals_single_pass_in_any_split():
    x = torch.from_numpy(_features())
    whole = RunningStats(x.shape[1])
    whole.update(x)
    a, b, c = RunningStats(x.shape[1]), RunningStats(x.shape[1]), RunningStats(x.shape[1])
    a.update(x[::3])
    b.update(x[1::3])
    c.update(x[2::3])
    a.merge(b)
    a.merge(c)
    torch.testing.assert_close(a.covariance(), whole.covariance(), rtol=1e-10, atol=1e-10)
    restored = RunningStats.from_state(a.state())
    torch.testing.assert_close(restored.mean, whole.mean)


def test_in_place_update_equals_the_out_of_place_formula_and_never_aliases_state():
    x = torch.from_numpy(_features(n=200, d=16, seed=3))
    rs = RunningStats(16)
    n, mean, m2 = 0, torch.zeros(16, dtype=torch.float64), torch.zeros(16, 16, dtype=torch.float64)
    for chunk in x.split(37):
        rs.update(chunk)
        c = chunk.double()
        mb = c.mean(0)
        delta = mb - mean
        tot = n + len(c)
        m2 = m2 + (c - mb).T @ (c - mb) + torch.outer(delta, delta) * (n * len(c) / tot)
        mean, n = mean + delta * (len(c) / tot), tot
    assert rs.n == n
    torch.testing.assert_close(rs.mean, mean, rtol=1e-14, atol=1e-12)
    torch.testing.assert_close(rs.m2, m2, rtol=1e-13, atol=1e-10)
    # from_state copies: updating the restored statistics leaves the saved state alone.
    state = rs.state()
    saved = state["m2"].clone()
    restored = RunningStats.from_state(state)
    restored.update(x[:5])
    restored.merge(RunningStats.from_state(state))
    assert torch.equal(state["m2"], saved) and torch.equal(rs.m2, saved)
    # float64 input (which .to() would hand back as is) is not modified either.
    xd = x.double()
    before = xd.clone()
    RunningStats(16).update(xd)
    assert torch.equal(xd, before)


def test_running_stats_on_a_device_returns_cpu_state():
    x = torch.from_numpy(_features(n=50, d=8))
    rs = RunningStats(8, device="cpu")
    rs.update(x)
    assert rs.m2.device.type == "cpu" and rs.state()["m2"].device.type == "cpu"
    moved = RunningStats.from_state(rs.state(), device="cpu")
    assert moved.device == torch.device("cpu") and moved.n == 50


def test_metrics_match_scipy_mahalanobis_and_whitened_cosine():
    x = _features()
    rs = RunningStats(x.shape[1])
    rs.update(torch.from_numpy(x))
    wh = whitening_from_stats(rs.mean, rs.covariance(), rs.n)
    assert not wh.regularised
    cov = np.cov(x, rowvar=False)
    P = np.linalg.inv(cov)
    np.testing.assert_allclose(wh.P.numpy(), P, rtol=1e-8, atol=1e-8)

    a, b = _features(20, seed=1), _features(20, seed=2)
    dist, sim = pair_metrics(wh.whiten(torch.from_numpy(a)), wh.whiten(torch.from_numpy(b)))
    # The reference: Cholesky factor L of P, z = (mu - f) L, cosine; scipy's mahalanobis.
    L = np.linalg.cholesky(P)
    mu = x.astype(np.float64).mean(0)
    for i in range(len(a)):
        za, zb = (mu - a[i]) @ L, (mu - b[i]) @ L
        cos = za @ zb / np.linalg.norm(za) / np.linalg.norm(zb)
        assert sim[i].item() == pytest.approx(cos, rel=1e-9)
        assert dist[i].item() == pytest.approx(mahalanobis(a[i], b[i], P), rel=1e-6)  # scipy subtracts in float32


def test_identical_views_have_zero_distance_and_unit_similarity():
    x = torch.from_numpy(_features())
    rs = RunningStats(x.shape[1])
    rs.update(x)
    wh = whitening_from_stats(rs.mean, rs.covariance(), rs.n)
    z = wh.whiten(x[:5])
    dist, sim = pair_metrics(z, z)
    torch.testing.assert_close(dist, torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(sim, torch.ones(5, dtype=torch.float64))


def test_singular_covariance_is_regularised_recorded_and_finite():
    # Fewer samples than dimensions, plus a dead (constant) feature.
    x = _features(n=8, d=16)
    x[:, 3] = 0
    rs = RunningStats(16)
    rs.update(torch.from_numpy(x))
    wh = whitening_from_stats(rs.mean, rs.covariance(), rs.n)
    assert wh.regularised
    reg = wh.regularisation
    assert reg["num_dropped"] >= 16 - 7 and reg["method"] == "pseudo_inverse"
    assert torch.isfinite(wh.P).all() and torch.isfinite(wh.W).all()
    torch.testing.assert_close(wh.W @ wh.W.T, wh.P)
    dist, sim = pair_metrics(wh.whiten(torch.from_numpy(x[:4])), wh.whiten(torch.from_numpy(x[4:])))
    assert torch.isfinite(dist).all() and torch.isfinite(sim).all()
    msg = regularisation_warning(reg)
    assert msg and "only 8 images for 16-d features" in msg


def test_constant_pool_does_not_crash():
    rs = RunningStats(4)
    rs.update(torch.ones(10, 4))
    wh = whitening_from_stats(rs.mean, rs.covariance(), rs.n)
    assert torch.isfinite(wh.P).all()
