"""Exact RBF kernel ridge regression with a k-fold grid search (protocol section 4).

What it computes is the reference's ``make_pipeline(StandardScaler(), KernelRidge('rbf'))``
grid search, exactly (float64 throughout):

- for every fold, features are standardised with the mean and (population) standard
  deviation of that fold's training part, as the pipeline does when it is fitted on the
  fold; constant features keep scale 1, as in scikit-learn;
- kernel ``K = exp(-gamma ||x - x'||^2)``, dual coefficients ``c = (K + alpha I)^-1 y``,
  predictions ``K(x_val, x_train) c``; fold score = R^2 on the fold (constant targets:
  1 if predicted exactly, else 0, as ``r2_score``); CV score = mean over folds;
- the best (alpha, gamma) is the first maximum in the reference's loop order (alpha
  outer, gamma inner); it is refitted on all training data (standardised on all of it)
  and scored on the test set.

How it is fast (and how it differs from a loop of scikit-learn fits):

- squared distances are computed once per fold (one matrix product), not once per fit:
  scikit-learn recomputes the kernel (an n^2 d product) for each of the 200 fits of a
  5 x 8 grid with 5 folds, and again to predict;
- every target is solved at once: ``--target all`` factorises each kernel once for the
  ten latent columns (multiple right-hand sides);
- each ``K + alpha I`` is solved by a Cholesky factorisation, or by conjugate gradients
  when Gershgorin's bounds show the system is well conditioned (condition number at most
  ``CG_MAX_CONDITION``; typical for the large gammas, where the kernel is close to the
  identity) to a relative residual of ``CG_TOL``, falling back to Cholesky if it has not
  converged;
- ``solver="eigh"`` instead takes one eigendecomposition per (gamma, fold) and serves
  every alpha from it (``c = V (Lambda + alpha)^-1 V^T y``). The protocol suggests this;
  measured here it is the slower choice for the protocol's five alphas (one symmetric
  eigendecomposition of a 4000 x 4000 matrix took ~35 Cholesky factorisations' time
  on the 2-core CPU where this was written), so ``auto`` uses it only for grids of more
  than ``EIGH_MIN_ALPHAS`` alphas;
- everything runs in torch on the given device (CUDA when present).

How it stays within memory: the distance matrices are built in place (row blocks for
the norms), the kernel of each gamma is written into one reused buffer, each Cholesky
factorisation overwrites a single work buffer, and predictions are made in blocks of
``PREDICT_ROWS`` rows; none of this changes a bit of the arithmetic. The peak is then
about three training-fold kernels (distances, kernel, factor) plus the fold's
validation distances: ``peak_bytes`` estimates it, and ``evaluate`` refuses up front,
naming the ``--max-train`` that fits, when it exceeds the free memory of the device
(free GPU memory on CUDA, available RAM within the cgroup limit on the CPU).

The reference's folds are unseeded (``KFold(shuffle=True)``); here they come from
``kfold_indices(n, folds, seed)``, so a rerun gives the same numbers. Note that the
reference passes float32 features to scikit-learn, which then builds a float32 kernel;
sslinv computes in float64.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sslinv.errors import UsageError
from sslinv.numerics import finite_or_none
from sslinv.probes.cv import kfold_indices, r2_columns

#: The protocol's grid (section 4): alpha in logspace(0, -4, 5), gamma in logspace(-5, 2, 8).
ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(0, -4, 5))
GAMMAS: tuple[float, ...] = tuple(float(g) for g in np.logspace(-5, 2, 8))
SOLVERS = ("auto", "cholesky", "eigh")
#: ``auto`` switches to one eigendecomposition per (gamma, fold) above this many alphas.
EIGH_MIN_ALPHAS = 32
#: Conjugate gradients is used when Gershgorin's bound on cond(K + alpha I) is at most this.
CG_MAX_CONDITION = 100.0
CG_TOL = 1e-12
CG_MAX_ITER = 300
#: Rows per block when predicting (and when adding the norms to a distance matrix).
PREDICT_ROWS = 2048
#: Head-room on top of the estimate (allocator rounding, solver workspaces, stray copies).
MEMORY_MARGIN = 1.15

Progress = Callable[[int], None]


# ----------------------------------------------------------------------------- pieces


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Scale ``train`` and ``others`` with ``train``'s mean and population std (float64).

    Zero-variance columns keep scale 1, as ``sklearn.preprocessing.StandardScaler``.
    """
    mean = train.mean(0)
    std = train.std(0, unbiased=False)
    std = torch.where(std < 10 * torch.finfo(std.dtype).eps * mean.abs().clamp_min(1.0), torch.ones_like(std), std)
    return [(x - mean) / std for x in (train, *others)]


def sq_dists(a: torch.Tensor, b: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances between rows (one matrix product; clamped at 0, and an
    exact zero diagonal when ``b`` is ``a``).

    Built in place: the product is written into ``out`` (or a new matrix) and the norms
    are added in row blocks, so the only temporary is one block. The arithmetic is that
    of ``(|a|^2 + |b|^2) - 2 a b^T`` bit for bit (doubling is exact, one rounding per
    addition as before).
    """
    same = b is None
    b = a if b is None else b
    d2 = torch.mm(a, b.T, out=out) if out is not None else a @ b.T
    na, nb = (a * a).sum(1), (b * b).sum(1)
    for s in range(0, d2.shape[0], PREDICT_ROWS):
        block = d2[s : s + PREDICT_ROWS]
        block.mul_(-2.0).add_(na[s : s + PREDICT_ROWS, None] + nb[None, :])
    d2.clamp_(min=0.0)
    if same:
        d2.fill_diagonal_(0.0)
    return d2


def rbf_(d2: torch.Tensor, gamma: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """``exp(-gamma * d2)`` written into ``out`` (or over ``d2`` itself)."""
    out = d2 if out is None else out
    return torch.mul(d2, -gamma, out=out).exp_()


def gershgorin_condition(K: torch.Tensor, alpha: float) -> float:
    """Upper bound on cond(K + alpha I) for a kernel with unit diagonal and entries >= 0."""
    off = float(K.sum(1).max()) - 1.0
    lo = max(alpha, 1.0 + alpha - off)
    return (1.0 + alpha + off) / lo


def _cg(K: torch.Tensor, Y: torch.Tensor, alphas: torch.Tensor, tol: float = CG_TOL,
        max_iter: int = CG_MAX_ITER) -> torch.Tensor | None:
    """Conjugate gradients on (K + alpha_j I) x_j = y_j for every column j at once.

    ``alphas`` holds one alpha per column of ``Y``, so several alphas share each product
    with ``K`` (one matrix-matrix product per iteration instead of one matrix-vector
    product per alpha). Returns None if some column has not converged.
    """
    X = Y / (1.0 + alphas)
    R = Y - (K @ X + alphas * X)
    P = R.clone()
    rs = (R * R).sum(0)
    target = (tol * torch.linalg.vector_norm(Y, dim=0)) ** 2
    one = torch.ones_like(rs)
    for _ in range(max_iter):
        active = rs > target
        if not bool(active.any()):
            return X
        AP = K @ P + alphas * P
        denom = (P * AP).sum(0)
        ok = active & (denom > 0)
        step = torch.where(ok, rs / torch.where(ok, denom, one), torch.zeros_like(rs))
        X = X + step * P
        R = R - step * AP
        rs_new = (R * R).sum(0)
        beta = torch.where(ok, rs_new / torch.where(ok, rs, one), torch.zeros_like(rs))
        P = R + beta * P
        rs = torch.where(ok, rs_new, rs)
    return X if bool((rs <= target).all()) else None


@dataclass
class SolverStats:
    cholesky: int = 0
    cg: int = 0
    eigh: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"cholesky": self.cholesky, "cg": self.cg, "eigh": self.eigh}


def solve_alphas(K: torch.Tensor, Y: torch.Tensor, alphas: Sequence[float], solver: str,
                 stats: SolverStats | None = None) -> list[torch.Tensor]:
    """Dual coefficients ``(K + alpha I)^-1 Y`` for every alpha (a list, in order)."""
    stats = stats if stats is not None else SolverStats()
    if solver == "auto":
        solver = "eigh" if len(alphas) > EIGH_MIN_ALPHAS else "cholesky"
    if solver == "eigh":
        stats.eigh += 1
        evals, V = torch.linalg.eigh(K)
        evals = evals.clamp_min(0.0)  # K is PSD; rounding can leave tiny negatives
        VtY = V.T @ Y
        return [V @ (VtY / (evals + a)[:, None]) for a in alphas]
    if solver != "cholesky":
        raise ValueError(f"solver must be one of {SOLVERS}, not {solver!r}")
    out: list[torch.Tensor | None] = [None] * len(alphas)
    # Well-conditioned systems (Gershgorin): conjugate gradients, all such alphas at once.
    easy = [i for i, a in enumerate(alphas) if gershgorin_condition(K, a) <= CG_MAX_CONDITION]
    if easy:
        t = Y.shape[1]
        cols = torch.tensor([alphas[i] for i in easy for _ in range(t)], dtype=K.dtype, device=K.device)
        X = _cg(K, Y.repeat(1, len(easy)), cols)
        if X is not None:
            for j, i in enumerate(easy):
                out[i] = X[:, j * t : (j + 1) * t]
            stats.cg += len(easy)
    # The rest: Cholesky of K + alpha I, factorised in place in one reused work buffer
    # (its transpose is the column-major layout LAPACK/cuSOLVER work in; K is symmetric).
    work: torch.Tensor | None = None
    info = torch.zeros((), dtype=torch.int32, device=K.device)
    for i, a in enumerate(alphas):
        if out[i] is not None:
            continue
        if work is None:
            work = torch.empty_like(K)
        work.copy_(K)
        work.diagonal().add_(a)
        L, info = torch.linalg.cholesky_ex(work.mT, out=(work.mT, info))
        if int(info) != 0:  # not positive definite to working precision: use the spectrum
            del L
            work = None  # free the buffer for eigh's own
            stats.eigh += 1
            evals, V = torch.linalg.eigh(K)
            out[i] = V @ ((V.T @ Y) / (evals.clamp_min(0.0) + a)[:, None])
            del V
            continue
        stats.cholesky += 1
        # Two triangular solves (what cholesky_solve does, bit for bit, without its copy of L).
        out[i] = torch.linalg.solve_triangular(L.mT, torch.linalg.solve_triangular(L, Y, upper=False), upper=True)
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------------ grid search


@dataclass
class GridSearch:
    """Cross-validated scores of every (alpha, gamma) for every target."""

    alphas: list[float]
    gammas: list[float]
    fold_scores: np.ndarray  # (folds, n_alphas, n_gammas, n_targets)
    best: list[tuple[float, float]]  # per target: (alpha, gamma)
    best_score: np.ndarray  # (n_targets,) mean CV R^2 at the best point
    solver: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def cv_scores(self) -> np.ndarray:
        """(n_alphas, n_gammas, n_targets): mean over folds."""
        return self.fold_scores.mean(0)


def _as_tensor(x: Any, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(device=device, dtype=torch.float64)


def _targets_2d(Y: torch.Tensor) -> torch.Tensor:
    return Y[:, None] if Y.ndim == 1 else Y


def grid_search(
    X: Any,
    Y: Any,
    *,
    alphas: Sequence[float] = ALPHAS,
    gammas: Sequence[float] = GAMMAS,
    folds: int | Sequence[np.ndarray] = 5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    solver: str = "auto",
    progress: Progress | None = None,
) -> GridSearch:
    """K-fold CV of RBF kernel ridge over ``alphas`` x ``gammas`` for each column of ``Y``.

    ``X``: (n, d) features (not standardised: each fold standardises its own training
    part). ``Y``: (n,) or (n, t) targets. ``folds``: a number of seeded folds, or the
    validation index arrays themselves. ``progress(1)`` is called per (fold, gamma).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, not {solver!r}")
    t0 = time.perf_counter()
    device = torch.device(device)
    Xt = _as_tensor(X, device)
    Yt = _targets_2d(_as_tensor(Y, device))
    n = Xt.shape[0]
    val_sets = kfold_indices(n, folds, seed) if isinstance(folds, int) else [np.asarray(v) for v in folds]
    alphas, gammas = [float(a) for a in alphas], [float(g) for g in gammas]
    scores = np.full((len(val_sets), len(alphas), len(gammas), Yt.shape[1]), np.nan)
    stats = SolverStats()
    all_rows = np.arange(n)
    for f, val in enumerate(val_sets):
        tr = np.setdiff1d(all_rows, val)
        tr_t = torch.as_tensor(tr, device=device)
        va_t = torch.as_tensor(val, device=device)
        Xtr, Xva = standardise(Xt[tr_t], Xt[va_t])
        D_tt = sq_dists(Xtr)
        D_vt = sq_dists(Xva, Xtr)
        del Xtr, Xva
        Ytr, Yva = Yt[tr_t], Yt[va_t]
        K = torch.empty_like(D_tt)  # one kernel buffer for every gamma of the fold
        for g, gamma in enumerate(gammas):
            rbf_(D_tt, gamma, out=K)
            duals = solve_alphas(K, Ytr, alphas, solver, stats)
            preds = predict_blocks(D_vt, gamma, duals)
            for a, pred in enumerate(preds):
                scores[f, a, g] = r2_columns(Yva, pred).cpu().numpy()
            del duals, preds
            if progress:
                progress(1)
        del D_tt, D_vt, K
    mean = np.nanmean(scores, axis=0) if np.isnan(scores).any() else scores.mean(0)
    best, best_score = [], []
    for t in range(Yt.shape[1]):
        flat = mean[:, :, t].reshape(-1)  # alpha-major, as the reference's product(alphas, gammas)
        i = int(np.nanargmax(flat)) if np.isfinite(flat).any() else 0
        a, g = divmod(i, len(gammas))
        best.append((alphas[a], gammas[g]))
        best_score.append(flat[i])
    return GridSearch(alphas, gammas, scores, best, np.asarray(best_score), stats.as_dict(),
                      time.perf_counter() - t0)


def predict_blocks(D: torch.Tensor, gamma: float, duals: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``exp(-gamma D) @ dual`` for each dual, a block of ``PREDICT_ROWS`` rows at a time
    (the kernel between the rows and the training set is never whole in memory)."""
    preds = [torch.empty(D.shape[0], d.shape[1], dtype=D.dtype, device=D.device) for d in duals]
    block = None
    for s in range(0, D.shape[0], PREDICT_ROWS):
        rows = D[s : s + PREDICT_ROWS]
        if block is None or block.shape[0] != rows.shape[0]:
            block = torch.empty_like(rows)
        rbf_(rows, gamma, out=block)
        for p, d in zip(preds, duals):
            torch.mm(block, d, out=p[s : s + PREDICT_ROWS])
    return preds


def fit_predict(X_train: Any, Y_train: Any, X_test: Any, alpha: float, gamma: float,
                device: torch.device | str = "cpu", solver: str = "auto") -> torch.Tensor:
    """Standardise on ``X_train``, fit kernel ridge, predict ``X_test`` ((m, t) float64)."""
    device = torch.device(device)
    Xtr, Xte = standardise(_as_tensor(X_train, device), _as_tensor(X_test, device))
    Ytr = _targets_2d(_as_tensor(Y_train, device))
    K = rbf_(sq_dists(Xtr), gamma)  # the distances become the kernel, in place
    dual = solve_alphas(K, Ytr, [alpha], solver)[0]
    del K
    pred = torch.empty(Xte.shape[0], dual.shape[1], dtype=dual.dtype, device=device)
    block = None
    for s in range(0, Xte.shape[0], PREDICT_ROWS):
        rows = Xte[s : s + PREDICT_ROWS]
        if block is None or block.shape[0] != rows.shape[0]:
            block = torch.empty(rows.shape[0], Xtr.shape[0], dtype=Xtr.dtype, device=device)
        torch.mm(rbf_(sq_dists(rows, Xtr, out=block), gamma), dual, out=pred[s : s + PREDICT_ROWS])
    return pred


# --------------------------------------------------------------------------- memory


def peak_bytes(n_train: int, n_test: int, dim: int, n_targets: int = 1, *, folds: int = 5,
               n_alphas: int = len(ALPHAS), solver: str = "auto") -> int:
    """Estimated peak memory of ``evaluate`` (bytes, float64, margin included).

    Grid search, per fold (``n`` training rows, ``v`` validation rows): distances,
    kernel and the Cholesky work buffer (``3 n^2``; ``eigh`` instead keeps the
    eigenvectors plus a workspace of about ``2 n^2``), the validation distances
    (``v n``) and one block of predicted rows. The refit on all ``N`` training rows
    needs the kernel and the work buffer (``2 N^2``, or ``4 N^2`` with ``eigh``) and a
    block of test rows. Features are float64 on the device: all training rows and their
    standardised copy during the search, training and test rows during the refit.
    """
    if solver == "auto":
        solver = "eigh" if n_alphas > EIGH_MIN_ALPHAS else "cholesky"
    square = 5 if solver == "eigh" else 3
    n_val = -(-n_train // folds)  # the largest fold
    n_tr = n_train - n_train // folds  # the largest training part
    fold = square * n_tr**2 + n_val * n_tr + min(PREDICT_ROWS, n_val) * n_tr + 2 * n_train * dim
    refit = (square - 1) * n_train**2 + min(PREDICT_ROWS, max(n_test, 1)) * n_train + (n_train + n_test) * dim
    targets = (n_alphas + 3) * (n_train + n_test) * max(n_targets, 1)
    return int(MEMORY_MARGIN * 8 * (max(fold, refit) + targets))


def available_memory(device: torch.device | str) -> int:
    """Bytes ``evaluate`` may use on ``device``: free GPU memory (plus what torch's
    allocator holds but does not use) on CUDA, available RAM (within the cgroup's
    memory limit) elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    from sslinv.cpus import available_ram

    return available_ram()


def max_train_that_fits(budget: int, n_test: int, dim: int, n_targets: int = 1, **kw: Any) -> int:
    """Largest training-set size (rounded down to a hundred, 0 if none) whose
    ``peak_bytes`` is within ``budget``."""
    lo, hi = 0, 1
    while peak_bytes(hi, n_test, dim, n_targets, **kw) <= budget and hi < 1 << 40:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if peak_bytes(mid, n_test, dim, n_targets, **kw) <= budget else (lo, mid)
    return lo // 100 * 100 if lo >= 100 else lo


def check_memory(n_train: int, n_test: int, dim: int, n_targets: int = 1, *, device: torch.device | str = "cpu",
                 available: int | None = None, **kw: Any) -> int:
    """Raise ``UsageError`` (naming the ``--max-train`` that fits) when the estimated peak
    exceeds the memory available on ``device``; return the estimate otherwise.
    ``available`` overrides the measured free memory (bytes)."""
    need = peak_bytes(n_train, n_test, dim, n_targets, **kw)
    have = available_memory(device) if available is None else int(available)
    if need > have:
        fits = max_train_that_fits(have, n_test, dim, n_targets, **kw)
        where = "GPU memory" if torch.device(device).type == "cuda" else "RAM"
        advice = (f"use --max-train {fits} or fewer" if fits >= 2 * kw.get("folds", 5)
                  else "use fewer test images (--max-test) or a machine with more memory")
        raise UsageError(
            f"Kernel ridge on {n_train} training images needs about {need / 2**30:.1f} GiB of {where} "
            f"on {device} but {have / 2**30:.1f} GiB is free: {advice}."
        )
    return need


@dataclass
class KRRResult:
    """Per target: chosen (alpha, gamma), its CV R^2 and the test R^2."""

    search: GridSearch
    test_r2: np.ndarray  # (n_targets,)
    seconds: float

    def target(self, t: int) -> dict[str, Any]:
        alpha, gamma = self.search.best[t]
        return {
            "r2": float(self.test_r2[t]),
            "alpha": alpha,
            "gamma": gamma,
            "cv_r2": float(self.search.best_score[t]),
            "cv_grid": {
                "alphas": self.search.alphas,
                "gammas": self.search.gammas,
                "r2": [[finite_or_none(x) for x in row] for row in self.search.cv_scores[:, :, t]],
            },
        }


def evaluate(
    X_train: Any,
    Y_train: Any,
    X_test: Any,
    Y_test: Any,
    *,
    alphas: Sequence[float] = ALPHAS,
    gammas: Sequence[float] = GAMMAS,
    folds: int = 5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    solver: str = "auto",
    progress: Progress | None = None,
    memory_limit: int | None = None,
) -> KRRResult:
    """Grid search on the training set, refit with each target's best (alpha, gamma)
    (targets sharing them share the fit), and test R^2 per target.

    Refuses up front (``UsageError`` naming the ``--max-train`` that fits) when the
    estimated peak memory exceeds ``memory_limit`` bytes (default: what is free on
    ``device``, see ``available_memory``).
    """
    t0 = time.perf_counter()
    shape_tr, shape_y = np.shape(X_train), np.shape(Y_train)
    check_memory(shape_tr[0], np.shape(X_test)[0], int(np.prod(shape_tr[1:])),
                 shape_y[1] if len(shape_y) > 1 else 1, device=device, available=memory_limit,
                 folds=folds, n_alphas=len(alphas), solver=solver)
    search = grid_search(X_train, Y_train, alphas=alphas, gammas=gammas, folds=folds, seed=seed,
                         device=device, solver=solver, progress=progress)
    Ytr = _targets_2d(_as_tensor(Y_train, torch.device(device)))
    Yte = _targets_2d(_as_tensor(Y_test, torch.device(device)))
    test_r2 = np.full(Ytr.shape[1], np.nan)
    for params in sorted(set(search.best)):
        cols = [t for t, p in enumerate(search.best) if p == params]
        pred = fit_predict(X_train, Ytr[:, cols], X_test, *params, device=device, solver=solver)
        test_r2[cols] = r2_columns(Yte[:, cols], pred).cpu().numpy()
    return KRRResult(search, test_r2, time.perf_counter() - t0)
