"""`sslinv synthetic`: invariance to the 18 synthetic transformations (protocol 2).

Contents of ``run``:
1. world and device; 2. model; 3. statistics pool and its cached statistics;
4. the sampled images and their clean features; 5. per transformation family: views in
bounded chunks (memory independent of k), distances and similarities against the clean
view, gathered by index across ranks; 6. curves, summaries and one result file each.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslinv import distributed, results
from sslinv.data.pool import resolve_pool
from sslinv.evaluate.features import (
    CleanImages,
    Extractor,
    ViewChunks,
    collate_clean,
)
from sslinv.evaluate.stats import (
    Whitening,
    pair_metrics,
    pool_statistics,
    regularisation_warning,
    whitening_from_stats,
)
from sslinv.reporting import Reporter, lazy_task
from sslinv.runtime import default_workers, make_loader, resolve_device

#: Bumped when a change alters the numbers, so old result files are not reused.
PROTOCOL_VERSION = 1


@dataclass
class SyntheticConfig:
    model: str
    transforms: list[str]
    cache_dir: Path
    data_root: Path
    data: str | None = None
    k: int | None = None
    num_images: int | None = 1000  # None: every pool image once
    seed: int = 0
    resize: int = 256
    crop: int = 224
    layer: str = "backbone"
    fuse: str = "cat"
    batch_size: int = 64
    workers: int | None = None
    device: str | None = None
    precision: str = "fp32"
    skip_bad: bool = False
    force: bool = False

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d["cache_dir"], d["data_root"] = str(self.cache_dir), str(self.data_root)
        return d


@dataclass
class TransformResult:
    transform: str
    k: int
    distance: float
    similarity: float
    values: list
    identity: int | None
    curves: dict[str, list[float]]
    num_images: int
    result_file: str
    cached: bool
    record: dict[str, Any] = field(repr=False, default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "transform": self.transform,
            "distance": self.distance,
            "similarity": self.similarity,
            "k": self.k,
            "identity_index": self.identity,
            "num_images": self.num_images,
            "values": self.values,
            "curves": self.curves,
            "result_file": self.result_file,
            "cached": self.cached,
        }


def sample_images(n_pool: int, num_images: int | None, seed: int) -> np.ndarray:
    """``num_images`` distinct pool indices (seeded), or all of them, in ascending order."""
    if num_images is None or num_images >= n_pool:
        return np.arange(n_pool)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_pool, size=num_images, replace=False))


def run(cfg: SyntheticConfig, reporter: Reporter | None = None) -> list[TransformResult]:
    from sslinv.models import load_model
    from sslinv.transforms import get_family

    reporter = reporter or Reporter()
    world = distributed.world_from_env()

    # -- world and device ----------------------------------------------------------
    device = resolve_device(cfg.device, world)
    distributed.init(world, device.type)
    workers = default_workers(device) if cfg.workers is None else cfg.workers
    families = [get_family(name) for name in cfg.transforms]  # fail fast on a typo

    # -- model ---------------------------------------------------------------------
    model, identity = load_model(cfg.model, cfg.cache_dir, layer=cfg.layer, fuse=cfg.fuse)
    extractor = Extractor(model, device, cfg.precision)

    # -- statistics pool -----------------------------------------------------------
    pool = resolve_pool(cfg.data, cfg.cache_dir, cfg.data_root, world, reporter)
    stats, stats_info = pool_statistics(
        extractor, identity, pool,
        resize=cfg.resize, crop=cfg.crop, precision=cfg.precision, skip_bad=cfg.skip_bad,
        batch_size=cfg.batch_size, workers=workers, cache_root=cfg.cache_dir, world=world,
        progress=lazy_task(reporter, f"statistics over {len(pool)} images", -(-len(pool) // world.world_size)),
    )
    whitening = whitening_from_stats(stats.mean, stats.covariance(), stats.n)
    if (msg := regularisation_warning(whitening.regularisation)) is not None:
        reporter.warn(msg)
    whitening = whitening.to(device)  # metrics are computed beside the model

    ids = sample_images(len(pool), cfg.num_images, cfg.seed)
    base = {
        "protocol": PROTOCOL_VERSION,
        "command": "synthetic",
        "model": identity,
        "pool": pool.identity(),
        "num_images": int(len(ids)),
        "seed": cfg.seed,
        "resize": cfg.resize,
        "crop": cfg.crop,
        "precision": cfg.precision,
        "skip_bad": cfg.skip_bad,
        "statistics_rtol": whitening.regularisation["rtol"],
    }

    # -- finished results are reused -------------------------------------------------
    todo, out = [], {}
    for fam in families:
        grid = fam.grid(cfg.k, cfg.resize, cfg.crop)
        key = {**base, "transform": fam.name, "k": grid.k}
        path = results.result_path(cfg.cache_dir, "synthetic", cfg.model, fam.name, key)
        record = None if cfg.force else results.find_finished(path, key)
        record = distributed.broadcast_object(world, record)
        if record is not None:
            out[fam.name] = _from_record(record, path, cached=True)
        else:
            todo.append((fam, grid, key, path))

    if todo:
        # -- clean features of the sampled images (this rank's shard) ---------------
        rows_mine = list(distributed.shard(len(ids), world))
        z_clean, bad_rows = _clean_features(
            extractor, pool, ids, rows_mine, whitening, cfg, workers,
            reporter.task(f"clean views of {len(ids)} images", len(rows_mine)),
        )
        good_rows = [r for r in rows_mine if r not in bad_rows]
        bad_all = sorted({r for part in distributed.all_gather_objects(world, sorted(bad_rows)) for r in part})
        if bad_all:
            reporter.warn(f"Skipped {len(bad_all)} unreadable sampled image(s) (--skip-bad).")

        for fam, grid, key, path in todo:
            t0 = time.perf_counter()
            D, S = _family_metrics(
                extractor, pool, ids, good_rows, z_clean, whitening, fam, grid, cfg, workers, world,
                reporter.task(f"{fam.name} (k={grid.k})", len(good_rows) * grid.k),
            )
            seconds = time.perf_counter() - t0
            if world.is_main:
                record = _make_record(cfg, key, grid, fam, D, S, stats_info, whitening, pool,
                                      [pool.files[ids[r]] for r in bad_all], str(device), world, seconds)
                results.write_result(path, record)
                out[fam.name] = _from_record(record, path, cached=False)
    distributed.barrier(world)
    return [out[f.name] for f in families if f.name in out]


def _clean_features(extractor, pool, ids, rows, whitening: Whitening, cfg, workers, progress):
    """Whitened clean features of this rank's rows, as a dict row -> z (float64)."""
    dataset = CleanImages(pool, [int(ids[r]) for r in rows], cfg.resize, cfg.crop, cfg.skip_bad)
    loader = make_loader(dataset, workers, cfg.batch_size, collate_clean)
    z: dict[int, torch.Tensor] = {}
    bad: set[int] = set()
    for idx, views, bad_j in loader:
        bad.update(rows[j] for j in bad_j)
        if views is not None:
            zs = whitening.whiten(extractor(views, on_device=True))
            for j, zrow in zip(idx.tolist(), zs):
                z[rows[j]] = zrow
        progress(len(idx) + len(bad_j))
    return z, bad


def _family_metrics(extractor, pool, ids, rows, z_clean, whitening, fam, grid, cfg, workers, world, progress):
    """(num_images x k) distance and similarity matrices (NaN where skipped), on every rank."""
    tasks = [(r, p) for r in rows for p in range(grid.k)]
    resize, crop = cfg.resize, cfg.crop
    params = grid.params

    def render(img, p, seed):
        return fam.view(img, params[p], resize, crop, seed)

    dataset = ViewChunks(pool, [int(i) for i in ids], tasks, render, cfg.batch_size, cfg.seed)
    loader = make_loader(dataset, workers, None)
    n, k = len(ids), grid.k
    D_local, S_local, done = [], [], []
    for row_t, param_t, views in loader:
        zb = whitening.whiten(extractor(views, on_device=True))
        za = torch.stack([z_clean[r] for r in row_t.tolist()])
        dist, sim = pair_metrics(za, zb)
        done.append(row_t * k + param_t)
        D_local.append(dist.cpu())
        S_local.append(sim.cpu())
        progress(len(row_t))
    local = (
        torch.cat(done) if done else torch.empty(0, dtype=torch.long),
        torch.cat(D_local) if D_local else torch.empty(0, dtype=torch.float64),
        torch.cat(S_local) if S_local else torch.empty(0, dtype=torch.float64),
    )
    D = torch.full((n * k,), math.nan, dtype=torch.float64)
    S = torch.full((n * k,), math.nan, dtype=torch.float64)
    for flat, dist, sim in distributed.all_gather_objects(world, local):
        D[flat] = dist
        S[flat] = sim
    return D.view(n, k).numpy(), S.view(n, k).numpy()


def _nanmean(a: np.ndarray, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanmean(a, axis=axis)


def _make_record(cfg, key, grid, fam, D, S, stats_info, whitening, pool, skipped, device, world, seconds):
    curve_d = _nanmean(D, axis=0)
    curve_s = _nanmean(S, axis=0)
    valid = int((~np.isnan(D).all(axis=1)).sum())
    return {
        "key": key,
        "command": "synthetic",
        "created": results.now(),
        "config": cfg.public(),
        "model": key["model"],
        "dataset": pool.identity(),
        "task": fam.name,
        "transform": {
            "name": fam.name,
            "kind": fam.kind,
            "k": grid.k,
            "identity_index": grid.identity,
            "values": grid.values,
            "params": grid.params,
        },
        "statistics": {**stats_info, "regularisation": whitening.regularisation},
        "metrics": {
            "distance": _finite_or_none(_nanmean(curve_d)),
            "similarity": _finite_or_none(_nanmean(curve_s)),
            "curves": {
                "distance": [_finite_or_none(x) for x in curve_d],
                "similarity": [_finite_or_none(x) for x in curve_s],
            },
            "num_images": valid,
            "skipped_images": skipped,
        },
        "environment": results.environment(device, world.world_size),
        "seconds": round(seconds, 3),
    }


def _finite_or_none(x) -> float | None:
    """JSON has no NaN: a value with no valid image is written as null."""
    x = float(x)
    return x if math.isfinite(x) else None


def _from_record(record: dict[str, Any], path: Path, cached: bool) -> TransformResult:
    m, t = record["metrics"], record["transform"]
    return TransformResult(
        transform=t["name"],
        k=t["k"],
        distance=m["distance"],
        similarity=m["similarity"],
        values=t["values"],
        identity=t["identity_index"],
        curves=m["curves"],
        num_images=m["num_images"],
        result_file=str(path),
        cached=cached,
        record=record,
    )
