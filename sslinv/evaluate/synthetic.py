"""`sslinv synthetic`: invariance to the 18 synthetic transformations (protocol 2).

Contents of ``run``:
1. world and device; 2. model; 3. statistics pool and its cached statistics;
4. the sampled images and their clean features; 5. per transformation family: views in
bounded chunks (memory independent of k), distances and similarities against the clean
view, gathered by index across ranks; 6. curves, summaries and one result file each.

Views are made by PIL in the loader workers (``render="pil"``, the paper's path) or on
the model's device from decoded images (``render="device"``, ``device_views.py``); both
hand over batches of the same shapes, so steps 4 and 5 read the same either way. The
statistics always use PIL's clean views (their cache is shared by the two modes).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sslinv import distributed
from sslinv.data.pool import resolve_pool
from sslinv.errors import UsageError
from sslinv.evaluate.common import Result, Runtime, Task, record, reuse_or_compute, start
from sslinv.evaluate.device_views import RENDERS, DeviceViews
from sslinv.evaluate.features import CleanImages, CleanView, Extractor, FamilyView, ViewChunks, collate_clean
from sslinv.evaluate.stats import Whitening, pair_metrics, pool_whitening
from sslinv.numerics import finite_or_none as _finite_or_none  # JSON has no NaN: null
from sslinv.reporting import Reporter
from sslinv.runtime import compute_mode, image_batch_bytes, make_loader, preload_for_workers

#: Bumped when a change alters the numbers, so old result files are not reused.
PROTOCOL_VERSION = 1


@dataclass
class SyntheticConfig:
    runtime: Runtime
    transforms: list[str]
    data: str | None = None
    k: int | None = None
    num_images: int | None = 1000  # None: every pool image once
    seed: int = 0
    resize: int = 256
    crop: int = 224
    render: str = "pil"  # "pil": views by PIL in the workers (the paper's); "device": on the model's device


@dataclass
class TransformResult(Result):
    transform: str
    k: int
    distance: float | None
    similarity: float | None
    values: list
    identity: int | None
    curves: dict[str, list[float]]
    num_images: int

    @staticmethod
    def read(record: dict[str, Any]) -> dict[str, Any]:
        m, t = record["metrics"], record["transform"]
        return {"transform": t["name"], "k": t["k"], "distance": m["distance"], "similarity": m["similarity"],
                "values": t["values"], "identity": t["identity_index"], "curves": m["curves"],
                "num_images": m["num_images"]}

    def summary(self) -> dict[str, Any]:
        return {
            "transform": self.transform,
            "distance": self.distance,
            "similarity": self.similarity,
            "k": self.k,
            "identity_index": self.identity,
            "num_images": self.num_images,
            "skipped_images": self.record.get("metrics", {}).get("skipped_images", []),
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
    rt = cfg.runtime
    if cfg.render not in RENDERS:
        raise UsageError(f"Unknown render mode {cfg.render!r}. Use one of: {', '.join(RENDERS)}.")

    # -- world and device ----------------------------------------------------------
    session = start(rt)
    world = session.world
    families = [get_family(name) for name in cfg.transforms]  # fail fast on a typo
    if cfg.render == "pil":  # what the families' views import, for the workers to share
        preload_for_workers(sorted({m for fam in families for m in fam.imports}))

    # -- model ---------------------------------------------------------------------
    model, identity = load_model(rt.model, rt.cache_dir, layer=rt.layer, fuse=rt.fuse, arch=rt.arch)
    extractor = Extractor(model, session.device, rt.precision, name=identity["spec"])

    # -- statistics pool -----------------------------------------------------------
    pool = resolve_pool(cfg.data, rt.cache_dir, rt.data_root, world, reporter)
    ids = sample_images(len(pool), cfg.num_images, cfg.seed)
    # A statistics pass made now embeds the sampled images' clean views too: their
    # features are kept, not computed twice. (The device renderer's clean view is PIL's,
    # byte for byte: tests/test_device_render.py.)
    kept: dict[int, torch.Tensor] = {}
    whitening, stats_info = pool_whitening(extractor, identity, pool, resize=cfg.resize, crop=cfg.crop,
                                           rt=rt, session=session, reporter=reporter, keep=ids.tolist(), kept=kept)
    whitening = whitening.to(session.device)  # metrics are computed beside the model
    base = {
        "protocol": PROTOCOL_VERSION,
        "command": "synthetic",
        "model": identity,
        "pool": pool.identity(),
        "num_images": int(len(ids)),
        "seed": cfg.seed,
        "resize": cfg.resize,
        "crop": cfg.crop,
        # Only device rendering is marked, so the keys (and caches) of PIL results stay as they were.
        **({"render": cfg.render} if cfg.render != "pil" else {}),
        **compute_mode(session.device, rt.precision),  # device kind and precision
        "skip_bad": rt.skip_bad,
        "statistics_rtol": whitening.regularisation["rtol"],
        "whitening": "pseudo-inverse",  # directions below the cutoff dropped, not floored
    }
    tasks = []
    for fam in families:
        grid = fam.grid(cfg.k, cfg.resize, cfg.crop)
        tasks.append(Task(fam.name, {**base, "transform": fam.name, "k": grid.k}, (fam, grid)))

    def compute(todo: list[Task]):
        # -- clean features of the sampled images (this rank's share) ---------------
        # A row goes to the rank that embedded its image in the statistics pass (pool
        # indices are sharded the same way), so kept features are found where needed.
        rows_mine = [r for r in range(len(ids)) if int(ids[r]) % world.world_size == world.rank]
        # An unreadable image (without --skip-bad) or NaN features on one rank stop every
        # rank at the gather that follows the pass (here and per family).
        (z_clean, bad_rows), parts = distributed.run_then_gather(
            world,
            lambda: _clean_features(extractor, pool, ids, rows_mine, whitening, cfg, session.workers, kept,
                                    reporter.task(f"clean views of {len(ids)} images", len(rows_mine))),
            share=lambda value: sorted(value[1]),
        )
        good_rows = [r for r in rows_mine if r not in bad_rows]
        bad_all = sorted({r for part in parts for r in part})
        if bad_all:
            reporter.warn(f"Skipped {len(bad_all)} unreadable sampled image(s) (--skip-bad).")

        # -- per family: views, distances and similarities ------------------------------
        for task in todo:
            fam, grid = task.item
            t0 = time.perf_counter()
            D, S = _family_metrics(
                extractor, pool, ids, good_rows, z_clean, whitening, fam, grid, cfg, session.workers, world,
                reporter.task(f"{fam.name} (k={grid.k})", len(good_rows) * grid.k),
            )
            seconds = time.perf_counter() - t0
            if world.is_main:
                yield task, _make_record(cfg, task.key, grid, fam, D, S, stats_info, whitening, pool,
                                         [pool.files[ids[r]] for r in bad_all], session, seconds)
        distributed.barrier(world)

    # -- finished results are reused, the others computed --------------------------------
    return reuse_or_compute(rt, session, "synthetic", tasks, TransformResult, compute)


def _clean_features(extractor, pool, ids, rows, whitening: Whitening, cfg, workers, kept, progress):
    """Whitened clean features of this rank's rows, as a dict row -> z (float64, on the
    device); ``kept`` holds raw features of some of their images (pool index -> feature),
    which are used as they are."""
    z: dict[int, torch.Tensor] = {}
    for r in rows:
        if (f := kept.get(int(ids[r]))) is not None:
            z[r] = whitening.whiten(f.unsqueeze(0))[0]
    progress(len(z))
    rows = [r for r in rows if r not in z]
    if not rows:  # all kept by the statistics pass: no loader (its workers) to start
        return z, set()
    files = [pool.path(int(ids[r])) for r in rows]
    if cfg.render == "device":
        batches = _device_views(cfg, workers, extractor.device).clean_batches(files)
    else:
        batches = make_loader(CleanImages(files, cfg.resize, cfg.crop, cfg.runtime.skip_bad), workers,
                              cfg.runtime.batch_size, collate_clean, device=extractor.device,
                              batch_bytes=image_batch_bytes(cfg.runtime.batch_size, cfg.crop))
    bad: set[int] = set()
    watch = extractor.check()
    for idx, views, bad_j in batches:
        bad.update(rows[j] for j in bad_j)
        if views is not None:
            feats = extractor.forward(views)
            watch.add(feats, lambda idx=idx: [files[j] for j in idx.tolist()])
            for j, zrow in zip(idx.tolist(), whitening.whiten(feats)):
                z[rows[j]] = zrow
        progress(len(idx) + len(bad_j))
    watch.done()
    return z, bad


def _family_metrics(extractor, pool, ids, rows, z_clean, whitening, fam, grid, cfg, workers, world, progress):
    """(num_images x k) distance and similarity matrices (NaN where skipped), on every rank
    (an error of one rank's pass is raised on every rank: ``distributed.run_then_gather``).

    A view equal to its clean view byte for byte (flagged by the renderer for a family's
    identity element, e.g. rotation by 0) takes the clean features: distance 0,
    similarity 1, with no forward pass.
    """
    if cfg.render == "device":
        batches = _device_views(cfg, workers, extractor.device).family_batches(
            [pool.path(int(ids[r])) for r in rows], rows, [int(ids[r]) for r in rows], fam.name, grid.params, cfg.seed,
            grid.identity)
    else:
        tasks = [(r, p) for r in rows for p in range(grid.k)]
        render = FamilyView(fam, grid.params, cfg.resize, cfg.crop)
        dataset = ViewChunks(pool, [int(i) for i in ids], tasks, render, cfg.runtime.batch_size, cfg.seed,
                             identity=grid.identity, clean=CleanView(cfg.resize, cfg.crop))
        batches = make_loader(dataset, workers, None, device=extractor.device,
                              batch_bytes=image_batch_bytes(cfg.runtime.batch_size, cfg.crop))
    n, k = len(ids), grid.k

    def local_pass():
        D_local, S_local, done = [], [], []
        watch = extractor.check()
        for row_t, param_t, views, same in batches:
            za = torch.stack([z_clean[r] for r in row_t.tolist()])
            todo = ~same
            if bool(todo.all()):
                feats, files = extractor.forward(views), row_t
            else:
                feats, files = extractor.forward(views[todo]), row_t[todo]
            watch.add(feats, lambda rows=files: [f"{pool.files[ids[r]]} ({fam.name} view)" for r in rows.tolist()])
            zb = whitening.whiten(feats)
            if not bool(todo.all()):
                zb_all = za.clone()
                zb_all[todo.to(za.device)] = zb
                zb = zb_all
            dist, sim = pair_metrics(za, zb)
            done.append(row_t * k + param_t)
            D_local.append(dist)
            S_local.append(sim)
            progress(len(row_t))
        watch.done()  # before any number leaves this rank
        return (
            torch.cat(done) if done else torch.empty(0, dtype=torch.long),
            torch.cat(D_local).cpu() if D_local else torch.empty(0, dtype=torch.float64),
            torch.cat(S_local).cpu() if S_local else torch.empty(0, dtype=torch.float64),
        )

    _, parts = distributed.run_then_gather(world, local_pass)
    D = torch.full((n * k,), math.nan, dtype=torch.float64)
    S = torch.full((n * k,), math.nan, dtype=torch.float64)
    for flat, dist, sim in parts:
        D[flat] = dist
        S[flat] = sim
    return D.view(n, k).numpy(), S.view(n, k).numpy()


def _device_views(cfg: SyntheticConfig, workers: int, device) -> DeviceViews:
    return DeviceViews(cfg.resize, cfg.crop, cfg.runtime.batch_size, workers, device, cfg.runtime.skip_bad)


def _nanmean(a: np.ndarray, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanmean(a, axis=axis)


def _make_record(cfg, key, grid, fam, D, S, stats_info, whitening, pool, skipped, session, seconds):
    curve_d = _nanmean(D, axis=0)
    curve_s = _nanmean(S, axis=0)
    valid = int((~np.isnan(D).all(axis=1)).sum())
    return record(
        cfg, "synthetic", key, session, model=key["model"], dataset=pool.identity(), task=fam.name,
        transform={
            "name": fam.name,
            "kind": fam.kind,
            "k": grid.k,
            "identity_index": grid.identity,
            "values": grid.values,
            "params": grid.params,
        },
        statistics={**stats_info, "regularisation": whitening.regularisation},
        metrics={
            "distance": _finite_or_none(_nanmean(curve_d)),
            "similarity": _finite_or_none(_nanmean(curve_s)),
            "curves": {
                "distance": [_finite_or_none(x) for x in curve_d],
                "similarity": [_finite_or_none(x) for x in curve_s],
            },
            "num_images": valid,
            "skipped_images": skipped,
        },
        seconds=round(seconds, 3),
    )
