"""Speed of sslinv's linear-probe search against the reference's approach, same features.

The reference (``eval_downstream.py``) fits one scikit-learn model per weight decay and
fold: 45 values x 5 folds = 225 fits, then one refit. This script runs exactly that loop
(``LogisticRegression(C=1/wd, lbfgs, max_iter=100, warm_start=True)`` reused across the
loop as the reference does; ``Ridge(alpha=wd)`` for the regression case) and sslinv's
solvers (``sslinv.probes.logistic.logistic_cv`` / ``linear.ridge_cv``: the 5 folds and the refit
as one batched, preconditioned, warm-started L-BFGS path; one eigendecomposition per
fold for all 45 ridge alphas) on the same synthetic features and the same seeded folds,
in one run, and prints the time of each, the speed ratio, the chosen weight decay and
both test scores. Target: >= 10x faster on the CPU, test score within 0.5 points.

Logistic regression, answer check: with the reference's ``max_iter=100`` scikit-learn
stops short of the minimum on raw, unevenly scaled features (the reference silenced the
ConvergenceWarning), so the reference loop's choice and score carry that error. The
script therefore also solves, with scikit-learn run to convergence, the CV folds at
sslinv's chosen weight decay and its two grid neighbours and the refit, and prints
those scores next to sslinv's: that is the like-for-like comparison of answers.

Features: ReLU of a random projection of a low-rank, class-structured latent plus noise
(non-negative, correlated, unevenly scaled, like pooled ResNet features); regression
targets are a noisy linear function of the latent.

    python benchmarks/linear_probe.py                          # n=20000, d=2048, 10 classes; ridge 136 outputs
    python benchmarks/linear_probe.py --task ridge --n 5000    # one case, smaller
    python benchmarks/linear_probe.py --baseline-values 9      # time the baseline on 9 of the 45 values, extrapolate

``--baseline-values K`` runs the baseline on K evenly spaced grid values only and
multiplies its time by 45/K (labelled as an estimate); its test score then comes from a
search over those K values. Use it when the full baseline would take hours.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def make_features(n: int, d: int, classes: int, outputs: int, seed: int = 0, rank: int = 96):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    means = rng.normal(0, 1.0, (classes, rank))
    z = means[y] + rng.normal(0, 4.0, (n, rank))
    proj = rng.normal(0, 1 / np.sqrt(rank), (rank, d)) * rng.uniform(0.2, 2, d)
    x = np.maximum(z @ proj + rng.normal(0, 0.5, (n, d)), 0).astype(np.float32)
    targets = z @ rng.normal(0, 1, (rank, outputs)) + rng.normal(0, 8.0, (n, outputs))
    return x, y, targets.astype(np.float32)


def baseline_logistic(x, y, xt, yt, wds, folds, max_iter):
    """The reference's loop: one warm-started estimator refit per value and fold."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=max_iter, warm_start=True)
    best, best_score, capped = None, -np.inf, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for wd in wds:  # ascending, as the reference
            clf.set_params(C=1.0 / wd)
            scores = []
            for tr, va in folds:
                scores.append(clf.fit(x[tr], y[tr]).score(x[va], y[va]))
                capped += int(clf.n_iter_.max() >= max_iter)
            if np.mean(scores) > best_score:
                best, best_score = wd, float(np.mean(scores))
        clf.set_params(C=1.0 / best)
        test = clf.fit(x, y).score(xt, yt)
    return best, float(test), capped


def converged_logistic(x, y, xt, yt, wd, folds):
    """scikit-learn run to convergence at one weight decay: CV mean and refit test score."""
    from sklearn.linear_model import LogisticRegression

    def fit(xa, ya):
        return LogisticRegression(C=1.0 / wd, max_iter=20000, tol=1e-6).fit(xa, ya)

    cv = float(np.mean([fit(x[tr], y[tr]).score(x[va], y[va]) for tr, va in folds]))
    return cv, float(fit(x, y).score(xt, yt))


def baseline_ridge(x, y, xt, yt, wds, folds):
    from sklearn.linear_model import Ridge

    best, best_score = None, -np.inf
    for wd in wds:
        scores = [Ridge(alpha=wd).fit(x[tr], y[tr]).score(x[va], y[va]) for tr, va in folds]
        if np.mean(scores) > best_score:
            best, best_score = wd, float(np.mean(scores))
    test = Ridge(alpha=best).fit(x, y).score(xt, yt)
    return best, float(test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["logistic", "ridge", "both"], default="both")
    ap.add_argument("--n", type=int, default=20000, help="trainval samples (the test split adds n/4)")
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--outputs", type=int, default=136)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--baseline-values", type=int, default=45,
                    help="run the baseline on this many of the 45 values and extrapolate its time")
    ap.add_argument("--no-check", dest="check", action="store_false",
                    help="skip the converged scikit-learn answer check (logistic regression)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for torch and numpy/scipy BLAS alike (default: each library's own)")
    args = ap.parse_args()

    import torch

    from sslinv.probes.cv import kfold_splits
    from sslinv.probes.linear import ridge_cv, wd_grid
    from sslinv.probes.logistic import logistic_cv

    if args.threads:  # the same thread count for torch and for numpy/scipy's BLAS
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    n_test = args.n // 4
    x, y, t = make_features(args.n + n_test, args.d, args.classes, args.outputs)
    xtv, xte = x[: args.n], x[args.n :]
    folds = kfold_splits(args.n, args.folds, 0)
    wds = wd_grid(0)
    pick = np.unique(np.linspace(0, len(wds) - 1, args.baseline_values).round().astype(int))
    scale = len(wds) / len(pick)
    print(f"features {args.n} + {n_test} test x {args.d} (float32), {args.folds} folds x {len(wds)} weight decays; "
          f"device {args.device}, {torch.get_num_threads()} threads")

    cases = ["logistic", "ridge"] if args.task == "both" else [args.task]
    for case in cases:
        if case == "logistic":
            ytv, yte = y[: args.n], y[args.n :]
            t0 = time.perf_counter()
            res = logistic_cv(xtv, ytv, xte, yte, args.classes, wds, folds, "accuracy",
                              max_iter=args.max_iter, device=args.device)
            ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            b_wd, b_test, capped = baseline_logistic(xtv, ytv, xte, yte, wds[pick], folds, args.max_iter)
            base = (time.perf_counter() - t0) * scale
            label = f"logistic regression, {args.classes} classes (accuracy)"
            extra = f"L-BFGS iterations {res.info['iterations']}, evaluations {res.info['evaluations']}"
            base_note = f"; {capped} of {len(pick) * len(folds)} fold fits stopped at max_iter={args.max_iter}"
        else:
            ytv, yte = t[: args.n], t[args.n :]
            t0 = time.perf_counter()
            res = ridge_cv(xtv, ytv, xte, yte, wds, folds, device=args.device)
            ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            b_wd, b_test = baseline_ridge(xtv, ytv, xte, yte, wds[pick], folds)
            base = (time.perf_counter() - t0) * scale
            label = f"ridge regression, {args.outputs} outputs (R^2)"
            extra = "one eigendecomposition per fold"
            base_note = ""
        est = "" if len(pick) == len(wds) else f" (estimated from {len(pick)} of {len(wds)} values)"
        print(f"\n{label}")
        print(f"  reference approach (225 sklearn fits): {base:9.1f} s{est}  wd {b_wd:.3g}  test {100 * b_test:.2f}{base_note}")
        print(f"  sslinv                                : {ours:9.1f} s  wd {res.best_wd:.3g}  test {100 * res.test_score:.2f}  ({extra})")
        print(f"  speed ratio {base / ours:.1f}x; test score difference {100 * (res.test_score - b_test):+.2f} points")
        if case == "logistic" and args.check:
            i = res.best_index
            print("  answer check, scikit-learn to convergence (tol 1e-6) vs sslinv, CV mean / test:")
            for j in range(max(0, i - 1), min(len(wds), i + 2)):
                cv, test = converged_logistic(xtv, ytv, xte, yte, wds[j], folds)
                mark = " <- sslinv's choice" if j == i else ""
                ours_test = f" / {100 * res.test_score:.2f}" if j == i else ""
                print(f"    wd {wds[j]:9.3g}: sklearn {100 * cv:.2f} / {100 * test:.2f}   sslinv {100 * res.cv_scores[j]:.2f}{ours_test}{mark}")


if __name__ == "__main__":
    main()
