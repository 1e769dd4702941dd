"""The kernel ridge solver against scikit-learn (KernelRidge, StandardScaler, r2_score)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sslinv.probes import krr


def make_data(n=90, d=12, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, (n, 3))
    X = np.tanh(z @ rng.standard_normal((3, d))) + 0.1 * rng.standard_normal((n, d))
    X[:, 3] = 2.5  # a constant feature: scale 1, as StandardScaler does
    Y = np.stack([np.sin(2 * z[:, 0]), z[:, 1] ** 2, rng.standard_normal(n)], axis=1)
    return X.astype(np.float32), Y


def sklearn_grid(X, y, folds, alphas, gammas):
    """The reference's loop: a pipeline per (alpha, gamma, fold), first maximum wins."""
    X = X.astype(np.float64)
    cv = np.zeros((len(alphas), len(gammas)))
    best, best_params = -np.inf, None
    for a, alpha in enumerate(alphas):
        for g, gamma in enumerate(gammas):
            scores = []
            for val in folds:
                tr = np.setdiff1d(np.arange(len(X)), val)
                pipe = make_pipeline(StandardScaler(), KernelRidge(kernel="rbf", alpha=alpha, gamma=gamma))
                scores.append(pipe.fit(X[tr], y[tr]).score(X[val], y[val]))
            cv[a, g] = np.mean(scores)
            if cv[a, g] > best:
                best, best_params = cv[a, g], (alpha, gamma)
    return cv, best_params


def test_kfold_indices_partition_and_are_seeded():
    folds = krr.kfold_indices(23, 5, seed=3)
    assert [len(f) for f in folds] == [5, 5, 5, 4, 4]
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    again = krr.kfold_indices(23, 5, seed=3)
    assert all((a == b).all() for a, b in zip(folds, again))
    assert any((a != b).any() for a, b in zip(folds, krr.kfold_indices(23, 5, seed=4)))
    with pytest.raises(ValueError):
        krr.kfold_indices(3, 5)


def test_protocol_grid():
    assert krr.ALPHAS == pytest.approx([1, 0.1, 0.01, 1e-3, 1e-4])
    assert krr.GAMMAS == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100])


def test_grid_search_matches_sklearn_loop_and_solvers_agree():
    X, Y = make_data()
    folds = krr.kfold_indices(len(X), 5, seed=0)
    gs = krr.grid_search(X, Y, folds=folds, solver="auto")
    for t in range(Y.shape[1]):
        cv, params = sklearn_grid(X, Y[:, t], folds, krr.ALPHAS, krr.GAMMAS)
        np.testing.assert_allclose(gs.cv_scores[:, :, t], cv, rtol=1e-7, atol=1e-9)
        assert gs.best[t] == pytest.approx(params)
        assert gs.best_score[t] == pytest.approx(cv.max())
    eig = krr.grid_search(X, Y, folds=folds, solver="eigh")
    np.testing.assert_allclose(eig.fold_scores, gs.fold_scores, rtol=1e-7, atol=1e-9)
    assert eig.best == gs.best and eig.solver["eigh"] == 5 * 8 and gs.solver["eigh"] == 0


def test_multi_target_equals_single_targets():
    X, Y = make_data(n=60)
    together = krr.grid_search(X, Y, folds=5, seed=1)
    for t in range(Y.shape[1]):
        alone = krr.grid_search(X, Y[:, t], folds=5, seed=1)
        np.testing.assert_allclose(alone.cv_scores[:, :, 0], together.cv_scores[:, :, t], rtol=1e-9, atol=1e-12)


def test_fit_predict_matches_kernel_ridge():
    X, Y = make_data(n=80)
    Xtr, Xte, y = X[:60], X[60:], Y[:60, 0]
    for alpha, gamma in [(1.0, 1e-3), (1e-4, 0.1), (0.01, 100.0)]:
        pipe = make_pipeline(StandardScaler(), KernelRidge(kernel="rbf", alpha=alpha, gamma=gamma))
        ref = pipe.fit(Xtr.astype(np.float64), y).predict(Xte.astype(np.float64))
        ours = krr.fit_predict(Xtr, y, Xte, alpha, gamma)[:, 0].numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-10)


def test_solvers_agree_and_cg_serves_near_identity_kernels():
    X, Y = make_data(n=70)
    Xs = krr.standardise(torch.as_tensor(X, dtype=torch.float64))[0]
    D = krr.sq_dists(Xs)
    y = torch.as_tensor(Y, dtype=torch.float64)
    for gamma in (1e-3, 1.0, 100.0):
        K = torch.exp(-gamma * D)
        stats = krr.SolverStats()
        chol = krr.solve_alphas(K, y, krr.ALPHAS, "cholesky", stats)
        eig = krr.solve_alphas(K, y, krr.ALPHAS, "eigh")
        direct = [torch.linalg.solve(K + a * torch.eye(len(K), dtype=K.dtype), y) for a in krr.ALPHAS]
        for c, e, d in zip(chol, eig, direct):
            torch.testing.assert_close(c, d, rtol=1e-6, atol=1e-8)
            torch.testing.assert_close(e, d, rtol=1e-6, atol=1e-8)
        if gamma == 100.0:  # the kernel is the identity to working precision
            assert stats.cg == len(krr.ALPHAS) and stats.cholesky == 0
        if gamma == 1e-3:  # nearly constant kernel: ill conditioned for small alphas, so Cholesky
            assert stats.cholesky >= 3


def test_evaluate_refits_and_scores_test_r2():
    X, Y = make_data(n=120, seed=2)
    res = krr.evaluate(X[:90], Y[:90], X[90:], Y[90:], folds=5, seed=0)
    for t in range(Y.shape[1]):
        alpha, gamma = res.search.best[t]
        pipe = make_pipeline(StandardScaler(), KernelRidge(kernel="rbf", alpha=alpha, gamma=gamma))
        pipe.fit(X[:90].astype(np.float64), Y[:90, t])
        assert res.test_r2[t] == pytest.approx(pipe.score(X[90:].astype(np.float64), Y[90:, t]), abs=1e-9)
    # The smooth functions of the latents are learnt; the noise column is not.
    assert res.test_r2[0] > 0.8 and res.test_r2[1] > 0.5 and res.test_r2[2] < 0.2
    out = res.target(0)
    assert set(out) >= {"r2", "alpha", "gamma", "cv_r2", "cv_grid"}


def test_r2_columns_matches_sklearn_including_constant_targets():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((20, 3))
    p = y + 0.3 * rng.standard_normal((20, 3))
    y[:, 2] = 1.0
    ours = krr.r2_columns(torch.as_tensor(y), torch.as_tensor(p)).numpy()
    np.testing.assert_allclose(ours, r2_score(y, p, multioutput="raw_values"))
    assert krr.r2_columns(torch.ones(4, 1), torch.ones(4, 1)).item() == 1.0
