"""Whitening that survives LayerNorm and low precision: drop, do not floor (protocol 1)."""

from __future__ import annotations

import pytest
import torch

from sslinv.evaluate.stats import (
    PRECISION_RTOL,
    RunningStats,
    pair_metrics,
    regularisation_warning,
    whitening_from_stats,
)


def layernorm_features(n: int = 400, d: int = 24, seed: int = 0):
    """Rows of LayerNorm(x) with weight g and bias b: sum_i (f_i - b_i) / g_i = 0 exactly."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) @ torch.randn(d, d, generator=gen, dtype=torch.float64)
    g = torch.rand(d, generator=gen, dtype=torch.float64) + 0.5
    b = torch.randn(d, generator=gen, dtype=torch.float64) * 0.1
    f = torch.nn.functional.layer_norm(x, (d,), g, b, eps=1e-6)
    null = 1 / g
    return f, null / null.norm()


def stats_of(f: torch.Tensor) -> RunningStats:
    rs = RunningStats(f.shape[1])
    rs.update(f)
    return rs


def test_layernorm_null_direction_is_dropped_and_recorded():
    f, v = layernorm_features()
    rs = stats_of(f)
    wh = whitening_from_stats(rs.mean, rs.covariance(), rs.n)
    reg = wh.regularisation
    assert reg["applied"] and reg["method"] == "pseudo_inverse" and reg["num_dropped"] == 1
    assert reg["precision"] == "fp32" and reg["rtol"] == PRECISION_RTOL["fp32"]
    assert reg["dropped_eigenvalues"][0] < 1e-9 * reg["max_eigenvalue"]
    assert wh.W.shape == (24, 23)
    # The metric ignores the null direction: rounding noise along it costs nothing...
    noisy = f[:5] + 1e-3 * v
    dist, sim = pair_metrics(wh.whiten(f[:5]), wh.whiten(noisy))
    assert float(dist.max()) < 1e-8 and float(sim.min()) > 1 - 1e-12
    # ...while the old floor gave it a weight of 1 / (1e-9 lambda_max): a huge distance.
    evals, evecs = torch.linalg.eigh(rs.covariance())
    floored = evals.clamp_min(1e-9 * float(evals.max()))
    P_old = (evecs / floored) @ evecs.T
    d_old = ((1e-3 * v) @ P_old @ (1e-3 * v)).sqrt()
    assert float(d_old) > 10
    msg = regularisation_warning(reg)
    assert msg and "1 of 24 directions" in msg and "LayerNorm" in msg


def test_full_rank_covariance_is_unchanged():
    gen = torch.Generator().manual_seed(1)
    f = torch.randn(300, 12, generator=gen, dtype=torch.float64)
    rs = stats_of(f)
    wh = whitening_from_stats(rs.mean, rs.covariance(), rs.n)
    assert not wh.regularised and wh.regularisation["method"] == "none" and wh.W.shape == (12, 12)
    torch.testing.assert_close(wh.P, torch.linalg.inv(rs.covariance()))


@pytest.mark.parametrize("precision,dropped", [("fp32", 0), ("fp16", 1), ("bf16", 2)])
def test_cutoff_follows_the_precision(precision, dropped):
    # Variances 1, 1e-4, 1e-6 and 1e-8 times the largest: all above fp32's cutoff (1e-9);
    # 1e-8 below fp16/TF32's (2^-22 ~ 2.4e-7); 1e-6 and 1e-8 below bf16's (2^-16 ~ 1.5e-5).
    scales = torch.tensor([1.0, 1e-2, 1e-3, 1e-4], dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64))
    f = (torch.randn(2000, 4, generator=gen, dtype=torch.float64) * scales) @ q.T
    rs = stats_of(f)
    wh = whitening_from_stats(rs.mean, rs.covariance(), rs.n, precision=precision)
    assert wh.regularisation["num_dropped"] == dropped
    assert wh.W.shape == (4, 4 - dropped)
    assert torch.isfinite(wh.W).all()
