"""Kernel-ridge grid search: sslinv.probes.krr against a plain scikit-learn loop.

Both run the protocol's grid (alpha in logspace(0, -4, 5) x gamma in logspace(-5, 2, 8),
5-fold CV R^2, refit on all training data, test R^2; protocols.md section 4) on the same
features and the same seeded folds. The baseline is the reference's loop, written out:
one ``make_pipeline(StandardScaler(), KernelRidge(kernel="rbf"))`` fit and score per
(alpha, gamma, fold), the first maximum of the mean CV score wins. Both get float64
features.

The features imitate frozen CNN features of Causal3DIdent: a 10-d latent drives a
random two-layer ReLU map to ``--dim`` features plus noise; the target is one latent
column. Prints the wall time of each, the speed ratio (measured in this run), the chosen
(alpha, gamma) and the test R^2 of both.

    python benchmarks/krr_grid.py                     # n = 5000, d = 2048 (the target case)
    python benchmarks/krr_grid.py --n 1000 --dim 512  # a quick look
    python benchmarks/krr_grid.py --device cuda       # sslinv on the GPU, sklearn on the CPU
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def make_features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, (n, 10))
    hidden = np.maximum(z @ rng.standard_normal((10, 256)) + 0.5 * rng.standard_normal(256), 0)
    feats = np.maximum(hidden @ rng.standard_normal((256, d)) / 16 + 0.3 * rng.standard_normal((n, d)), 0)
    return feats.astype(np.float32), z


def sklearn_loop(X, y, X_test, y_test, folds, alphas, gammas):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, X_test = X.astype(np.float64), X_test.astype(np.float64)
    best, best_params = -np.inf, None
    for alpha in alphas:
        for gamma in gammas:
            pipe = make_pipeline(StandardScaler(), KernelRidge(kernel="rbf", alpha=alpha, gamma=gamma))
            scores = []
            for val in folds:
                tr = np.setdiff1d(np.arange(len(X)), val)
                scores.append(pipe.fit(X[tr], y[tr]).score(X[val], y[val]))
            if np.mean(scores) > best:
                best, best_params = float(np.mean(scores)), (alpha, gamma)
    pipe = make_pipeline(StandardScaler(), KernelRidge(kernel="rbf", alpha=best_params[0], gamma=best_params[1]))
    test = pipe.fit(X, y).score(X_test, y_test)
    return best_params, best, float(test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="training samples (default 5000)")
    ap.add_argument("--n-test", type=int, default=1000, help="test samples")
    ap.add_argument("--dim", type=int, default=2048, help="feature dimension (2048: ResNet-50)")
    ap.add_argument("--target", type=int, default=0, help="latent column to regress (0..9)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="device for sslinv (cpu, cuda)")
    ap.add_argument("--solver", default="auto", choices=("auto", "cholesky", "eigh"))
    ap.add_argument("--skip-sklearn", action="store_true", help="time sslinv only")
    args = ap.parse_args()

    import torch

    from sslinv.probes import krr

    X, Z = make_features(args.n + args.n_test, args.dim, args.seed)
    y = Z[:, args.target]
    Xtr, Xte, ytr, yte = X[: args.n], X[args.n :], y[: args.n], y[args.n :]
    folds = krr.kfold_indices(args.n, 5, args.seed)
    print(f"n={args.n} train / {args.n_test} test, d={args.dim}, grid 5 alphas x 8 gammas x 5 folds; "
          f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, sslinv device {args.device}")

    t0 = time.perf_counter()
    ours = krr.evaluate(Xtr, ytr, Xte, yte, folds=folds, device=args.device, solver=args.solver)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_ours = time.perf_counter() - t0
    a, g = ours.search.best[0]
    print(f"sslinv.probes.krr : {t_ours:8.1f} s  alpha={a:g} gamma={g:g}  cv R^2={ours.search.best_score[0]:.4f}  "
          f"test R^2={ours.test_r2[0]:.4f}  solves {ours.search.solver}")
    if args.skip_sklearn:
        return

    t0 = time.perf_counter()
    params, cv, test = sklearn_loop(Xtr, ytr, Xte, yte, folds, krr.ALPHAS, krr.GAMMAS)
    t_sk = time.perf_counter() - t0
    print(f"scikit-learn loop : {t_sk:8.1f} s  alpha={params[0]:g} gamma={params[1]:g}  cv R^2={cv:.4f}  "
          f"test R^2={test:.4f}")
    same = params == (a, g)
    print(f"speed-up {t_sk / t_ours:.1f}x; same hyper-parameters: {same}; |test R^2 difference| = "
          f"{abs(test - ours.test_r2[0]):.2e}")
    if not same or abs(test - ours.test_r2[0]) > 0.01:
        raise SystemExit("MISMATCH: the two searches disagree")


if __name__ == "__main__":
    main()
