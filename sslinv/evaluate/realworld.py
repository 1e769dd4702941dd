"""`sslinv realworld`: invariance to real changes of viewpoint, light and blur (protocol 3).

Contents of ``run``:
1. world and device; 2. the datasets (indexed once; fail before the model loads);
3. model; 4. finished results are reused; 5. statistics pool and its cached statistics
(only when something is left to compute); 6. per dataset: the views of each group in
one pass of the data loader, whitened beside the model (on the GPU when there is one),
and one Gram matrix per group for both metrics;
groups are sharded across torchrun ranks and gathered by index; 7. one result file per
dataset.

Metrics per group with whitened views ``z_1..z_k`` (``z = (mu - f) W``, ``W W^T = P``):

- similarity: mean cosine similarity over ordered pairs ``i != j``;
- distance: mean Euclidean distance ``||z_i - z_j||`` over pairs ``i < j`` (the
  Mahalanobis distance of the features).

The reference averages the cosine over all ``k x k`` pairs, including the ``k`` ones of
a view with itself (cosine 1), so its number is ``(1 + (k - 1) S) / k``; both are in the
result (``similarity`` and ``similarity_reference``, averaged over groups the same way).

Statistics: the pool statistics of protocol section 1 for the same model, with the
pool's own clean pipeline (``stats_resize``/``stats_crop``, default 256/224). That is what
the reference does: its covariance is computed once per model by the synthetic script
(resize 256, crop 224) and reused here, while the real-world images themselves go
through resize 224 / crop 224. The result file records both pipelines. With the
defaults the statistics are shared with ``sslinv synthetic`` runs of the same model and
pool (same cache entry).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslinv import distributed
from sslinv.data import demo_tasks
from sslinv.data.pool import resolve_stats_pool
from sslinv.data.realworld import NAMES, GroupedImages, by_count
from sslinv.data.realworld import get as get_dataset
from sslinv.errors import DataNotFoundError
from sslinv.evaluate.common import Result, Runtime, Task, record, reuse_or_compute, start
from sslinv.evaluate.features import CleanImages, Extractor, collate_clean
from sslinv.evaluate.stats import Whitening, pool_whitening
from sslinv.reporting import Reporter
from sslinv.runtime import compute_mode, image_batch_bytes, make_loader

#: Bumped when a change alters the numbers, so old result files are not reused.
PROTOCOL_VERSION = 1

CONVENTION = (
    "similarity: mean cosine of whitened views over ordered pairs i != j of a group, "
    "averaged over groups; similarity_reference = mean over groups of (1 + (k - 1) * "
    "similarity) / k, the reference's number (it includes the k pairs i == j); distance: "
    "mean Euclidean distance of whitened views (= Mahalanobis distance) over pairs i < j, "
    "averaged over groups."
)


@dataclass
class RealWorldConfig:
    runtime: Runtime
    datasets: list[str]  # registry names, or ["all"]
    stats_data: str | None = None  # None: ImageNet val under the data root; "demo"; or a path
    resize: int = 224
    crop: int = 224
    stats_resize: int = 256
    stats_crop: int = 224


@dataclass
class DatasetResult(Result):
    dataset: str
    similarity: float | None
    distance: float | None
    similarity_reference: float | None
    num_groups: int
    num_images: int
    k: int

    @staticmethod
    def read(record: dict[str, Any]) -> dict[str, Any]:
        m = record["metrics"]
        return {"dataset": record["task"], "similarity": m["similarity"], "distance": m["distance"],
                "similarity_reference": m["similarity_reference"], "num_groups": m["num_groups"],
                "num_images": m["num_images"], "k": m["expected_views"]}

    def summary(self) -> dict[str, Any]:
        m = self.record.get("metrics", {})
        return {
            "dataset": self.dataset,
            "similarity": self.similarity,
            "distance": self.distance,
            "similarity_reference": self.similarity_reference,
            "num_groups": self.num_groups,
            "num_images": self.num_images,
            "skipped_images": m.get("skipped_images", []),
            "k": self.k,
            "group_sizes": m.get("group_sizes"),
            "convention": CONVENTION,
            "result_file": self.result_file,
            "cached": self.cached,
        }


# ------------------------------------------------------------------------------ metrics


def group_metrics(z: torch.Tensor, eps: float = 1e-12) -> tuple[float, float]:
    """``(similarity, distance)`` of one group of whitened views ``z`` (k x d, k >= 2).

    One Gram matrix each: cosines from the row-normalised views (mean over i != j),
    distances from the centred views (``|a|^2 + |b|^2 - 2ab``; centring leaves distances
    unchanged and keeps the cancellation small), mean over i < j.
    """
    k = z.shape[0]
    if k < 2:
        raise ValueError("a group needs at least two views")
    z = z.to(torch.float64)
    u = z / torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min(eps)
    cos = u @ u.T
    similarity = (cos.sum() - cos.diagonal().sum()) / (k * (k - 1))
    c = z - z.mean(0)
    gram = c @ c.T
    sq = gram.diagonal()
    d2 = (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_min(0.0)
    iu = torch.triu_indices(k, k, offset=1, device=z.device)
    distance = d2[iu[0], iu[1]].sqrt().mean()
    return float(similarity), float(distance)


def reference_similarity(similarity: float, k: int) -> float:
    """The reference's group similarity (mean over all k x k pairs, i == j included)."""
    return (1.0 + (k - 1) * similarity) / k


# -------------------------------------------------------------------------------- data


def expand_datasets(names: list[str]) -> tuple[list[str], bool]:
    """``all`` -> every name; duplicates dropped, order kept. Returns (names, any 'all')."""
    out: list[str] = []
    wants_all = False
    for name in names:
        if name.lower() == "all":
            wants_all = True
            todo = list(NAMES)
        else:
            todo = [get_dataset(name).name]  # canonical spelling; did-you-mean on a typo
        out += [n for n in todo if n not in out]
    return out, wants_all


def load_datasets(cfg: RealWorldConfig, reporter: Reporter) -> tuple[list[GroupedImages], list[str]]:
    """Index the requested datasets. With ``all``, missing ones are skipped (and named);
    a dataset asked for by name must be there."""
    rt = cfg.runtime
    names, wants_all = expand_datasets(cfg.datasets)
    explicit = {get_dataset(n).name for n in cfg.datasets if n.lower() != "all"}
    loaded, missing = [], []
    unreadable: set[Path] = set()
    for name in names:
        entry = get_dataset(name)
        try:
            if entry.builtin:
                loaded.append(entry.load(demo_tasks.data_root(rt.cache_dir, reporter)))
                continue
            # A dataset asked for by name may also be the data root itself.
            loaded.append(entry.load(rt.data_root, accept_root_itself=name in explicit))
        except DataNotFoundError as exc:
            if name in explicit or not wants_all:
                raise
            folder = get_dataset(name).root(rt.data_root)
            if folder.exists() and folder not in unreadable:  # there, but not readable: say why, once
                unreadable.add(folder)
                reporter.warn(f"--dataset all: {name} is skipped: {exc}")
            missing.append(name)
    if not loaded:
        folders = sorted({str(get_dataset(n).root(rt.data_root)) for n in missing})
        raise DataNotFoundError(
            f"None of the real-world datasets is under {rt.data_root} (looked for "
            f"{', '.join(folders)}). Run: sslinv fetch-data NAME for one of "
            f"{', '.join(sorted({get_dataset(n).dirname for n in missing}))}, or point "
            "--data-root at the folder that holds them."
        )
    if missing:
        reporter.info(f"Not present, skipped: {', '.join(missing)}.")
    return loaded, missing


# --------------------------------------------------------------------------------- run


def run(cfg: RealWorldConfig, reporter: Reporter | None = None) -> list[DatasetResult]:
    from sslinv.models import load_model

    reporter = reporter or Reporter()
    rt = cfg.runtime

    # -- world and device ----------------------------------------------------------
    session = start(rt)
    world = session.world

    # -- datasets (before the model: a missing folder fails at once) -------------------
    datasets, missing = load_datasets(cfg, reporter)

    # -- model ---------------------------------------------------------------------
    model, identity = load_model(rt.model, rt.cache_dir, layer=rt.layer, fuse=rt.fuse, arch=rt.arch)
    extractor = Extractor(model, session.device, rt.precision, name=identity["spec"])

    pool = resolve_stats_pool(cfg.stats_data, rt.cache_dir, rt.data_root, world, reporter)
    base = {
        "protocol": PROTOCOL_VERSION,
        "command": "realworld",
        "model": identity,
        "resize": cfg.resize,
        "crop": cfg.crop,
        "statistics": {"pool": pool.identity(), "resize": cfg.stats_resize, "crop": cfg.stats_crop},
        **compute_mode(session.device, rt.precision),  # device kind and precision
        "skip_bad": rt.skip_bad,
        "whitening": "pseudo-inverse",  # directions below the cutoff dropped, not floored
    }
    tasks = [Task(ds.name, {**base, "dataset": ds.identity()}, ds) for ds in datasets]

    def compute(todo: list[Task]):
        # -- statistics pool (only when something is left to compute) ----------------------
        whitening, stats_info = pool_whitening(extractor, identity, pool, resize=cfg.stats_resize,
                                               crop=cfg.stats_crop, rt=rt, session=session, reporter=reporter,
                                               option="--stats-data")
        whitening = whitening.to(session.device)  # metrics are computed beside the model
        stats_record = {
            **stats_info,
            "pool": pool.identity(),
            "resize": cfg.stats_resize,
            "crop": cfg.stats_crop,
            "regularisation": whitening.regularisation,
        }

        # -- metrics per dataset ---------------------------------------------------------
        for task in todo:
            ds = task.item
            t0 = time.perf_counter()
            _warn_group_sizes(ds, reporter)
            per_group, skipped = _dataset_metrics(extractor, ds, whitening, cfg, session, reporter)
            if not any(_measured(s, d) for _, s, d in per_group):  # every rank has per_group: all stop alike
                raise DataNotFoundError(
                    f"{ds.name}: no group of {len(ds.groups)} has two or more readable views, so there is no "
                    "invariance to measure and nothing is cached. Check the dataset folder."
                )
            seconds = time.perf_counter() - t0
            if world.is_main:
                yield task, _make_record(cfg, task.key, ds, per_group, skipped, stats_record, session, seconds)
        distributed.barrier(world)

    # -- finished results are reused, the others computed --------------------------------
    return reuse_or_compute(rt, session, "realworld", tasks, DatasetResult, compute)


def _warn_group_sizes(ds: GroupedImages, reporter: Reporter) -> None:
    sizes = by_count(ds.groups)
    if set(sizes) != {ds.expected_views}:
        reporter.warn(
            f"{ds.name}: group sizes {sizes} (views: groups) differ from the full dataset's "
            f"{ds.expected_views} views per group; numbers are comparable with the paper only "
            "on the complete dataset."
        )


def _dataset_metrics(extractor: Extractor, ds: GroupedImages, whitening: Whitening, cfg, session, reporter):
    """Per group ``(views used, similarity, distance)`` (None for < 2 views), on every rank,
    and the unreadable files skipped. Views are whitened and compared on the model's
    device; an unreadable image (without ``--skip-bad``) or NaN/Inf features stop every
    rank before any metric is gathered (``distributed.run_then_gather``)."""
    world, rt = session.world, cfg.runtime
    mine = list(distributed.shard(len(ds.groups), world))
    owner: list[int] = []
    paths: list[Path] = []
    for gi in mine:
        for f in ds.groups[gi].files:
            owner.append(gi)
            paths.append(ds.path(f))
    progress = reporter.task(f"{ds.name} ({len(ds.groups)} groups)", len(paths))
    loader = make_loader(CleanImages(paths, cfg.resize, cfg.crop, rt.skip_bad), session.workers, rt.batch_size,
                         collate_clean, device=session.device, batch_bytes=image_batch_bytes(rt.batch_size, cfg.crop))

    def local_pass():
        remaining = {gi: len(ds.groups[gi]) for gi in mine}
        feats: dict[int, list[torch.Tensor]] = {gi: [] for gi in mine}
        local: list[tuple[int, int, float | None, float | None]] = []
        skipped: list[str] = []
        watch = extractor.check()
        for idx, views, bad in loader:
            touched = set()
            for j in bad:
                skipped.append(str(paths[j].relative_to(ds.root)))
                remaining[owner[j]] -= 1
                touched.add(owner[j])
            if views is not None:
                f = extractor.forward(views)
                watch.add(f, lambda idx=idx: [paths[j] for j in idx.tolist()])
                z = whitening.whiten(f)
                for j, row in zip(idx.tolist(), z):
                    feats[owner[j]].append(row)
                    remaining[owner[j]] -= 1
                    touched.add(owner[j])
            for gi in sorted(touched):
                if remaining[gi] == 0:  # the group is complete: metrics, then free its views
                    views_g = feats.pop(gi)
                    if len(views_g) >= 2:
                        s, d = group_metrics(torch.stack(views_g))
                        local.append((gi, len(views_g), s, d))
                    else:
                        local.append((gi, len(views_g), None, None))
            progress(len(idx) + len(bad))
        watch.done()  # before any metric leaves this rank
        return local, skipped

    per_group: list[tuple[int, float | None, float | None]] = [(0, None, None)] * len(ds.groups)
    bad_all: list[str] = []
    _, gathered = distributed.run_then_gather(world, local_pass)
    for part, bad_part in gathered:
        for gi, k, s, d in part:
            per_group[gi] = (k, s, d)
        bad_all += bad_part
    if bad_all:
        reporter.warn(f"{ds.name}: skipped {len(bad_all)} unreadable image(s) (--skip-bad).")
    return per_group, sorted(bad_all)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _measured(s: float | None, d: float | None) -> bool:
    """A group's similarity and distance were both computed and finite."""
    return s is not None and d is not None and math.isfinite(s) and math.isfinite(d)


def _make_record(cfg, key, ds: GroupedImages, per_group, skipped, stats_record, session, seconds):
    groups, sims, dists, refs, excluded = [], [], [], [], []
    for g, (k, s, d) in zip(ds.groups, per_group):
        if not _measured(s, d):
            excluded.append(g.name)
            groups.append({"group": g.name, "k": k, "similarity": None, "distance": None, "similarity_reference": None})
            continue
        ref = reference_similarity(s, k)
        sims.append(s)
        dists.append(d)
        refs.append(ref)
        groups.append({"group": g.name, "k": k, "similarity": s, "distance": d, "similarity_reference": ref})
    return record(
        cfg, "realworld", key, session, model=key["model"], dataset=key["dataset"], task=ds.name,
        pipeline={"resize": cfg.resize, "crop": cfg.crop},
        statistics=stats_record,
        metrics={
            "similarity": _mean(sims),
            "distance": _mean(dists),
            "similarity_reference": _mean(refs),
            "num_groups": len(sims),
            "num_images": int(sum(k for k, s, _ in per_group if s is not None)),
            "expected_views": ds.expected_views,
            "group_sizes": {str(k): v for k, v in by_count(ds.groups).items()},
            "excluded_groups": excluded,
            "skipped_images": skipped,
            "convention": CONVENTION,
            "groups": groups,
        },
        seconds=round(seconds, 3),
    )
