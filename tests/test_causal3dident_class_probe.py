"""The ``causal3dident --target class`` probe against the scikit-learn pipeline it replaces.

The reference below is the probe as it was: ``StandardScaler`` fitted on each fold's
training rows, one ``LogisticRegression(max_iter=1000, warm_start=True)`` per fold walked
up the C grid, the best mean CV accuracy (first among ties), a refit on every training
row, test accuracy. The torch solver minimises the same objective with the same
stopping rule, so where the CV curve has a clear maximum it must choose the same C and
score the same (up to one test image that lies on a decision boundary to within the
solver's tolerance).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sslinv.errors import UsageError
from sslinv.evaluate.causal3dident import CLASS_CS, CLASS_SOLVER, fit_class_probe, logistic_probe
from sslinv.probes.cv import kfold_indices


def blobs(n: int, d: int, k: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes in ``d`` dimensions on unevenly scaled, offset features (so that
    standardisation matters): small ``spread`` is noisy, large is nearly separable."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (k, d))
    y = rng.integers(0, k, n)
    x = centres[y] + rng.normal(0, 1, (n, d))
    x = x * rng.uniform(0.2, 5, d) + rng.normal(0, 10, d)
    return x.astype(np.float32), y


def sklearn_probe(x, y, x_test, y_test, folds=5, seed=0, Cs=CLASS_CS):
    Cs = sorted(Cs)
    cv = np.zeros((folds, len(Cs)))
    for f, val in enumerate(kfold_indices(len(y), folds, seed)):
        tr = np.setdiff1d(np.arange(len(y)), val)
        scaler = StandardScaler().fit(x[tr].astype(np.float64))
        clf = LogisticRegression(max_iter=1000, warm_start=True)
        for c, C in enumerate(Cs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.set_params(C=C).fit(scaler.transform(x[tr]), y[tr])
            cv[f, c] = (clf.predict(scaler.transform(x[val])) == y[val]).mean()
    best = int(np.argmax(cv.mean(0)))
    scaler = StandardScaler().fit(x.astype(np.float64))
    clf = LogisticRegression(C=Cs[best], max_iter=1000).fit(scaler.transform(x), y)
    return float((clf.predict(scaler.transform(x_test)) == y_test).mean()), Cs[best], cv.mean(0)


@pytest.mark.parametrize("k, spread, seed", [
    (7, 0.05, 1),  # noisy: accuracy near chance, strong regularisation wins
    (7, 0.25, 2),  # overlapping classes
    (7, 1.0, 3),  # separable-ish: nearly separable, n > d
    (3, 0.4, 4),
    (2, 0.3, 5),  # two classes: sklearn's binary loss, C mapped to wd = 2 / C
])
def test_same_choice_and_accuracy_as_sklearn(k, spread, seed):
    x, y = blobs(900, 24, k, spread, seed)
    x_tr, y_tr, x_te, y_te = x[:600], y[:600], x[600:], y[600:]
    acc, details = logistic_probe(x_tr, y_tr, x_te, y_te)
    ref_acc, ref_C, ref_cv = sklearn_probe(x_tr, y_tr, x_te, y_te)
    assert details["C"] == ref_C
    assert abs(acc - ref_acc) <= 1 / len(y_te) + 1e-12, (acc, ref_acc)
    # Every point of the CV curve: at most one validation image per fold apart.
    assert np.abs(np.array(details["cv_grid"]["accuracy"]) - ref_cv).max() <= 1 / 120 + 1e-12
    assert details["cv_accuracy"] == pytest.approx(ref_cv.max(), abs=1 / 120)
    assert details["solver"] == CLASS_SOLVER and details["not_converged"] == 0
    assert details["problems"] == 5 * len(CLASS_CS) + 1 and details["iterations"] > 0


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("C", [1e-3, 0.1, 10.0])
def test_coefficients_close_to_sklearn(k, C):
    """On a non-separable problem the minimiser is unique: the same coefficients as
    sklearn's on the standardised features, up to the shared tolerance."""
    x, y = blobs(2000, 16, k, 0.3, 6)
    probe = fit_class_probe(x, y, C)
    ref = LogisticRegression(C=C, max_iter=1000, tol=1e-8).fit(StandardScaler().fit_transform(x.astype(np.float64)), y)
    coef, intercept = probe.coef.double().numpy(), probe.intercept.double().numpy()
    if k == 2:  # sklearn keeps one row: W_1 - W_0
        coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
    scale = np.abs(ref.coef_).max()
    assert np.abs(coef - ref.coef_).max() <= 2e-3 * scale + 1e-5, (np.abs(coef - ref.coef_).max(), scale)
    assert np.abs(intercept - ref.intercept_).max() <= 2e-3 * max(np.abs(ref.intercept_).max(), scale) + 1e-5
    assert probe.info["not_converged"] == 0
    assert np.array_equal(probe.classes, np.arange(k))


def test_labels_need_not_be_0_to_k():
    """Any class labels (sklearn's classes_): the probe predicts the labels themselves."""
    x, y = blobs(400, 8, 3, 1.0, 7)
    labels = np.array([3, 11, 40])
    acc, _ = logistic_probe(x[:300], labels[y[:300]], x[300:], labels[y[300:]])
    plain, _ = logistic_probe(x[:300], y[:300], x[300:], y[300:])
    assert acc == plain > 0.8


def test_torch_inputs_and_matching_cv_choice():
    """The command passes torch tensors (the cached features); the answer is the same."""
    x, y = blobs(500, 12, 4, 0.4, 8)
    a = logistic_probe(x[:400], y[:400], x[400:], y[400:])
    b = logistic_probe(torch.from_numpy(x[:400]), y[:400], torch.from_numpy(x[400:]), y[400:])
    assert a[0] == b[0] and a[1]["C"] == b[1]["C"]


def test_non_converged_fits_are_counted():
    x, y = blobs(300, 10, 3, 1.0, 9)
    _, starved = logistic_probe(x[:200], y[:200], x[200:], y[200:], max_iter=1)
    assert starved["not_converged"] > 0 and starved["max_iter"] == 1
    _, full = logistic_probe(x[:200], y[:200], x[200:], y[200:])
    assert full["not_converged"] == 0


def test_constant_feature_keeps_scale_one():
    """A dead unit (constant feature) is centred to zero and not divided by its zero
    spread, as StandardScaler does; it carries (up to rounding) no weight."""
    x, y = blobs(300, 6, 3, 1.0, 10)
    x[:, 2] = 7.0
    probe = fit_class_probe(x, y, 1.0)
    assert probe.mean[2].item() == 7.0 and probe.scale[2].item() == 1.0
    assert probe.coef[:, 2].abs().max().item() < 1e-2 * probe.coef.abs().max().item()


def test_one_class_is_a_usage_error():
    x, y = blobs(100, 4, 3, 1.0, 11)
    with pytest.raises(UsageError, match="at least two classes"):
        logistic_probe(x[:80], np.zeros(80, dtype=int), x[80:], y[80:])
    y = np.zeros(100, dtype=int)
    y[kfold_indices(80, 5, 0)[0]] = 1  # class 1 only in fold 0: fold 0 trains on class 0 alone
    with pytest.raises(UsageError, match="fold 0 of the class probe trains on one class"):
        logistic_probe(x[:80], y[:80], x[80:], y[80:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu():
    x, y = blobs(3000, 64, 7, 0.3, 12)
    cpu = logistic_probe(x[:2000], y[:2000], x[2000:], y[2000:], device="cpu")
    gpu = logistic_probe(x[:2000], y[:2000], x[2000:], y[2000:], device="cuda")
    assert gpu[1]["C"] == cpu[1]["C"] and abs(gpu[0] - cpu[0]) <= 1 / 1000 + 1e-12
