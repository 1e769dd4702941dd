"""Linear probes with cross-validated weight decay (protocol section 5): multinomial
logistic regression for classification, ridge regression for landmarks.

The protocol (and the reference, ``eval_downstream.py``) searches a weight decay ``wd``
over 45 log-spaced values in ``[10^(-6+2c), 10^(5+2c)]`` (``c``: number of fused models
minus one) by 5-fold CV on trainval (mean fold score), refits on all of trainval with the
best value and scores the test split. The reference fits 225 scikit-learn models per
dataset; here the same answers come from much less work:

**Ridge** (``alpha = wd``; sklearn ``Ridge(alpha)``: ``||Y - X W - b||^2 + alpha ||W||^2``,
intercept unpenalised, i.e. X and Y centred by the training means). One symmetric
eigendecomposition per fold serves all 45 alphas: with ``X_c^T X_c = V diag(l) V^T``,
``W(alpha) = V diag(1 / (l + alpha)) Q`` with ``Q = V^T X_c^T Y_c`` computed once. The
validation R^2 of every alpha then follows from the validation moments
``X_val^T X_val`` and ``X_val^T Y_val`` (a quadratic form per output; no predictions
are formed, so the cost does not grow with the validation size). When a fold has fewer
samples than features the n x n kernel ``X_c X_c^T`` is decomposed instead (the dual
form) and the predictions ``L diag(1 / (l + alpha)) Q`` are formed directly.
The fold Gram matrices are downdated from the full, centred one
(``G_fold = G - X_val^T X_val - n_fold mu mu^T``, mu the small shift of the fold mean),
the refit at the chosen alpha is one Cholesky solve. Products and eigendecompositions
run in float64 whatever the features' dtype: in float32 the Gram matrix's rounding
(about 1e-7 of its largest eigenvalue) swamps the directions of small variance that
extracted features do have, which moved CV scores at small alphas by 0.005 R^2 from
scikit-learn's on float32 features with a steep spectrum; in float64 only directions
at float64 rounding (dead units, n <= d) are left out and the scores are sklearn's.
(The reference passes ``1/wd`` as the ridge alpha, which inverts the grid; sslinv uses
``alpha = wd`` as the protocol means.)

**Logistic regression**: see :mod:`sslinv.probes.logistic`, which shares the grid, the
results and the scores defined here.

Features are used raw, as in the reference (it imports ``StandardScaler`` but never
applies it), because the weight-decay grid is calibrated for raw features; the solvers
centre them internally, which is an exact reparametrisation (the intercept absorbs it).

Scores: accuracy, mean per-class accuracy (the mean over the classes present in the
true labels of the recall of each; the reference's confusion-matrix version turns to NaN
when a fold's predictions contain a class its labels do not, which silently removes that
weight decay from the search), and R^2 averaged uniformly over outputs
(``sklearn.metrics.r2_score``'s default). Among equal CV scores the smallest ``wd`` wins,
as in the reference's ascending loop with a strict ``>``.
"""


from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sslinv.numerics import finite_or_none
from sslinv.probes.cv import r2_columns

#: Number of weight-decay values and the exponent range of the unshifted grid.
WD_NUM = 45
WD_LOW, WD_HIGH = -6, 5

Progress = Callable[[int], None]


def wd_grid(shift: int = 0, num: int = WD_NUM) -> np.ndarray:
    """``num`` log-spaced weight decays in ``[10^(-6+2 shift), 10^(5+2 shift)]``, ascending."""
    return np.logspace(WD_LOW + 2 * shift, WD_HIGH + 2 * shift, num)


# ------------------------------------------------------------------------------ metrics


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def mean_per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of the fraction of that class predicted right."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, inv = np.unique(y_true, return_inverse=True)
    correct = np.bincount(inv, weights=(y_true == y_pred).astype(np.float64), minlength=len(classes))
    total = np.bincount(inv, minlength=len(classes))
    return float(np.mean(correct / total))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination averaged uniformly over outputs (scikit-learn's default)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    return float(r2_columns(torch.from_numpy(y_true), torch.from_numpy(y_pred)[:, None, :]).mean(-1)[0])


CLASSIFICATION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "mean_per_class_accuracy": mean_per_class_accuracy,
}


# ------------------------------------------------------------------------------ results


@dataclass
class CVResult:
    """The outcome of a weight-decay search: the CV curve, the choice and the test score."""

    metric: str
    wd: np.ndarray  # (A,) ascending
    fold_scores: np.ndarray  # (A, folds)
    best_index: int
    test_score: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def cv_scores(self) -> np.ndarray:
        return self.fold_scores.mean(1)

    @property
    def best_wd(self) -> float:
        return float(self.wd[self.best_index])

    def summary(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "score": self.test_score,
            "wd": self.best_wd,
            "cv_score": float(self.cv_scores[self.best_index]),
            "cv": {
                "wd": [float(w) for w in self.wd],
                "score": [finite_or_none(s) for s in self.cv_scores],
                "fold_scores": [[finite_or_none(s) for s in row] for row in self.fold_scores],
            },
            **self.info,
        }


def best_index(cv_scores: np.ndarray) -> int:
    """The first (smallest-wd) maximum; NaN scores never win."""
    scores = np.where(np.isfinite(cv_scores), cv_scores, -np.inf)
    return int(np.argmax(scores))


def _as_tensor(x, device, dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


# ------------------------------------------------------------------------------- ridge


#: Ridge's products and eigendecompositions (see the module docstring).
RIDGE_DTYPE = torch.float64


@dataclass
class _Decomposition:
    """Centred ridge normal equations as eigenpairs: ``X_c^T X_c = V diag(l) V^T``
    (primal, n > d) or ``X_c X_c^T = U diag(l) U^T`` (dual, n <= d). Directions whose
    eigenvalue is at the rounding level (``<= 4 eps l_max``; exactly zero in exact
    arithmetic, e.g. a dead ReLU unit) are dropped, so their rounding noise is not
    amplified by ``1 / (l + alpha)`` at tiny alphas."""

    evals: torch.Tensor  # (r,)
    evecs: torch.Tensor  # (d, r) primal or (n, r) dual
    x_mean: torch.Tensor
    y_mean: torch.Tensor
    q: torch.Tensor  # (r, k): V^T X_c^T Y_c (primal) or U^T Y_c (dual)
    dual_x: torch.Tensor | None = None  # X_c (dual form only)

    @classmethod
    def from_eigh(cls, mat: torch.Tensor, rhs_fn, x_mean, y_mean, dual_x=None) -> _Decomposition:
        evals, evecs = torch.linalg.eigh((mat + mat.T) / 2)
        top = evals.max().clamp_min(0)
        keep = evals > 4 * torch.finfo(evals.dtype).eps * top
        evals, evecs = evals[keep], evecs[:, keep]
        return cls(evals, evecs, x_mean, y_mean, rhs_fn(evecs), dual_x)

    def left(self, x: torch.Tensor) -> torch.Tensor:
        """``L`` for new rows ``x``: predictions are ``L diag(1/(l+alpha)) Q + y_mean``."""
        xc = x - self.x_mean
        if self.dual_x is None:
            return xc @ self.evecs
        return (xc @ self.dual_x.T) @ self.evecs

    def predict(self, left: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
        """Predictions (n, a, k) for every alpha."""
        inv = 1.0 / (self.evals[None, :] + alphas[:, None].to(self.evals.dtype))  # (a, r)
        coef = inv[:, :, None] * self.q[None]  # (a, r, k)
        a, r, k = coef.shape
        out = left @ coef.permute(1, 0, 2).reshape(r, a * k)
        return out.view(left.shape[0], a, k) + self.y_mean


def _decompose(x: torch.Tensor, y: torch.Tensor) -> _Decomposition:
    """Ridge eigen-decomposition on rows ``x`` (n, d) with targets ``y`` (n, k)."""
    n, d = x.shape
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    if n > d:
        c = xc.T @ yc
        return _Decomposition.from_eigh(xc.T @ xc, lambda v: v.T @ c, x_mean, y_mean)
    return _Decomposition.from_eigh(xc @ xc.T, lambda u: u.T @ yc, x_mean, y_mean, dual_x=xc)


def _ridge_scores_from_moments(dec: _Decomposition, gv: torch.Tensor, cv: torch.Tensor, r: torch.Tensor,
                               yv: torch.Tensor, alphas: torch.Tensor) -> np.ndarray:
    """Validation R^2 of every alpha from second moments, without forming predictions.

    With ``W_a = V diag(1/(l+a)) Q`` and centred validation rows ``X`` (moments
    ``gv = X^T X``, ``cv = X^T r``, residual base ``r = y_val - y_mean``), per output:
    ``||r - X W_a||^2 = ||r||^2 - 2 <V^T cv, D_a Q> + (D_a Q)^T (V^T gv V) (D_a Q)``.
    One d x d rotation and one (d x d) @ (d x alphas*k) product replace the
    (n_val x d) @ (d x alphas*k) predictions: cheaper as soon as n_val > d, and
    independent of n_val after the moments (CelebA's 36,000 validation rows cost
    nothing extra). Sums are float64.
    """
    V, q = dec.evecs, dec.q  # (d, r), (r, k)
    inv = 1.0 / (dec.evals[None, :] + alphas[:, None].to(dec.evals.dtype))  # (a, r)
    m = V.T @ gv @ V  # (r, r)
    zt = V.T @ cv  # (r, k)
    a, k = len(alphas), q.shape[1]
    b = (inv[:, :, None] * q[None]).permute(1, 0, 2).reshape(-1, a * k)  # (r, a*k): D_a Q
    quad = (b.double() * (m @ b).double()).sum(0).view(a, k)
    cross = inv.double() @ (zt.double() * q.double())  # (a, k)
    r64 = r.double()
    ss_res = (r64 ** 2).sum(0)[None, :] - 2 * cross + quad
    y64 = yv.double()
    ss_tot = ((y64 - y64.mean(0)) ** 2).sum(0)
    ok = ss_tot > 0
    r2 = torch.where(ok, 1 - ss_res / torch.where(ok, ss_tot, torch.ones_like(ss_tot)),
                     (ss_res.abs() <= 1e-12 * (r64 ** 2).sum(0).clamp_min(1e-300)).to(ss_res.dtype))
    return r2.mean(-1).cpu().numpy()


def ridge_fit_predict(x_train, y_train, x_test, alpha: float, device: str | torch.device = "cpu") -> np.ndarray:
    """Predictions of ``Ridge(alpha)`` (with intercept) trained on ``(x_train, y_train)``."""
    dev = torch.device(device)
    dt = RIDGE_DTYPE
    x, y = _as_tensor(x_train, dev, dt), _as_tensor(y_train, dev, dt)
    squeeze = y.ndim == 1
    y = y[:, None] if squeeze else y
    dec = _decompose(x, y)
    alphas = torch.tensor([alpha], dtype=torch.float64, device=dev)
    pred = dec.predict(dec.left(_as_tensor(x_test, dev, dt)), alphas)[:, 0].double().cpu().numpy()
    return pred[:, 0] if squeeze else pred


def ridge_cv(
    x_trainval,
    y_trainval,
    x_test,
    y_test,
    wds: Sequence[float],
    folds: list[tuple[np.ndarray, np.ndarray]],
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    chunk_bytes: int = 1 << 28,
) -> CVResult:
    """Ridge with ``alpha = wd`` for every ``wd``: CV R^2 per fold, refit, test R^2.

    Products, eigendecompositions and R^2 sums run in float64 (``RIDGE_DTYPE``)."""
    dev = torch.device(device)
    dt = RIDGE_DTYPE
    x = _as_tensor(x_trainval, dev, dt)
    y = _as_tensor(y_trainval, dev, dt)
    y = y[:, None] if y.ndim == 1 else y
    alphas = torch.as_tensor(np.asarray(wds, dtype=np.float64), device=dev)
    n, d = x.shape
    # Centre once by the trainval means; each fold then needs only a small mean shift.
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    del x, y
    primal = n - max(len(va) for _, va in folds) > d
    gram = xc.T @ xc if primal else None
    xty = xc.T @ yc if primal else None

    scores = np.zeros((len(alphas), len(folds)))
    for f, (tr, va) in enumerate(folds):
        va_t = torch.as_tensor(va, device=dev)
        xv, yv = xc[va_t], yc[va_t]
        if primal:
            # Train-fold statistics by downdating the full ones (sum over all rows is 0).
            n_tr = n - len(va)
            sx, sy = xv.sum(0), yv.sum(0)
            mu, nu = -sx / n_tr, -sy / n_tr
            gv, cv = xv.T @ xv, xv.T @ yv
            g = gram - gv - n_tr * torch.outer(mu, mu)
            c = xty - cv - n_tr * torch.outer(mu, nu)
            dec = _Decomposition.from_eigh(g, lambda v, c=c: v.T @ c, mu, nu)
            # Validation statistics relative to the fold means: (xv-mu)^T (xv-mu), (xv-mu)^T (yv-nu).
            nv = len(va)
            gv = gv - torch.outer(sx, mu) - torch.outer(mu, sx) + nv * torch.outer(mu, mu)
            cv = cv - torch.outer(sx, nu) - torch.outer(mu, sy) + nv * torch.outer(mu, nu)
            scores[:, f] = _ridge_scores_from_moments(dec, gv, cv, yv - nu, yv, alphas)
        else:
            dec = _decompose(xc[torch.as_tensor(tr, device=dev)], yc[torch.as_tensor(tr, device=dev)])
            left = dec.left(xv)
            yv64 = yv.double()
            # Bound the (n_val, alphas, k) prediction block.
            per_alpha = max(1, left.shape[0] * yc.shape[1] * left.element_size())
            step = max(1, min(len(alphas), chunk_bytes // per_alpha))
            for a0 in range(0, len(alphas), step):
                pred = dec.predict(left, alphas[a0 : a0 + step])
                scores[a0 : a0 + step, f] = r2_columns(yv64, pred.double()).mean(-1).cpu().numpy()
        del dec
        if progress:
            progress(1)

    best = best_index(scores.mean(1))
    xs = _as_tensor(x_test, dev, dt) - x_mean
    ys = _as_tensor(y_test, dev, torch.float64)
    ys = ys[:, None] if ys.ndim == 1 else ys
    pred = None
    if primal:
        # One alpha: a Cholesky solve of the centred normal equations is enough.
        g = gram.clone()
        g.diagonal().add_(float(alphas[best]))
        chol, info = torch.linalg.cholesky_ex((g + g.T) / 2)
        if int(info) == 0:
            pred = (xs @ torch.cholesky_solve(xty, chol))[:, None, :]
    if pred is None:  # dual, or not numerically positive definite (tiny alpha)
        dec = _decompose(xc, yc)
        pred = dec.predict(dec.left(xs), alphas[best : best + 1])
    test = float(r2_columns(ys, pred.double() + y_mean.double()).mean(-1)[0])
    if progress:
        progress(1)
    return CVResult("r2", np.asarray(wds, dtype=np.float64), scores, best, test,
                    info={"solver": "ridge-eigh", "alpha": float(alphas[best]), "dtype": str(dt).replace("torch.", "")})
