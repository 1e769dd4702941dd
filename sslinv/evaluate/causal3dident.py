"""`sslinv causal3dident`: extrinsic invariance on Causal3DIdent (protocol section 4).

How much of each latent variable (object position, rotation, light, hues) can be read
from a model's frozen features? Kernel ridge regression on the features predicts one
latent column; the test R^2 says how much of that variable the features keep (a model
invariant to it scores low).

Contents of ``run``:
1. world and device; 2. the two splits (indexed once) and their seeded subsets
(``--max-train`` / ``--max-test``; the reference draws 20,480 / 40,960 images in random
unseeded order); 3. model (each member of a fusion ``a+b`` on its own); 4. finished
results are reused; 5. features of both subsets, cached per (member, layer, dataset,
split, rows, pipeline) and fused after, so ``--target all``, another target, a rerun or
another fusion of the same members costs no forward pass; 6. the probes on rank 0: every regression
target in one kernel ridge grid search (``sslinv.probes.krr``: standardised features,
RBF kernel, alpha in logspace(0, -4, 5), gamma in logspace(-5, 2, 8), 5-fold CV R^2,
refit, test R^2), and for ``class`` a multinomial logistic regression (test accuracy);
7. one result file per target.

The ``class`` probe's regularisation is not given by the protocol: sslinv picks
``C`` from ``CLASS_CS`` by the same seeded 5-fold CV (mean accuracy), on features
standardised with the training statistics. It minimises scikit-learn's
``LogisticRegression(C, max_iter=1000)`` objective with the batched torch L-BFGS of
``sslinv.probes.logistic`` on the run's device (one warm-started path over the C grid per
fold), so the GPU solves it when there is one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sslinv import cache
from sslinv.data import causal3dident as c3d
from sslinv.errors import UsageError
from sslinv.evaluate.common import Result, Runtime, Task, record, reuse_or_compute, start
from sslinv.evaluate.features import CleanImages, member_features
from sslinv.probes import krr
from sslinv.reporting import Reporter
from sslinv.runtime import compute_mode

#: Bumped when a change alters the numbers, so old result files are not reused
#: (2: the class probe gives null directions zero weight.)
PROTOCOL_VERSION = 2
CLASS = "class"
#: Inverse regularisation strengths tried for the class probe.
CLASS_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 4, 9))
#: The class probe's solver (recorded in its result file) and its stopping rule, those of
#: the scikit-learn ``LogisticRegression(max_iter=1000)`` it replaces.
CLASS_SOLVER = "torch-lbfgs"
CLASS_MAX_ITER = 1000
CLASS_TOL = 1e-4
#: Above this many training images on a CPU, warn that the exact kernel ridge is slow.
CPU_WARN_TRAIN = 8000
#: Accepted spellings besides the canonical names.
ALIASES = {"rot_x": "rot_alpha", "rot_y": "rot_beta", "rot_z": "rot_gamma", "light_pos": "light",
           "spotlight": "light", "spotlight_hue": "spot_hue", "background_hue": "bg_hue", "object_hue": "obj_hue"}


def target_name(column: int) -> str:
    return c3d.LATENT_NAMES[column] if column < len(c3d.LATENT_NAMES) else f"latent_{column}"


def parse_targets(values: list[str], num_columns: int = len(c3d.LATENT_NAMES)) -> list[int | str]:
    """``0..9``, latent names, ``class`` or ``all`` (every latent column) -> column indices
    and ``"class"``; duplicates dropped, order kept."""
    out: list[int | str] = []
    for raw in values:
        v = raw.strip().lower()
        if v == "all":
            todo: list[int | str] = list(range(num_columns))
        elif v == CLASS:
            todo = [CLASS]
        elif v.lstrip("-").isdigit():
            i = int(v)
            if not 0 <= i < num_columns:
                raise UsageError(f"--target {raw}: latent columns are 0..{num_columns - 1}.")
            todo = [i]
        else:
            name = ALIASES.get(v, v)
            names = [target_name(i) for i in range(num_columns)]
            if name not in names:
                from sslinv.registry import did_you_mean

                raise UsageError(
                    f"Unknown --target {raw!r}.{did_you_mean(v, names + [CLASS, 'all'])} Use a latent column "
                    f"0..{num_columns - 1} ({', '.join(f'{i}={n}' for i, n in enumerate(names))}), 'class' or 'all'."
                )
            todo = [names.index(name)]
        out += [t for t in todo if t not in out]
    return out


@dataclass
class Causal3DIdentConfig:
    runtime: Runtime
    targets: list[str]  # as typed: 0..9, names, class, all
    resize: int = 224
    crop: int = 224
    max_train: int | None = 20480  # None: every training image
    max_test: int | None = 40960
    seed: int = 0
    folds: int = 5
    solver: str = "auto"


@dataclass
class TargetResult(Result):
    target: int | str  # latent column, or "class"
    name: str
    metric: str  # "r2" or "accuracy"
    score: float
    details: dict[str, Any]
    num_train: int
    num_test: int

    @staticmethod
    def read(record: dict[str, Any]) -> dict[str, Any]:
        m, t = record["metrics"], record["target"]
        return {
            "target": CLASS if t["column"] is None else t["column"],
            "name": t["name"],
            "metric": m["metric"],
            "score": m["score"],
            "details": {k: v for k, v in m.items() if k not in ("metric", "score", "num_train", "num_test")},
            "num_train": m["num_train"],
            "num_test": m["num_test"],
        }

    def summary(self) -> dict[str, Any]:
        out = {
            "target": self.target,
            "name": self.name,
            "metric": self.metric,
            # For ``class`` the score is the test accuracy; it is under "r2" too so that
            # every target has the same keys ("metric" says which it is).
            "r2": self.score,
        }
        if self.metric == "accuracy":
            out["accuracy"] = self.score
        out.update({k: v for k, v in self.details.items() if k != "cv_grid"})
        out.update({"num_train": self.num_train, "num_test": self.num_test,
                    "result_file": self.result_file, "cached": self.cached})
        return out


def subset_rows(n: int, limit: int | None, seed: int, stream: int) -> np.ndarray:
    """``limit`` distinct rows of ``range(n)`` (seeded, sorted), or all of them."""
    if limit is None or limit >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, stream])
    return np.sort(rng.choice(n, size=limit, replace=False))


# --------------------------------------------------------------------------------- run


def run(cfg: Causal3DIdentConfig, reporter: Reporter | None = None) -> list[TargetResult]:
    from sslinv.models.fusion import fuse, load_members

    reporter = reporter or Reporter()
    rt = cfg.runtime
    if cfg.solver not in krr.SOLVERS:
        raise UsageError(f"Unknown solver {cfg.solver!r}. Use one of: {', '.join(krr.SOLVERS)}.")

    # -- world and device ----------------------------------------------------------
    session = start(rt)
    world, device = session.world, session.device

    # -- data: both splits and their seeded subsets --------------------------------------
    root = Path(rt.data_root) / c3d.DIRNAME
    train, test = c3d.load_split(root, "train"), c3d.load_split(root, "test")
    if train.latents.shape[1] != test.latents.shape[1]:
        raise UsageError(
            f"Causal3DIdent train and test latents have {train.latents.shape[1]} and "
            f"{test.latents.shape[1]} columns; they must match."
        )
    targets = parse_targets(cfg.targets, train.latents.shape[1])
    rows_tr = subset_rows(len(train), cfg.max_train, cfg.seed, 0)
    rows_te = subset_rows(len(test), cfg.max_test, cfg.seed, 1)
    if len(rows_tr) < max(cfg.folds, 2) * 2:
        raise UsageError(
            f"Only {len(rows_tr)} training images for {cfg.folds}-fold cross-validation; "
            "use more (--max-train) or fewer folds (--folds)."
        )

    if device.type == "cpu" and len(rows_tr) > CPU_WARN_TRAIN and any(t != CLASS for t in targets):
        reporter.warn(
            f"Exact kernel ridge on {len(rows_tr)} training images costs O(n^3) per fit: on a CPU "
            "this takes hours. Use a GPU, or fewer images (e.g. --max-train 5000)."
        )

    # -- model: each member on its own (features cached per member) ---------------------
    members, identity = load_members(rt.model, rt.cache_dir, rt.layer, rt.fuse, arch=rt.arch)

    pipeline = {"resize": cfg.resize, "crop": cfg.crop, **compute_mode(session.device, rt.precision),
                "normalise": "imagenet"}
    id_tr, id_te = c3d.identity(train, rows_tr), c3d.identity(test, rows_te)
    base = {
        "protocol": PROTOCOL_VERSION,
        "command": "causal3dident",
        "model": identity,
        "train": id_tr,
        "test": id_te,
        "latents_file": train.latents_file,
        # The targets as loaded: a changed latents file changes the result, not the features.
        "targets": {"train": cache.sha256_arrays(train.latents[rows_tr], train.labels[rows_tr]),
                    "test": cache.sha256_arrays(test.latents[rows_te], test.labels[rows_te])},
        "pipeline": pipeline,
        "folds": cfg.folds,
        "seed": cfg.seed,
    }
    tasks = []
    for t in targets:
        probe = ({"probe": "logistic_regression", "Cs": list(CLASS_CS)} if t == CLASS
                 else {"probe": "rbf_kernel_ridge", "alphas": list(krr.ALPHAS), "gammas": list(krr.GAMMAS)})
        name = CLASS if t == CLASS else target_name(int(t))
        tasks.append(Task(f"target-{name}", {**base, "target": t, **probe}, t))

    def compute(todo: list[Task]):
        # -- features (cached per member, layer, dataset, split, rows, pipeline) --------------
        feats, hits = {}, {}
        for split, rows, ident in ((train, rows_tr, id_tr), (test, rows_te, id_te)):
            files = [split.path(int(i)) for i in rows]
            parts, info = member_features(
                members, CleanImages(files, cfg.resize, cfg.crop, skip_bad=False), ident, pipeline,
                cache_root=rt.cache_dir, precision=rt.precision, batch_size=rt.batch_size, device=device,
                workers=session.workers, world=world, reporter=reporter, label=f"{len(files)} {split.split} images",
            )
            # The features are on rank 0 alone (None elsewhere).
            feats[split.split] = fuse(parts, rt.fuse) if world.is_main else None
            hits[split.split] = all(i["cached"] for i in info)
        if not world.is_main:
            # The probes run on rank 0 alone; no collective follows, so the others are done.
            return
        feats_tr, feats_te = feats[train.split], feats[test.split]
        features_info = {"train_cached": hits[train.split], "test_cached": hits[test.split],
                         "dim": int(feats_tr.shape[1])}

        # -- probes ----------------------------------------------------------------------
        y_tr, y_te = train.latents[rows_tr], test.latents[rows_te]
        regress = [task.item for task in todo if task.item != CLASS]
        scores: dict[Any, tuple[str, float, dict[str, Any], float]] = {}
        if regress:
            n_fg = cfg.folds * len(krr.GAMMAS)
            progress = reporter.task(
                f"kernel ridge: {len(regress)} target(s), {cfg.folds} folds x {len(krr.GAMMAS)} gammas", n_fg)
            res = krr.evaluate(
                feats_tr, y_tr[:, regress], feats_te, y_te[:, regress],
                folds=cfg.folds, seed=cfg.seed, device=device, solver=cfg.solver, progress=progress,
            )
            per_target_seconds = res.seconds / len(regress)
            for i, t in enumerate(regress):
                scores[t] = ("r2", float(res.test_r2[i]), {**res.target(i), "solver": res.search.solver},
                             per_target_seconds)
        if any(task.item == CLASS for task in todo):
            t0 = time.perf_counter()
            progress = reporter.task(f"logistic regression: {cfg.folds} folds x {len(CLASS_CS)} C",
                                     cfg.folds * len(CLASS_CS))
            acc, details = logistic_probe(feats_tr, train.labels[rows_tr], feats_te, test.labels[rows_te],
                                          folds=cfg.folds, seed=cfg.seed, device=device, progress=progress)
            if details["not_converged"]:
                reporter.warn(f"class probe: {details['not_converged']} of {details['problems']} logistic problems "
                              f"stopped at max_iter {details['max_iter']} before tol {details['tol']:g} "
                              "(the count is in the result file).")
            scores[CLASS] = ("accuracy", acc, details, time.perf_counter() - t0)

        # -- result files ----------------------------------------------------------------
        for task in todo:
            t = task.item
            metric, score, details, seconds = scores[t]
            name = CLASS if t == CLASS else target_name(int(t))
            yield task, record(
                cfg, "causal3dident", task.key, session, model=identity,
                dataset={"train": id_tr, "test": id_te, "latents_file": train.latents_file},
                task=f"target-{name}",
                target={"column": None if t == CLASS else int(t), "name": name},
                features=features_info,
                metrics={"metric": metric, "score": score, **details, "num_train": int(len(rows_tr)),
                         "num_test": int(len(rows_te))},
                seconds=round(seconds, 3),
            )

    # -- finished results are reused, the others computed --------------------------------
    return reuse_or_compute(rt, session, "causal3dident", tasks, TargetResult, compute)


@dataclass
class ClassProbe:
    """A fitted class probe: standardisation with the training statistics, then a
    multinomial logistic regression on the classes seen in training.

    ``coef`` (K, d) and ``intercept`` (K,) act on standardised features, as scikit-learn's
    ``coef_`` / ``intercept_`` would after a ``StandardScaler`` (with two classes sklearn
    keeps one row, ``coef[1] - coef[0]``)."""

    mean: Any  # torch.Tensor (d,)
    scale: Any  # torch.Tensor (d,)
    classes: np.ndarray  # (K,) the labels, sorted
    coef: Any  # torch.Tensor (K, d)
    intercept: Any  # torch.Tensor (K,)
    info: dict[str, Any]

    def predict(self, x) -> np.ndarray:
        z = _standardise(x, self.mean, self.scale) @ self.coef.T + self.intercept
        return self.classes[z.argmax(1).cpu().numpy()]


def logistic_probe(X_train, y_train, X_test, y_test, *, folds: int = 5, seed: int = 0, Cs=CLASS_CS,
                   device="cpu", max_iter: int = CLASS_MAX_ITER, tol: float = CLASS_TOL,
                   progress=None) -> tuple[float, dict[str, Any]]:
    """Multinomial logistic regression: C by k-fold CV accuracy, refit, test accuracy.

    Each fold standardises its training rows with their own statistics and solves the
    whole C grid as one warm-started path (``sslinv.probes.logistic.logistic_path``, on
    ``device``), from the smallest C up, as scikit-learn's ``warm_start`` estimator did;
    the best C (the smallest among ties) is refitted on all training rows.
    """
    import torch

    dev = torch.device(device)
    x_tr = _as_float(X_train, dev)
    y_train = np.asarray(y_train)
    if len(np.unique(y_train)) < 2:
        raise UsageError(f"The class probe needs at least two classes among the {len(y_train)} training "
                         "images; use more of them (--max-train).")
    Cs = sorted(float(c) for c in Cs)
    val_sets = krr.kfold_indices(len(y_train), folds, seed)
    cv = np.zeros((len(val_sets), len(Cs)))
    counts = {"iterations": 0, "evaluations": 0, "not_converged": 0, "at_resolution": 0}
    for f, val in enumerate(val_sets):
        tr = np.setdiff1d(np.arange(len(y_train)), val)
        pred = _class_path(x_tr[tr], y_train[tr], x_tr[val], Cs, max_iter, tol, counts, progress, fold=f)
        cv[f] = (pred == y_train[val][None]).mean(1)
    mean = cv.mean(0)
    best = int(np.argmax(mean))
    probe = fit_class_probe(x_tr, y_train, Cs[best], max_iter=max_iter, tol=tol)
    for k in counts:
        counts[k] += probe.info[k]
    acc = float((probe.predict(_as_float(X_test, dev)) == np.asarray(y_test)).mean())
    return acc, {"C": Cs[best], "cv_accuracy": float(mean[best]), "solver": CLASS_SOLVER,
                 **counts, "problems": len(val_sets) * len(Cs) + 1, "max_iter": max_iter, "tol": tol,
                 "cv_grid": {"Cs": Cs, "accuracy": mean.tolist()}}


def fit_class_probe(X, y, C: float, *, max_iter: int = CLASS_MAX_ITER, tol: float = CLASS_TOL,
                    device=None) -> ClassProbe:
    """Standardise ``X`` and fit sklearn's ``LogisticRegression(C=C)`` objective with the
    torch solver (on ``device``, default: where ``X`` is)."""
    import torch

    from sslinv.probes.logistic import logistic_fit

    x = _as_float(X, torch.device(device) if device is not None else getattr(X, "device", "cpu"))
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise UsageError(f"The class probe needs at least two classes; its {len(codes)} training images "
                         "have one. Use more of them (--max-train).")
    mean, scale = _moments(x)
    coef, intercept, info = logistic_fit(_standardise(x, mean, scale), codes, len(classes),
                                         _wd(C, len(classes)), max_iter=max_iter, tol=tol, device=x.device)
    # logistic_fit says whether max |gradient| <= tol was reached; a problem short of it
    # that used every iteration was cut off by max_iter (the count users act on), one
    # that stopped earlier hit float32 resolution (``at_resolution``, informational).
    cut = not info["converged"] and info["iterations"] >= max_iter
    counts = {"iterations": info["iterations"], "evaluations": info["evaluations"],
              "not_converged": int(cut), "at_resolution": int(not info["converged"] and not cut)}
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=x.device)  # noqa: E731
    return ClassProbe(mean, scale, classes, as_t(coef), as_t(intercept), counts)


def _wd(C: float, num_classes: int) -> float:
    """The solver's weight decay for scikit-learn's ``C``.

    sklearn minimises ``C * sum_i CE_i + ||W||^2 / 2`` (intercept unpenalised); the
    solver minimises ``mean_i CE_i + wd / (2 n) ||W||^2``. Multiplying the latter by
    ``n / wd`` gives ``(1 / wd) * sum_i CE_i + ||W||^2 / 2``: the same objective, hence
    the same minimiser, exactly when ``wd = 1 / C`` (and sklearn >= 1.1 itself optimises
    the mean form, so the stopping rule max |gradient| <= tol is on the same scale).
    With two classes sklearn fits one weight vector ``w`` (binary logistic loss,
    penalty ``||w||^2 / 2``), where the softmax has two, ``W_1 - W_0 = w``; at the
    optimum ``W_1 = -W_0 = w / 2``, so its penalty is ``||w||^2 / 4``: the same minimiser
    needs twice the weight decay, ``wd = 2 / C``.
    """
    return (2.0 if num_classes == 2 else 1.0) / C


def _class_path(x_fit, y_fit: np.ndarray, x_val, Cs: list[float], max_iter: int, tol: float,
                counts: dict[str, int], progress, fold: int) -> np.ndarray:
    """Predictions (len(Cs), n_val) of the fits along the C grid (one warm-started path)."""
    import torch

    from sslinv.probes.logistic import logistic_path

    classes, codes = np.unique(y_fit, return_inverse=True)
    if len(classes) < 2:
        raise UsageError(f"Cross-validation fold {fold} of the class probe trains on one class only; "
                         "use more training images (--max-train) or fewer folds (--folds).")
    mean, scale = _moments(x_fit)
    pred = np.zeros((len(Cs), len(x_val)), dtype=classes.dtype)

    def on_value(a: int, _z, z_val) -> None:
        pred[a] = classes[z_val[:, 0].argmax(-1).cpu().numpy()]

    ones = torch.ones(len(x_fit), 1, dtype=torch.float32, device=x_fit.device)
    path = logistic_path(_standardise(x_fit, mean, scale), codes, len(classes), [_wd(C, len(classes)) for C in Cs],
                         ones, on_value, x_test=_standardise(x_val, mean, scale), max_iter=max_iter, tol=tol,
                         device=x_fit.device, progress=progress)
    counts["iterations"] += int(path.iterations.sum())
    counts["evaluations"] += int(path.evaluations)
    counts["not_converged"] += int(path.exhausted.sum())
    counts["at_resolution"] += int((~path.converged & ~path.exhausted).sum())
    return pred


def _as_float(x, device):
    import torch

    return (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).to(device, torch.float32)


def _moments(x):
    """Mean and scale as scikit-learn's ``StandardScaler`` (float64 statistics, population
    variance; a constant feature, up to rounding, keeps scale 1)."""
    import torch

    x64 = x.double()
    mean = x64.mean(0)
    var = ((x64 - mean) ** 2).mean(0)
    n, eps = x.shape[0], float(np.finfo(np.float64).eps)
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = torch.where(constant, torch.ones_like(var), var.sqrt())
    return mean.float(), scale.float()


def _standardise(x, mean, scale):
    import torch

    return (x.to(mean.device, torch.float32) - mean) / scale
