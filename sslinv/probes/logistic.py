"""Multinomial logistic regression with cross-validated weight decay, the classification
probe of protocol section 5 (the grid, the folds, the scores and :class:`CVResult` are
in :mod:`sslinv.probes.linear`).

**Logistic regression** (``C = 1/wd``; sklearn ``LogisticRegression(C)``, multinomial,
lbfgs). Objective scaling, explicitly: sklearn minimises ``C * sum_i CE_i + ||W||^2 / 2``;
dividing by ``C n`` gives the same minimiser as ``mean_i CE_i + wd / (2 n) ||W||^2``,
which is what scikit-learn >= 1.1 optimises internally and what is minimised here (the
intercept is not penalised), with the same stopping rule: max |gradient| <= ``tol``
(1e-4) or ``max_iter`` L-BFGS iterations per value (100, sklearn's default, which the
reference used). What makes it fast:

- the 5 fold problems and the refit on all of trainval are solved *together*: one
  ``X @ [W_1 ... W_6]`` product per iteration instead of six (each problem masks the
  rows it does not train on), so the feature matrix is read once per iteration;
- warm starts along the path, from the largest ``wd`` (easy, nearly zero weights) to the
  smallest, and the L-BFGS curvature pairs carry over between values: the penalty is
  quadratic, so a pair ``(s, y)`` of the previous value becomes an exact pair of the next
  one by adding ``(wd_new - wd_old) / n * s`` to ``y``;
- a preconditioner: the features are centred and rotated once into the eigenbasis of
  their covariance (one float64 eigendecomposition for the whole path; directions
  without variance get zero weight, as in the exact minimiser; rotation keeps the L2
  penalty, the intercept absorbs the mean), where L-BFGS's initial inverse Hessian is
  the diagonal ``(c diag(l) + wd/n)^-1`` instead of a multiple of the identity. This
  removes the ill-conditioning of raw, correlated, unevenly scaled features; it changes
  the path to the minimum, not the minimum;
- moving to the next ``wd``, the objective and gradient at the previous solution follow
  from the penalty's known quadratic term, and one evaluation tries a start
  extrapolated along the path (a secant step in log ``wd`` from the last two solutions,
  kept per problem where it lowers the objective), which about halves the iterations;
- torch on the GPU when there is one (float32 products, float64 objective sums).

A consequence of sklearn's stopping rule that warm starts make visible: once
``wd / n * |W|`` is below ``tol``, a smaller ``wd`` changes the gradient by less than the
tolerance, so the previous solution already counts as converged and the CV curve is
flat at the small-``wd`` end (the reference, starting from wherever its shared
``warm_start`` estimator was, returns equally arbitrary points there). Those values are
almost never selected; where the penalty matters, the path lands on the converged
solution (sklearn with ``max_iter=100`` often stops short of it on raw features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sslinv.probes.linear import CLASSIFICATION_METRICS, CVResult, Progress, _as_tensor, best_index

# ------------------------------------------------------------------ logistic regression


class _Multinomial:
    """``B`` multinomial logistic problems on the rows of one centred matrix ``x`` (n, d).

    Problem ``j`` trains on the rows where ``mask[:, j] == 1``:
    ``f_j(W, b) = mean_{i in j} CE(x_i W + b, y_i) + wd / (2 n_j) ||W||^2``.
    Parameters are flat (B, d*K + K): W row-major (d, K), then b.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, mask: torch.Tensor):
        self.x, self.y, self.K = x, y, num_classes
        self.n, self.d = x.shape
        self.B = mask.shape[1]
        self.mask = mask  # (n, B) float32
        self.counts = mask.sum(0).to(torch.float64)  # (B,)
        self.p = self.d * self.K + self.K
        self.evals = 0

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, d, K = theta.shape[0], self.d, self.K
        return theta[:, : d * K].view(B, d, K), theta[:, d * K :]

    def logits(self, theta: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, B, K) logits of every problem (all rows of ``x``, default the training matrix)."""
        x = self.x if x is None else x
        W, b = self.split(theta)
        B, d, K = W.shape
        w_cat = W.permute(1, 0, 2).reshape(d, B * K)
        return (x @ w_cat).view(x.shape[0], B, K) + b[None]

    def value_grad(self, theta: torch.Tensor, wd: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Objective (B,) float64, gradient (B, p) float32, logits (n, B, K)."""
        self.evals += 1
        W, _ = self.split(theta)
        z = self.logits(theta)
        lse = torch.logsumexp(z, dim=-1)  # (n, B)
        picked = z.gather(-1, self.y.view(-1, 1, 1).expand(self.n, self.B, 1)).squeeze(-1)
        ce = (lse - picked).to(torch.float64)
        pen = (W.to(torch.float64) ** 2).sum((1, 2))
        f = (ce * self.mask).sum(0) / self.counts + wd / (2 * self.counts) * pen
        # d CE / d z = softmax - onehot, weighted by the problem's row mask / n_j.
        g = torch.exp(z - lse[..., None])
        g.scatter_add_(-1, self.y.view(-1, 1, 1).expand(self.n, self.B, 1),
                       torch.full((self.n, self.B, 1), -1.0, dtype=g.dtype, device=g.device))
        g *= (self.mask / self.counts.to(g.dtype))[..., None]
        gW = (g.reshape(self.n, self.B * self.K).T @ self.x).view(self.B, self.K, self.d).transpose(1, 2)
        gW = gW + (wd / self.counts).to(g.dtype)[:, None, None] * W
        grad = torch.cat([gW.reshape(self.B, -1), g.sum(0)], dim=1)
        return f, grad, z


class _Basis:
    """Centre and rotate features into the eigenbasis of their covariance.

    ``z = (x - mean) V`` with ``Sigma = V diag(l) V^T``. Rotation preserves the L2
    penalty (``||V^T W|| = ||W||``) and the intercept absorbs the mean, so the problem in
    ``z`` has the same minimum (``W = V W_z``, ``b = b_z - mean W``) while its data term is
    close to diagonal: the preconditioner below becomes a per-coordinate scaling.
    """

    def __init__(self, x: torch.Tensor, chunk_bytes: int = 1 << 28):
        # Moments and eigendecomposition in float64, from float32 rows a chunk at a time:
        # a float32 covariance's rounding (about 1e-7 of its largest eigenvalue) would
        # bury the directions of small variance that extracted features do have.
        n, d = x.shape
        mean = x.sum(0, dtype=torch.float64) / n
        cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        step = max(1, chunk_bytes // (8 * d))
        for i in range(0, n, step):
            c = x[i : i + step].double() - mean
            cov.addmm_(c.T, c)
        cov /= n
        evals, evecs = torch.linalg.eigh((cov + cov.T) / 2)
        # Directions without variance (a dead unit; d > n) are null: exactly, the gradient
        # there is zero and the penalty keeps the weight at its start, 0. Their computed
        # variance is rounding (float64), and the float32 coordinates ``z`` cannot
        # resolve a variance below eps32^2 * trace; there the preconditioner (1 / penalty)
        # would turn noise into weights as large as ``tol * n / wd``. Such directions get
        # zero coordinates and zero weight, as in scikit-learn's minimiser.
        top = evals.max().clamp_min(0)
        floor = torch.maximum(torch.finfo(torch.float32).eps ** 2 * evals.clamp_min(0).sum(),
                              d * torch.finfo(torch.float64).eps * top)
        kept = evals > floor
        self.mean = mean.to(x.dtype)
        self.evals = torch.where(kept, evals, torch.zeros_like(evals)).to(x.dtype)
        self.evecs = (evecs * kept.to(evecs.dtype)).to(x.dtype)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.evecs


class _Preconditioner:
    """Applies ``(c diag(l) + wd/n_j I)^-1`` to the W block (in the eigenbasis, where
    ``c Sigma + wd/n I`` is diagonal) and ``1/c`` to the intercepts.

    ``c`` approximates the curvature of the softmax cross-entropy per unit of feature
    variance (1/K at uniform predictions); L-BFGS rescales the whole thing each step, so
    only the balance between data and penalty directions matters.
    """

    def __init__(self, evals: torch.Tensor, problem: _Multinomial):
        self.evals = evals
        self.problem = problem
        self.c = 1.0 / problem.K
        self.scale: torch.Tensor | None = None

    def set_wd(self, wd: float) -> None:
        pen = (wd / self.problem.counts).to(self.evals.dtype)  # (B,)
        self.scale = 1.0 / (self.c * self.evals[None, :] + pen[:, None])  # (B, d)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` (m * B, p): any number of stacked batches of the B problems."""
        prob = self.problem
        m = v.shape[0] // prob.B
        W = v[:, : prob.d * prob.K].reshape(m, prob.B, prob.d, prob.K) * self.scale[None, :, :, None]
        return torch.cat([W.reshape(m * prob.B, -1), v[:, prob.d * prob.K :] / self.c], dim=1)


@dataclass
class _History:
    """L-BFGS curvature pairs for every problem, in time order (``rho = 0``: empty slot)."""

    s: list[torch.Tensor] = field(default_factory=list)
    y: list[torch.Tensor] = field(default_factory=list)
    rho: list[torch.Tensor] = field(default_factory=list)

    def push(self, s: torch.Tensor, y: torch.Tensor, size: int) -> None:
        sy = (s.double() * y.double()).sum(1)
        yy = (y.double() * y.double()).sum(1)
        ok = sy > 1e-10 * yy.clamp_min(1e-300)
        rho = torch.where(ok, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))
        self.s.append(s)
        self.y.append(y)
        self.rho.append(rho)
        if len(self.s) > size:
            del self.s[0], self.y[0], self.rho[0]

    def shift_penalty(self, delta: torch.Tensor, w_size: int) -> None:
        """Turn the pairs into exact pairs of a problem whose wd/n grew by ``delta`` (B,)."""
        for i, (s, y) in enumerate(zip(self.s, self.y)):
            y = y.clone()
            y[:, :w_size] += delta.to(y.dtype)[:, None] * s[:, :w_size]
            self.y[i] = y
            sy = (s.double() * y.double()).sum(1)
            self.rho[i] = torch.where(self.rho[i] > 0, 1.0 / sy.clamp_min(1e-300), self.rho[i])
            self.rho[i] = torch.where(sy > 0, self.rho[i], torch.zeros_like(sy))

    def direction(self, g: torch.Tensor, precond: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        q = g.clone()
        alphas = []
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(self.rho)):
            a = rho * (s.double() * q.double()).sum(1)
            q -= a.to(q.dtype)[:, None] * y
            alphas.append(a)
        if self.s:
            s, y, rho = self.s[-1], self.y[-1], self.rho[-1]
            r, hy = precond(torch.cat([q, y])).chunk(2)
            gamma = (s.double() * y.double()).sum(1) / (y.double() * hy.double()).sum(1).clamp_min(1e-300)
            gamma = torch.where(rho > 0, gamma, torch.ones_like(gamma))
            r = r * gamma.to(r.dtype)[:, None]
        else:
            r = precond(q)
        for s, y, rho, a in zip(self.s, self.y, self.rho, reversed(alphas)):
            beta = rho * (y.double() * r.double()).sum(1)
            r += (a - beta).to(r.dtype)[:, None] * s
        return -r


@dataclass
class PathInfo:
    """Solver counters of :func:`logistic_path` (per value, in the caller's order)."""

    iterations: np.ndarray  # (A, B) L-BFGS iterations
    converged: np.ndarray  # (A, B) max |gradient| <= tol reached
    exhausted: np.ndarray  # (A, B) stopped by max_iter while still making progress
    evaluations: int  # objective + gradient evaluations (all problems at once)


def logistic_path(
    x,
    y,
    num_classes: int,
    wds: Sequence[float],
    masks,
    on_value: Callable[[int, torch.Tensor, torch.Tensor | None], None],
    *,
    x_test=None,
    max_iter: int = 100,
    tol: float = 1e-4,
    history: int = 10,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    extrapolate: bool = True,
) -> PathInfo:
    """Solve ``B`` masked multinomial problems for every ``wd`` (largest first, warm started).

    ``masks`` (n, B): which rows each problem trains on. After each value ``a`` is solved,
    ``on_value(a, logits, test_logits)`` receives the logits (n, B, K) of every problem on
    every row, and on ``x_test`` if given (else None).
    """
    dev = torch.device(device)
    basis = _Basis(_as_tensor(x, dev, torch.float32))
    z_all = basis.rotate(_as_tensor(x, dev, torch.float32))
    zt = None if x_test is None else basis.rotate(_as_tensor(x_test, dev, torch.float32))
    y = _as_tensor(y, dev, torch.long)
    mask = _as_tensor(masks, dev, torch.float32)
    prob = _Multinomial(z_all, y, num_classes, mask)
    pre = _Preconditioner(basis.evals, prob)
    w_size = prob.d * num_classes

    order = np.argsort(-np.asarray(wds, dtype=np.float64), kind="stable")
    theta = torch.zeros(prob.B, prob.p, dtype=torch.float32, device=dev)
    hist = _History()
    A = len(wds)
    iters = np.zeros((A, prob.B), dtype=np.int64)
    conv = np.zeros((A, prob.B), dtype=bool)
    out = np.zeros((A, prob.B), dtype=bool)
    prev_wd, state, prev_theta = None, None, None
    for a in order:
        wd = float(wds[a])
        if prev_wd is not None:
            # The penalty is quadratic: objective, gradient and curvature pairs of the
            # new value follow from the old ones without evaluating anything.
            delta = (wd - prev_wd) / prob.counts  # (B,) change of wd / n_j
            f, g, logits = state
            W = theta[:, :w_size]
            f = f + delta / 2 * (W.double() ** 2).sum(1)
            g = g.clone()
            g[:, :w_size] += delta.to(g.dtype)[:, None] * W
            state = (f, g, logits)
            hist.shift_penalty(delta, w_size)
            if prev_theta is not None and extrapolate:
                # The path is smooth in log(wd) and the grid is log-uniform: a secant
                # step from the last two solutions usually starts much closer. Kept per
                # problem only where it lowers the new objective.
                guess = 2 * theta - prev_theta
                gf, gg, gz = prob.value_grad(guess, wd)
                better = gf < f
                prev_theta = theta
                theta = torch.where(better[:, None], guess, theta)
                state = (torch.where(better, gf, f), torch.where(better[:, None], gg, g),
                         torch.where(better[None, :, None], gz, logits))
            else:
                prev_theta = theta
        prev_wd = wd
        pre.set_wd(wd)
        theta, state, it, ok, left = _lbfgs(prob, pre, hist, theta, wd, max_iter, tol, history, state)
        iters[a], conv[a], out[a] = it.cpu().numpy(), ok.cpu().numpy(), left.cpu().numpy()
        on_value(int(a), state[2], None if zt is None else prob.logits(theta, zt))
        if progress:
            progress(1)
    return PathInfo(iters, conv, out, prob.evals)


def _lbfgs(prob: _Multinomial, pre: _Preconditioner, hist: _History, theta, wd, max_iter, tol, size,
           state=None, c1: float = 1e-4, max_ls: int = 25, ftol: float = 1e-10):
    """Batched L-BFGS with Armijo backtracking; each problem stops on its own: gradient
    small enough, line search failed, or relative decrease below ``ftol`` (the objective
    is a float64 sum of float32 terms, so smaller changes are rounding noise).
    ``state``: ``(f, g, logits)`` at ``theta`` if known. Returns the new theta, its state,
    the iterations per problem, whether each reached ``tol`` and whether each was still
    making progress when ``max_iter`` ran out (the only real failure: a problem that
    stalled has reached the resolution of float32 products, which depends on the CPU's
    or GPU's kernels and is not a property of the problem)."""
    B = prob.B
    f, g, z = prob.value_grad(theta, wd) if state is None else state
    active = g.abs().amax(1) > tol
    it = torch.zeros(B, dtype=torch.long, device=theta.device)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        d = hist.direction(g, pre)
        d[~active] = 0
        slope = (g.double() * d.double()).sum(1)
        # A direction that is not a descent direction (stale curvature): fall back to
        # the preconditioned gradient.
        bad = active & (slope >= 0)
        if bool(bad.any()):
            d[bad] = -pre(g)[bad]
            slope = (g.double() * d.double()).sum(1)
        t = torch.ones(B, dtype=torch.float64, device=theta.device)
        pending = active.clone()
        new_theta, new_f, new_g, new_z = theta, f, g, z
        for _ls in range(max_ls):
            trial = theta + (t * pending.double()).to(theta.dtype)[:, None] * d
            tf, tg, tz = prob.value_grad(trial, wd)
            accept = pending & (tf <= f + c1 * t * slope)
            sel = accept[:, None]
            new_theta = torch.where(sel, trial, new_theta)
            new_g = torch.where(sel, tg, new_g)
            new_f = torch.where(accept, tf, new_f)
            new_z = torch.where(accept[None, :, None], tz, new_z)
            pending = pending & ~accept
            if not bool(pending.any()):
                break
            t = torch.where(pending, t * 0.5, t)
        # Problems whose line search failed, or whose objective no longer changes at
        # the resolution of float32 products, stop here.
        stalled = pending | (f - new_f <= ftol * torch.maximum(f.abs(), new_f.abs()).clamp_min(1.0))
        moved = active & ~pending
        s = new_theta - theta
        yv = new_g - g
        s[~moved] = 0
        yv[~moved] = 0
        hist.push(s, yv, size)
        theta, f, g, z = new_theta, new_f, new_g, new_z
        it += moved.long()
        active = moved & ~stalled & (g.abs().amax(1) > tol)
    converged = g.abs().amax(1) <= tol
    return theta, (f, g, z), it, converged, active


def logistic_fit(x, y, num_classes: int, wd: float, *, max_iter: int = 100, tol: float = 1e-4,
                 device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One multinomial logistic regression at ``wd`` (sklearn ``C = 1/wd``) on all rows.

    Returns ``coef`` (K, d) and ``intercept`` (K,) in the original (uncentred)
    coordinates, laid out as sklearn's ``coef_`` / ``intercept_``, and solver info."""
    dev = torch.device(device)
    xt = _as_tensor(x, dev, torch.float32)
    basis = _Basis(xt)
    z = basis.rotate(xt)
    yt = _as_tensor(y, dev, torch.long)
    prob = _Multinomial(z, yt, num_classes, torch.ones(z.shape[0], 1, dtype=torch.float32, device=dev))
    pre = _Preconditioner(basis.evals, prob)
    pre.set_wd(float(wd))
    theta = torch.zeros(1, prob.p, dtype=torch.float32, device=dev)
    theta, _state, it, ok, _left = _lbfgs(prob, pre, _History(), theta, float(wd), max_iter, tol, 10)
    Wz, bz = prob.split(theta)
    W = basis.evecs @ Wz[0]  # back from the eigenbasis
    b = bz[0] - basis.mean @ W
    info = {"iterations": int(it[0]), "converged": bool(ok[0]), "evaluations": prob.evals}
    return W.T.cpu().double().numpy(), b.cpu().double().numpy(), info


def logistic_cv(
    x_trainval,
    y_trainval,
    x_test,
    y_test,
    num_classes: int,
    wds: Sequence[float],
    folds: list[tuple[np.ndarray, np.ndarray]],
    metric: str = "accuracy",
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> CVResult:
    """Logistic regression (``C = 1/wd``) for every ``wd``: CV score per fold, refit on
    all of trainval, test score at the best value. The fold problems and the refit are
    solved together along one warm-started path (see the module docstring)."""
    score_fn = CLASSIFICATION_METRICS[metric]
    y_tv = np.asarray(y_trainval, dtype=np.int64)
    y_te = np.asarray(y_test, dtype=np.int64)
    n = len(y_tv)
    masks = np.zeros((n, len(folds) + 1), dtype=np.float32)
    for j, (tr, _va) in enumerate(folds):
        masks[tr, j] = 1
    masks[:, -1] = 1  # the refit on all of trainval
    A = len(wds)
    scores = np.zeros((A, len(folds)))
    tests = np.zeros(A)

    def on_value(a: int, z: torch.Tensor, zt: torch.Tensor | None) -> None:
        pred = z.argmax(-1).cpu().numpy()  # (n, B)
        for j, (_tr, va) in enumerate(folds):
            scores[a, j] = score_fn(y_tv[va], pred[va, j])
        tests[a] = score_fn(y_te, zt[:, -1].argmax(-1).cpu().numpy())

    path = logistic_path(x_trainval, y_tv, num_classes, wds, masks, on_value, x_test=x_test,
                         max_iter=max_iter, tol=tol, device=device, progress=progress)
    best = best_index(scores.mean(1))
    info = {
        "solver": "logistic-lbfgs",
        "C": 1.0 / float(wds[best]),
        "iterations": int(path.iterations.sum()),
        "evaluations": int(path.evaluations),
        # Problems cut off by max_iter while still descending (the count users act on:
        # raise --max-iter), and problems that stopped at float32 resolution above tol
        # (rounding decides how many; informational).
        "not_converged": int(path.exhausted.sum()),
        "at_resolution": int((~path.converged & ~path.exhausted).sum()),
        "max_iter": max_iter,
        "tol": tol,
    }
    return CVResult(metric, np.asarray(wds, dtype=np.float64), scores, best, float(tests[best]), info=info)
