"""Linear-probe solvers and metrics against scikit-learn; the k-NN probe by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score as sk_r2
from sklearn.model_selection import KFold

from sslinv.probes import cv, linear, logistic
from sslinv.probes.knn import knn_predict


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are tiny: one thread avoids OpenMP spin-waiting on busy CPUs."""
    import torch
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def classification_data(n=240, d=24, k=4, seed=0, spread=1.5):
    """Class means and feature scales fixed (seed 100): ``seed`` only draws the samples,
    so different seeds are train and test sets of one problem."""
    fixed = np.random.default_rng(100)
    means = spread * fixed.normal(0, 1, (k, d))
    scales = fixed.uniform(0.2, 4, d)  # uneven, like raw features
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = (rng.normal(0, 1, (n, d)) + means[y]) * scales + 3
    return x.astype(np.float32), y


def regression_data(n, d, k=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, d)) * rng.uniform(0.2, 3, d) + 1.5
    y = x[:, :4] @ rng.normal(0, 1, (4, k)) + rng.normal(0, 1, (n, k))
    return x, y


# ---------------------------------------------------------------------------- metrics


def test_mean_per_class_accuracy_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 3])  # class 3 only predicted: not averaged over
    # class 0: 3/4, class 1: 1/2, class 2: 0/1 -> mean 5/12 (accuracy would be 4/7)
    assert linear.mean_per_class_accuracy(y_true, y_pred) == pytest.approx(5 / 12)
    assert linear.accuracy(y_true, y_pred) == pytest.approx(4 / 7)


def test_r2_matches_sklearn_uniform_average():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 6))
    p = y + rng.normal(size=(40, 6))
    assert linear.r2_score(y, p) == pytest.approx(sk_r2(y, p), rel=1e-12)
    y[:, 2] = 5.0  # a constant output: 0 unless predicted exactly (sklearn's force_finite)
    assert linear.r2_score(y, p) == pytest.approx(sk_r2(y, p), rel=1e-12)
    assert linear.r2_score(y[:, 0], p[:, 0]) == pytest.approx(sk_r2(y[:, 0], p[:, 0]))
    p[:, 2] = 5.0
    assert linear.r2_score(y, p) == pytest.approx(sk_r2(y, p), rel=1e-12)


def test_wd_grid_and_shift():
    g = linear.wd_grid(0)
    assert len(g) == 45 and g[0] == pytest.approx(1e-6) and g[-1] == pytest.approx(1e5)
    g2 = linear.wd_grid(2)
    assert g2[0] == pytest.approx(1e-2) and g2[-1] == pytest.approx(1e9)
    np.testing.assert_allclose(np.diff(np.log10(g)), 11 / 44)


def test_folds_are_seeded_kfold():
    folds = cv.kfold_splits(23, 5, seed=3)
    ref = list(KFold(5, shuffle=True, random_state=3).split(np.zeros(23)))
    for (a, b), (c, d) in zip(folds, ref):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(23))
    assert not np.array_equal(cv.kfold_splits(23, 5, seed=4)[0][1], folds[0][1])


def test_best_index_prefers_smallest_wd_and_ignores_nan():
    assert linear.best_index(np.array([0.5, 0.7, 0.7, np.nan])) == 1
    assert linear.best_index(np.array([np.nan, 0.1])) == 1


# ------------------------------------------------------------------------------ ridge


@pytest.mark.parametrize("n, d", [(200, 30), (25, 60)])  # primal and dual (n < d) forms
def test_ridge_matches_sklearn_at_fixed_alpha(n, d):
    x, y = regression_data(n, d)
    xt, _ = regression_data(30, d, seed=1)
    for alpha in (1e-4, 1.0, 1e3):
        ours = linear.ridge_fit_predict(x, y, xt, alpha)
        ref = Ridge(alpha=alpha).fit(x, y).predict(xt)
        np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-7 * np.abs(ref).max())


@pytest.mark.parametrize("n, d", [(150, 20), (60, 80)])
def test_ridge_cv_curve_equals_per_fit_sklearn(n, d):
    x, y = regression_data(n + 40, d, seed=2)
    folds = cv.kfold_splits(n, 5, 0)
    wds = linear.wd_grid(0)
    res = linear.ridge_cv(x[:n], y[:n], x[n:], y[n:], wds, folds)
    ref = np.array([[Ridge(alpha=w).fit(x[:n][tr], y[:n][tr]).score(x[:n][va], y[:n][va]) for tr, va in folds]
                    for w in wds])
    np.testing.assert_allclose(res.fold_scores, ref, rtol=1e-6, atol=1e-8)
    best = int(np.argmax(ref.mean(1)))
    assert res.best_index == best and res.best_wd == pytest.approx(wds[best])
    test = Ridge(alpha=wds[best]).fit(x[:n], y[:n]).score(x[n:], y[n:])
    assert res.test_score == pytest.approx(test, rel=1e-7)
    assert res.summary()["alpha"] == pytest.approx(wds[best])  # alpha = wd, not 1/wd
    assert len(res.summary()["cv"]["score"]) == 45


@pytest.mark.parametrize("n", [600, 200])  # primal (moments) and dual (n <= d) folds
def test_ridge_on_float32_features_with_a_steep_spectrum_is_sklearns(n):
    """Extracted features are float32 and their variances span many decades: float32
    Gram matrices lose the small directions (CV R^2 off by ~0.005 at small alphas), so
    ridge computes in float64 and its CV curve is sklearn's."""
    rng = np.random.default_rng(0)
    d, big = 256, n + 200
    z = rng.normal(size=(big, 32))
    a = rng.normal(size=(32, d)) * np.logspace(0, -3, d)
    x = np.maximum(z @ a + 0.05 * rng.normal(size=(big, d)) * np.logspace(0, -3, d), 0).astype(np.float32)
    y = z[:, :5] @ rng.normal(size=(5, 3)) + 0.3 * rng.normal(size=(big, 3))
    wds = linear.wd_grid(0)
    folds = cv.kfold_splits(n, 5, 0)
    res = linear.ridge_cv(x[:n], y[:n], x[n:], y[n:], wds, folds)
    x64 = x.astype(np.float64)
    for a in (0, 5, 10):
        ref = [sk_r2(y[:n][va], Ridge(alpha=wds[a]).fit(x64[:n][tr], y[:n][tr]).predict(x64[:n][va])) for tr, va in folds]
        np.testing.assert_allclose(res.fold_scores[a], ref, atol=1e-9)
    assert res.info["dtype"] == "float64"


# ------------------------------------------------------------------ logistic regression


@pytest.mark.parametrize("wd", [0.3, 10.0, 300.0])
def test_logistic_matches_sklearn_at_fixed_regularisation(wd):
    """sklearn's C multiplies the summed loss: C = 1/wd gives the same minimiser as
    mean CE + wd/(2n) ||W||^2. Both solved tightly: same probabilities and predictions."""
    x, y = classification_data()
    xt, yt = classification_data(seed=1)
    coef, intercept, info = logistic.logistic_fit(x, y, 4, wd, max_iter=500, tol=1e-6)
    ref = LogisticRegression(C=1 / wd, max_iter=5000, tol=1e-10).fit(x.astype(np.float64), y)

    def proba(c, b, z):
        logits = z @ c.T + b
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    # float32 products limit how tightly the minimum is located (about 1e-3 relative).
    np.testing.assert_allclose(proba(coef, intercept, xt), ref.predict_proba(xt), atol=2e-2)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-2 * np.abs(ref.coef_).max())
    assert (proba(coef, intercept, xt).argmax(1) == ref.predict(xt)).mean() >= 0.99


def test_logistic_default_tolerance_same_test_score_as_sklearn():
    """At the protocol's settings (tol 1e-4, at most 100 L-BFGS iterations) the test
    accuracy is that of sklearn's LogisticRegression(C=1/wd) solved to convergence.
    (sklearn with max_iter=100 on raw, unevenly scaled features stops short of the
    minimum, here by a few points; the preconditioned solver does not.)"""
    x, y = classification_data(n=300, seed=3, spread=0.4)
    xt, yt = classification_data(n=400, seed=4, spread=0.4)
    for wd in (1.0, 30.0):
        coef, intercept, info = logistic.logistic_fit(x, y, 4, wd)
        # Stopped by tol or at float32 resolution (which of the two depends on the CPU's
        # kernels), not cut off by max_iter: the test score below is what users rely on.
        assert info["iterations"] < 100
        tight = LogisticRegression(C=1 / wd, max_iter=5000, tol=1e-10).fit(x.astype(np.float64), y)
        ours = ((xt @ coef.T + intercept).argmax(1) == yt).mean()
        assert 0.4 < ours < 0.99  # a problem where the answer can differ
        assert abs(ours - tight.score(xt, yt)) <= 2 / 400 + 1e-12


def test_logistic_more_features_than_rows_puts_no_weight_off_the_data():
    """With d > n (or a dead unit) the centred training rows span a subspace; sklearn's
    minimiser has no weight outside it, whatever the penalty. In float32 the null
    directions are rounding noise; they must stay at zero weight, not drift to
    ``tol * n / wd`` (which moved test predictions by machine)."""
    x, y = classification_data(n=40, d=120, seed=7, spread=0.3)
    x[:, 5] = 2.0  # a dead unit too
    xt, _ = classification_data(n=200, d=120, seed=8, spread=0.3)
    xc = (x - x.mean(0)).astype(np.float64)
    _, s, vt = np.linalg.svd(xc, full_matrices=True)
    null = vt[(s > s.max() * 1e-6).sum():]  # (d - rank, d): orthogonal to every centred row
    for wd in (0.01, 1.0):
        coef, intercept, _ = logistic.logistic_fit(x, y, 4, wd)
        assert np.abs(coef @ null.T).max() < 1e-4 * np.abs(coef).max()
        assert np.abs(coef[:, 5]).max() < 1e-4 * np.abs(coef).max()
        # Solved tightly (at tol 1e-4 a small wd stops early, as sklearn's rule says),
        # the test predictions are sklearn's.
        coef, intercept, _ = logistic.logistic_fit(x, y, 4, wd, max_iter=2000, tol=1e-7)
        tight = LogisticRegression(C=1 / wd, max_iter=5000, tol=1e-10).fit(x.astype(np.float64), y)
        assert ((xt @ coef.T + intercept).argmax(1) == tight.predict(xt)).mean() >= 0.99


def test_logistic_on_float32_features_with_a_steep_spectrum_reaches_sklearns_minimum():
    """Directions of small but real variance keep their weights: solved tightly, the
    objective is sklearn's minimum (a float32 basis that dropped them stayed 0.3% above
    it at small wd)."""
    rng = np.random.default_rng(0)
    n, d, k = 600, 128, 4
    z = rng.normal(size=(n, 16))
    a = rng.normal(size=(16, d)) * np.logspace(0, -3, d)
    x = np.maximum(z @ a + 0.05 * rng.normal(size=(n, d)) * np.logspace(0, -4, d), 0).astype(np.float32)
    y = np.argmax(z @ rng.normal(size=(16, k)) * 2 + rng.gumbel(size=(n, k)), 1)

    def objective(coef, intercept, wd):  # sklearn's: C * sum CE + ||W||^2 / 2, C = 1/wd
        logits = x.astype(np.float64) @ coef.T + intercept
        logits -= logits.max(1, keepdims=True)
        ce = np.log(np.exp(logits).sum(1)) - logits[np.arange(n), y]
        return ce.sum() / wd + 0.5 * (coef**2).sum()

    for wd in (1e-3, 1e-1):
        coef, intercept, _ = logistic.logistic_fit(x, y, k, wd, max_iter=3000, tol=1e-6)
        ref = LogisticRegression(C=1 / wd, max_iter=20000, tol=1e-10).fit(x.astype(np.float64), y)
        assert objective(coef, intercept, wd) < objective(ref.coef_, ref.intercept_, wd) * (1 + 1e-4)


def test_logistic_cv_path_matches_independent_fits():
    """The batched, warm-started path gives the fold scores of separate sklearn fits."""
    x, y = classification_data(n=200, seed=5, spread=0.6)
    xt, yt = classification_data(n=200, seed=6, spread=0.6)
    n = 160
    folds = cv.kfold_splits(n, 5, 0)
    wds = linear.wd_grid(0)
    res = logistic.logistic_cv(x[:n], y[:n], xt, yt, 4, wds, folds, "accuracy")
    assert res.fold_scores.shape == (45, 5)
    # How many of the 45 x 6 problems stop at float32 resolution above tol depends on
    # the machine's kernels, so no count is asserted: the scores below are what matter.
    assert 0 <= res.info["not_converged"] + res.info["at_resolution"] <= 45 * 6
    for a in (30, 36, 40, 44):  # where the penalty matters (small wd: plateau, see docs)
        ref = []
        for tr, va in folds:
            clf = LogisticRegression(C=1 / wds[a], max_iter=2000, tol=1e-8).fit(x[:n][tr], y[:n][tr])
            ref.append(clf.score(x[:n][va], y[:n][va]))
        np.testing.assert_allclose(res.fold_scores[a], ref, atol=1 / 32 + 1e-9)  # at most one sample per fold
    best = res.best_index
    assert np.nanmax(res.cv_scores) == res.cv_scores[best]
    ref = LogisticRegression(C=1 / wds[best], max_iter=2000, tol=1e-8).fit(x[:n], y[:n]).score(xt, yt)
    assert res.test_score == pytest.approx(ref, abs=1 / 200 + 1e-9)
    summary = res.summary()
    assert summary["C"] == pytest.approx(1 / summary["wd"])
    assert len(summary["cv"]["wd"]) == len(summary["cv"]["score"]) == 45


def test_logistic_cv_counts_problems_cut_off_by_max_iter():
    """A solve starved of iterations says so (the count users act on), a full one does not."""
    x, y = classification_data(n=120, seed=5, spread=0.6)
    folds = cv.kfold_splits(100, 5, 0)
    wds = linear.wd_grid(0)[::11]
    starved = logistic.logistic_cv(x[:100], y[:100], x[100:], y[100:], 4, wds, folds, "accuracy", max_iter=1)
    assert starved.info["not_converged"] > 0
    full = logistic.logistic_cv(x[:100], y[:100], x[100:], y[100:], 4, wds, folds, "accuracy", max_iter=1000)
    assert full.info["not_converged"] == 0


def test_logistic_mean_per_class_metric_is_used_in_cv():
    x, y = classification_data(n=120, k=3, seed=7)
    y[:90] = 0  # imbalanced: accuracy and mean per-class accuracy differ
    folds = cv.kfold_splits(100, 5, 0)
    res = logistic.logistic_cv(x[:100], y[:100], x[100:], y[100:], 3, linear.wd_grid(0)[::11], folds,
                             "mean_per_class_accuracy")
    assert res.metric == "mean_per_class_accuracy" and 0 <= res.test_score <= 1


# --------------------------------------------------------------------------------- knn


def test_knn_weighted_vote_by_hand():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 1.0]])
    labels = np.array([0, 0, 1, 1, 1])
    test = np.array([[1.0, 0.05], [0.05, 1.0], [0.7, 0.7]])
    pred = knn_predict(train, labels, test, num_classes=2, k=3, temperature=0.07)
    assert pred.tolist()[:2] == [0, 1]
    # Brute force: cosine top-3, weights exp(cos / T).
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    q = test / np.linalg.norm(test, axis=1, keepdims=True)
    sims = q @ tn.T
    for i in range(3):
        top = np.argsort(-sims[i])[:3]
        votes = np.bincount(labels[top], weights=np.exp(sims[i, top] / 0.07), minlength=2)
        assert pred[i] == votes.argmax()
    # k larger than the training set uses every sample; chunking does not change answers.
    assert knn_predict(train, labels, test, 2, k=50, chunk=1).tolist() == knn_predict(train, labels, test, 2, k=5).tolist()
