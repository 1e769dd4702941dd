"""What every probe's cross-validation shares: seeded k-fold splits and R^2.

One implementation each, used by the linear probes (``linear``) and kernel ridge
(``krr``). The two keep their own random streams so that their folds, and every number
computed from them, stay what they were: the linear probes reproduce scikit-learn's
``KFold(shuffle=True, random_state=seed)`` (``legacy=True``: the ``RandomState``
shuffle), kernel ridge permutes with ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["kfold_indices", "kfold_splits", "r2_columns"]


def kfold_indices(n: int, folds: int = 5, seed: int = 0, legacy: bool = False) -> list[np.ndarray]:
    """Validation indices of ``folds`` folds of a seeded permutation of ``range(n)``.

    Fold sizes as scikit-learn's ``KFold``: the first ``n % folds`` folds get one more.
    Each fold's indices are sorted. ``legacy`` draws the permutation as ``KFold`` does
    (``RandomState(seed).shuffle``), else with ``default_rng(seed)``.
    """
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, not {folds}")
    if n < folds:
        raise ValueError(f"{n} samples cannot be split into {folds} folds")
    rng = np.random.RandomState(seed) if legacy else np.random.default_rng(seed)
    perm = rng.permutation(n)
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [np.sort(perm[bounds[i] : bounds[i + 1]]) for i in range(folds)]


def kfold_splits(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, validation)`` index pairs, identical to scikit-learn's
    ``KFold(folds, shuffle=True, random_state=seed).split`` (the reference shuffles
    without a seed)."""
    out = []
    for val in kfold_indices(n, folds, seed, legacy=True):
        mask = np.ones(n, dtype=bool)
        mask[val] = False
        out.append((np.flatnonzero(mask), val))
    return out


def r2_columns(y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """R^2 per output column (``sklearn.metrics.r2_score(..., multioutput='raw_values')``).

    ``y`` is (n, k); ``pred`` is (n, k), or (n, a, k) for ``a`` predictions at once
    (then the result is (a, k)). An output with zero variance scores 1 when predicted
    exactly and 0 otherwise (scikit-learn's ``force_finite``).
    """
    target = y if pred.dim() == 2 else y[:, None, :]
    ss_res = ((target - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    ok = ss_tot > 0
    r2 = 1.0 - ss_res / torch.where(ok, ss_tot, torch.ones_like(ss_tot))
    return torch.where(ok, r2, (ss_res == 0).to(r2.dtype))
