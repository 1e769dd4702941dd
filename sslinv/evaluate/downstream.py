"""`sslinv downstream`: transfer by probes on frozen features (protocol section 5).

Contents of ``run``:
1. world and device; 2. datasets (``all``: those whose folder exists); 3. models: each
member of a fused spec ``a+b+c`` is loaded on its own, so its features are cached under
its own identity and any fusion (or the member alone) reuses them; 4. per dataset,
finished results with identical inputs are reused, otherwise the features of every
member and split are extracted once (sharded across torchrun ranks, cached by model
identity, layer, dataset split and pipeline) and fused (``cat``, ``add``, ``mean``);
5. probes, on rank 0 only and after all extraction, so no collective waits on a long
solve: the linear probe (logistic regression or ridge, weight decay chosen by seeded
5-fold CV over 45 values shifted by the number of fused models; see
``sslinv.probes.linear``) or the DINO-style weighted k-NN (classification only);
6. one result file per dataset with the CV curve, the chosen weight decay and the
test score.

Deviations from the reference, each deliberate: seeded CV folds (the reference's
``KFold`` is unseeded); ridge ``alpha = wd`` (the reference passes ``1/wd``);
mean per-class accuracy over the classes present in the true labels (the reference's
turns NaN when a fold predicts a class it lacks); CelebA landmarks kept as floats (the
reference truncates them to integers); the seeded splits of 300W and LSP are computed in
memory (the reference writes them into the data folder; same permutation); Caltech101's
default split draws 30 distinct images per class (``--split-dir`` reads the published
files instead); the weight-decay shift is the number of fused models minus one for every
model (the reference also shifts by 2 when the model name contains ``w3``: pass
``--wd-shift 2`` to reproduce that).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sslinv import distributed, results
from sslinv.data.downstream import (
    DATASETS,
    DownstreamDataset,
    Split,
    check_split_dir,
    get_dataset,
)
from sslinv.errors import DataNotFoundError, UsageError
from sslinv.evaluate import features as featcache
from sslinv.evaluate.features import Extractor
from sslinv.reporting import Reporter
from sslinv.runtime import default_workers, resolve_device

#: Bumped when a change alters the numbers, so old result files are not reused.
PROTOCOL_VERSION = 1
#: Bumped when the image pipeline changes, so cached features are not reused.
PIPELINE_VERSION = 1
PROBES = ("linear", "knn")


@dataclass
class DownstreamConfig:
    model: str
    datasets: list[str]
    cache_dir: Path
    data_root: Path
    probe: str = "linear"
    fuse: str = "cat"
    layer: str = "backbone"
    resize: int = 224
    crop: int = 224
    folds: int = 5
    seed: int = 0
    split_seed: int = 0
    split_dir: Path | None = None
    wd_shift: int | None = None  # None: number of fused models - 1
    max_iter: int = 100
    tol: float = 1e-4
    knn_k: int = 20
    knn_temperature: float = 0.07
    batch_size: int = 64
    workers: int | None = None
    device: str | None = None
    precision: str = "fp32"
    force: bool = False

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("cache_dir", "data_root", "split_dir"):
            d[k] = None if d[k] is None else str(d[k])
        return d


@dataclass
class DatasetResult:
    dataset: str
    metric: str
    score: float
    probe: str
    wd: float | None
    cv: dict[str, Any] | None
    n_trainval: int
    n_test: int
    result_file: str
    cached: bool
    record: dict[str, Any] = field(repr=False, default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "metric": self.metric,
            "score": self.score,
            "probe": self.probe,
            "wd": self.wd,
            "cv": self.cv,
            "n_trainval": self.n_trainval,
            "n_test": self.n_test,
            "result_file": self.result_file,
            "cached": self.cached,
        }


# ------------------------------------------------------------------------ datasets


def resolve_datasets(names: list[str], data_root: Path, probe: str, reporter: Reporter) -> list[DownstreamDataset]:
    """Registry records for ``names``; ``all`` means every dataset whose folder exists."""
    chosen: list[DownstreamDataset] = []
    for name in names:
        if name.strip().lower() == "all":
            protocol = [ds for _, ds in DATASETS.items() if not ds.builtin]
            present = [ds for ds in protocol if ds.root(data_root).is_dir()]
            if not present:
                expected = ", ".join(f"{ds.root(data_root)}" for ds in protocol)
                raise DataNotFoundError(
                    f"No downstream dataset found under {data_root} (looked for {expected}). "
                    "Run: sslinv fetch-data NAME (CIFAR10, Caltech101, Flowers, 300W, CelebA, "
                    "LeedsSportsPose), or set --data-root."
                )
            missing = [ds.name for ds in protocol if not ds.root(data_root).is_dir()]
            if missing:
                reporter.info(f"--dataset all: not present under {data_root}, skipped: {', '.join(missing)}")
            for ds in present:
                if probe == "knn" and ds.task != "classification":
                    reporter.info(f"--probe knn: skipping {ds.name} (a regression task)")
                    continue
                if ds not in chosen:
                    chosen.append(ds)
            continue
        ds = get_dataset(name)
        if probe == "knn" and ds.task != "classification":
            raise UsageError(
                f"--probe knn classifies; {ds.name} is a {ds.task} task ({ds.metric}). "
                "Use --probe linear for it."
            )
        if ds not in chosen:
            chosen.append(ds)
    return chosen


class SplitImages(Dataset):
    """Item ``j`` is ``(j, uint8 view)``: image ``j`` of a split, box-cropped if the split
    has boxes, then the clean pipeline (resize, centre crop)."""

    def __init__(self, split: Split, resize: int, crop: int):
        self.split, self.resize, self.crop = split, resize, crop

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, j: int):
        from PIL import Image

        from sslinv.data.folder import load_rgb
        from sslinv.transforms import clean_view

        s = self.split
        img = Image.fromarray(s.arrays[j]) if s.arrays is not None else load_rgb(s.files[j])
        if s.boxes is not None:
            img = img.crop(tuple(float(v) for v in s.boxes[j]))
        return j, clean_view(img, self.resize, self.crop)


# -------------------------------------------------------------------------- models


def member_specs(spec: str, cache: Path) -> list[str]:
    """The members of a model spec: ``a+b+c`` -> ``[a, b, c]``; a registered name or an
    existing file whose name contains ``+`` is one member (as ``load_model`` decides)."""
    from sslinv.models.zoo import MODELS
    from sslinv.paths import checkpoint_path

    if "+" not in spec or spec in MODELS or checkpoint_path(cache, spec).is_file() or Path(spec).expanduser().exists():
        return [spec]
    parts = [p.strip() for p in spec.split("+")]
    if any(not p for p in parts):
        raise UsageError(f"Model spec {spec!r} has an empty member; write e.g. 'default+ventral'.")
    return parts


@dataclass
class _Member:
    spec: str
    model: torch.nn.Module
    identity: dict[str, Any]
    extractor: Extractor | None = None


def load_members(cfg: DownstreamConfig) -> tuple[list[_Member], dict[str, Any]]:
    """Each member loaded on its own (features cached per member), and the fused identity."""
    from sslinv.models.load import load_model, resolve_member
    from sslinv.models.zoo import check_fuse, check_layer

    check_layer(cfg.layer)
    check_fuse(cfg.fuse)
    specs = member_specs(cfg.model, cfg.cache_dir)
    for s in specs:  # every name checked before anything loads
        resolve_member(s, cfg.cache_dir)
    members = []
    for s in specs:
        model, ident = load_model(s, cfg.cache_dir, layer=cfg.layer)
        members.append(_Member(s, model, ident))
    dims = [int(m.identity["dim"]) for m in members]
    fused = len(members) > 1
    if fused and cfg.fuse != "cat" and len(set(dims)) != 1:
        raise UsageError(
            f"Cannot fuse with {cfg.fuse!r}: the members' feature dimensions differ "
            f"({', '.join(map(str, dims))}). Use --fuse cat, or fuse models whose features "
            "have the same dimension."
        )
    identity: dict[str, Any] = {"spec": cfg.model, "layer": cfg.layer}
    if fused:
        identity["fuse"] = cfg.fuse
    identity["dim"] = sum(dims) if (not fused or cfg.fuse == "cat") else dims[0]
    identity["members"] = [info for m in members for info in m.identity["members"]]
    return members, identity


def fuse_features(parts: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Combine member features: concatenate, add or average (same as ``FusedModel``)."""
    if len(parts) == 1:
        return parts[0]
    if mode == "cat":
        return torch.cat(parts, dim=1)
    total = torch.stack(parts, dim=0).sum(dim=0)
    return total / len(parts) if mode == "mean" else total


# ------------------------------------------------------------------------------ run


def probe_config(cfg: DownstreamConfig, ds: DownstreamDataset, n_members: int) -> dict[str, Any]:
    if cfg.probe == "knn":
        return {"kind": "knn", "k": cfg.knn_k, "temperature": cfg.knn_temperature, "features": "l2-normalised"}
    shift = n_members - 1 if cfg.wd_shift is None else cfg.wd_shift
    out = {
        "kind": "linear",
        "model": "logistic" if ds.task == "classification" else "ridge",
        "folds": cfg.folds,
        "seed": cfg.seed,
        "wd_shift": shift,
        "wd_num": 45,
        "features": "raw (centred inside the solver, as the intercept allows)",
    }
    if ds.task == "classification":
        out.update({"max_iter": cfg.max_iter, "tol": cfg.tol})
    return out


def _check(cfg: DownstreamConfig) -> None:
    if cfg.probe not in PROBES:
        raise UsageError(f"Unknown probe {cfg.probe!r}. Use one of: {', '.join(PROBES)}.")
    if cfg.folds < 2:
        raise UsageError("--folds must be at least 2.")
    if cfg.crop > cfg.resize:
        raise UsageError(f"--crop-size ({cfg.crop}) cannot exceed --resize ({cfg.resize}).")
    if cfg.knn_k < 1 or cfg.knn_temperature <= 0:
        raise UsageError("--knn-k must be >= 1 and --knn-temperature > 0.")


def run(cfg: DownstreamConfig, reporter: Reporter | None = None) -> list[DatasetResult]:
    reporter = reporter or Reporter()
    _check(cfg)
    world = distributed.world_from_env()

    # -- world and device ----------------------------------------------------------
    device = resolve_device(cfg.device, world)
    distributed.init(world, device.type)
    workers = default_workers(device) if cfg.workers is None else cfg.workers

    # -- datasets ------------------------------------------------------------------
    datasets = resolve_datasets(cfg.datasets, cfg.data_root, cfg.probe, reporter)
    check_split_dir([d.name for d in datasets], cfg.split_dir)
    if not datasets:
        raise UsageError("No dataset to evaluate (with --probe knn only classification datasets apply).")

    # -- models ----------------------------------------------------------------------
    members, identity = load_members(cfg)
    pipeline = {"resize": cfg.resize, "crop": cfg.crop, "precision": cfg.precision, "version": PIPELINE_VERSION}

    # -- features: every rank takes part in extraction --------------------------------
    out: dict[str, DatasetResult] = {}
    jobs = []
    roots = {ds.name: _data_root(ds, cfg, reporter) for ds in datasets}
    for ds in datasets:
        splits = {s: ds.load(roots[ds.name], s, split_seed=cfg.split_seed, split_dir=cfg.split_dir)
                  for s in ("trainval", "test")}
        _check_targets(ds, splits, cfg.folds)
        probe = probe_config(cfg, ds, len(members))
        key = {
            "protocol": PROTOCOL_VERSION,
            "command": "downstream",
            "model": identity,
            "dataset": ds.name,
            "trainval": splits["trainval"].identity(),
            "test": splits["test"].identity(),
            "pipeline": pipeline,
            "probe": probe,
        }
        path = results.result_path(cfg.cache_dir, "downstream", cfg.model, f"{ds.name}-{cfg.probe}", key)
        record = None if cfg.force else results.find_finished(path, key)
        record = distributed.broadcast_object(world, record)
        if record is not None:
            out[ds.name] = _from_record(record, path, cached=True)
            continue
        t0 = time.perf_counter()
        feats, feat_info = {}, []
        for m in members:
            info = {"spec": m.spec, "dim": int(m.identity["dim"])}
            for name, split in splits.items():
                x, hit, fpath = _member_features(m, split, pipeline, cfg, device, workers, world, reporter)
                feats.setdefault(name, []).append(x)
                info[name] = {"cached": hit, "path": str(fpath)}
            feat_info.append(info)
        jobs.append((ds, splits, key, path, probe, feats, feat_info, time.perf_counter() - t0))

    # -- probes: rank 0 alone, after the last collective ---------------------------------
    if not world.is_main:
        return []
    for ds, splits, key, path, probe, feats, feat_info, t_feat in jobs:
        x_tv = fuse_features(feats["trainval"], cfg.fuse)
        x_te = fuse_features(feats["test"], cfg.fuse)
        t0 = time.perf_counter()
        metrics = _probe(cfg, ds, probe, splits, x_tv, x_te, device, reporter)
        seconds = {"features": round(t_feat, 3), "probe": round(time.perf_counter() - t0, 3)}
        record = {
            "key": key,
            "command": "downstream",
            "created": results.now(),
            "config": cfg.public(),
            "model": identity,
            "dataset": {
                "name": ds.name,
                "root": str(ds.root(roots[ds.name])),
                "task": ds.task,
                "trainval": splits["trainval"].identity(),
                "test": splits["test"].identity(),
            },
            "task": ds.name,
            "probe": probe,
            "metrics": metrics,
            "features": {"dim": int(x_tv.shape[1]), "fuse": cfg.fuse if len(members) > 1 else None,
                         "members": feat_info, "pipeline": pipeline},
            "environment": results.environment(str(device), world.world_size),
            "seconds": seconds,
        }
        results.write_result(path, record)
        out[ds.name] = _from_record(record, path, cached=False)
    return [out[d.name] for d in datasets if d.name in out]


def _data_root(ds: DownstreamDataset, cfg: DownstreamConfig, reporter: Reporter) -> Path:
    """The data root, or ``<cache>/demo`` for the built-in datasets (painted on first use)."""
    from sslinv.data import demo_tasks

    return demo_tasks.data_root(cfg.cache_dir, reporter) if ds.builtin else cfg.data_root


def _check_targets(ds: DownstreamDataset, splits: dict[str, Split], folds: int) -> None:
    n = len(splits["trainval"])
    if n < folds or len(splits["test"]) == 0:
        raise DataNotFoundError(
            f"{ds.name}: {n} trainval and {len(splits['test'])} test images; the probe needs "
            f"at least {folds} trainval images (--folds) and one test image."
        )
    if ds.task == "classification":
        top = max(int(splits["trainval"].targets.max()), int(splits["test"].targets.max()))
        if top >= ds.outputs or min(int(s.targets.min()) for s in splits.values()) < 0:
            raise DataNotFoundError(
                f"{ds.name}: class labels must lie in 0..{ds.outputs - 1}, found {top}. "
                "Check the split files or the dataset folder."
            )


def _member_features(m: _Member, split: Split, pipeline, cfg, device, workers, world, reporter):
    key = featcache.features_key(m.identity, split.identity(), pipeline)

    def compute() -> torch.Tensor:
        if m.extractor is None:
            m.extractor = Extractor(m.model, device, cfg.precision)
        mine = len(distributed.shard(len(split), world))
        progress = reporter.task(f"{split.dataset} {split.split}: features of {m.spec}", mine)
        return featcache.extract(m.extractor, SplitImages(split, cfg.resize, cfg.crop),
                                 batch_size=cfg.batch_size, workers=workers, world=world, progress=progress)

    feats, hit = featcache.cached_features(cfg.cache_dir, key, compute, world)
    from sslinv import cache, paths

    fpath = paths.features_dir(cfg.cache_dir, m.identity.get("spec", "model")) / f"{cache.key_hash(key)}.pt"
    return feats, hit, fpath


def _probe(cfg, ds: DownstreamDataset, probe: dict[str, Any], splits, x_tv, x_te, device, reporter) -> dict[str, Any]:
    from sslinv.probes import linear

    y_tv = splits["trainval"].view_targets(cfg.resize, cfg.crop)
    y_te = splits["test"].view_targets(cfg.resize, cfg.crop)
    if probe["kind"] == "knn":
        from sslinv.probes.knn import knn_predict

        pred = knn_predict(x_tv, y_tv, x_te, ds.outputs, cfg.knn_k, cfg.knn_temperature, device=device)
        score = linear.CLASSIFICATION_METRICS[ds.metric](y_te, pred)
        return {"metric": ds.metric, "score": score, "wd": None, "cv": None}
    wds = linear.wd_grid(probe["wd_shift"])
    folds = linear.kfold_splits(len(y_tv), cfg.folds, cfg.seed)
    if ds.task == "classification":
        progress = reporter.task(f"{ds.name}: logistic regression, {len(wds)} weight decays x {cfg.folds} folds", len(wds))
        res = linear.logistic_cv(x_tv, y_tv, x_te, y_te, ds.outputs, wds, folds, ds.metric,
                                 max_iter=cfg.max_iter, tol=cfg.tol, device=device, progress=progress)
        if res.info["not_converged"]:
            reporter.warn(f"{ds.name}: {res.info['not_converged']} of {len(wds) * (cfg.folds + 1)} logistic "
                          f"problems stopped at --max-iter {cfg.max_iter} before --tol {cfg.tol:g}; "
                          "a larger --max-iter solves them further (the count is in the result file).")
    else:
        progress = reporter.task(f"{ds.name}: ridge regression, {len(wds)} weight decays x {cfg.folds} folds", cfg.folds + 1)
        res = linear.ridge_cv(x_tv, y_tv, x_te, y_te, wds, folds, device=device, progress=progress)
    return res.summary()


def _from_record(record: dict[str, Any], path: Path, cached: bool) -> DatasetResult:
    m = record["metrics"]
    return DatasetResult(
        dataset=record["task"],
        metric=m["metric"],
        score=m["score"],
        probe=record["probe"]["kind"],
        wd=m.get("wd"),
        cv=None if m.get("cv") is None else {"wd": m["cv"]["wd"], "score": m["cv"]["score"]},
        n_trainval=record["dataset"]["trainval"]["num_images"],
        n_test=record["dataset"]["test"]["num_images"],
        result_file=str(path),
        cached=cached,
        record=record,
    )
