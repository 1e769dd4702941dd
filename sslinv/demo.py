"""`sslinv demo`: the whole study of the paper in minutes on a CPU, from built-in data.

Steps, each cached in the cache directory, so a rerun only reads results:

1. data: the demo pool of 1,024 painted images (statistics pool and synthetic views), a
   copy scaled to 80 px for pretraining (cheap augmentations), and the demo tasks
   (``sslinv.data.demo_tasks``);
2. pretraining: ``demo-default``, ``demo-ventral`` and ``demo-dorsal``, MoCo v2 with the
   paper's three augmentation presets, ResNet-18 at 64 px (``sslinv.pretrain``);
3. per model: the 18 synthetic invariances (``sslinv.evaluate.synthetic``), the
   real-world-style invariances on ``demo-viewpoint`` and ``demo-lighting``
   (``sslinv.evaluate.realworld``) and linear probes on ``demo-classes`` and
   ``demo-landmarks`` (``sslinv.evaluate.downstream``): the same code as the commands, on small
   images (64 px; the protocol's 256/224 pipeline scaled to 73/64);
4. the paper's central finding checked on the numbers: ventral more invariant than dorsal
   to spatial transformations, dorsal more invariant than ventral to colour ones;
5. the HTML report of the three models (``sslinv.report``), written into the cache.

Every result is an ordinary result file, so ``sslinv report`` lists the demo models too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sslinv.reporting import Reporter

PRESETS = ("default", "ventral", "dorsal")
REALWORLD = ("demo-viewpoint", "demo-lighting")
DOWNSTREAM = ("demo-classes", "demo-landmarks")
#: The colour transformations of the finding: what colour jitter and grey-scale change.
COLOUR = ("grayscale", "brightness", "contrast", "saturation", "hue")


def model_name(preset: str) -> str:
    return f"demo-{preset}"


@dataclass(frozen=True)
class Recipe:
    """The fixed scale of the demo: sized to finish in minutes on two CPU cores."""

    pool_images: int = 1024  # statistics pool, synthetic images and pretraining data
    train_side: int = 80  # shorter side of the pretraining copy of the pool
    image_size: int = 64  # pretraining crops, and the evaluations' crop
    eval_resize: int = 73  # 64 * 256 / 224: the protocol's resize-then-crop ratio at 64 px
    arch: str = "resnet18"
    batch_size: int = 64
    lr: float = 0.12  # for a batch of 256 (MoCo's convention); 0.03 at batch 64
    moco_k: int = 256
    moco_m: float = 0.99


DEFAULT_RECIPE = Recipe()


@dataclass
class DemoConfig:
    cache_dir: Path
    epochs: int = 6
    k: int = 8
    num_images: int = 64
    seed: int = 0
    device: str | None = None
    workers: int | None = None
    force: bool = False
    recipe: Recipe = field(default_factory=lambda: DEFAULT_RECIPE)

    def runtime(self, model: str):
        """The evaluations' runtime settings for one demo model (everything in the cache)."""
        from sslinv.evaluate.common import Runtime

        return Runtime(model=model, cache_dir=self.cache_dir, data_root=self.cache_dir, device=self.device,
                       workers=self.workers, force=self.force)


@dataclass
class DemoResult:
    models: dict[str, dict[str, Any]]
    invariances: list[dict[str, Any]]
    realworld: list[dict[str, Any]]
    downstream: list[dict[str, Any]]
    finding: dict[str, Any]
    settings: dict[str, Any]
    seconds: float
    cached: bool  # nothing was computed: every step was found finished
    steps: dict[str, float] = field(default_factory=dict)
    report: str = ""  # the HTML report of the demo models

    def summary(self) -> dict[str, Any]:
        return {"command": "demo", **asdict(self)}


class Stages:
    """How ``run`` reports: one ``sslinv.reporting.Reporter`` per stage (the CLI draws
    progress bars)."""

    def train(self, name: str) -> contextlib.AbstractContextManager[Reporter]:
        return contextlib.nullcontext(Reporter())

    def evaluate(self, title: str) -> contextlib.AbstractContextManager[Reporter]:
        return contextlib.nullcontext(Reporter())


# ------------------------------------------------------------------------------- run


def run(cfg: DemoConfig, stages: Stages | None = None) -> DemoResult:
    from sslinv.data import demo, demo_tasks
    from sslinv.results import config_dump

    stages = stages or Stages()
    t_start = time.perf_counter()
    steps: dict[str, float] = {}
    cached = True

    @contextlib.contextmanager
    def timed(step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        steps[step] = round(steps.get(step, 0.0) + time.perf_counter() - t0, 3)

    # -- 1. data ---------------------------------------------------------------------------
    with timed("data"), stages.evaluate("built-in data") as rep:
        n, side = cfg.recipe.pool_images, cfg.recipe.train_side
        pool = demo.ensure_demo_pool(
            cfg.cache_dir, n=n, progress=demo.progress_bar(rep, f"painting the demo pool ({n} images, first use)", n))
        train_pool = demo.ensure_scaled_pool(
            cfg.cache_dir, side, n=n, progress=demo.progress_bar(rep, f"scaling it to {side} px for pretraining (first use)", n))
        demo_tasks.data_root(cfg.cache_dir, rep)

    # -- 2. pretraining ------------------------------------------------------------------------
    models: dict[str, dict[str, Any]] = {}
    for preset in PRESETS:
        with timed("pretrain"), stages.train(model_name(preset)) as rep:
            res = _pretrain(cfg, preset, train_pool, rep)
        cached &= res.finished_before
        models[res.name] = {
            "preset": preset, "augment": res.augment, "arch": res.arch, "epochs": res.epochs,
            "checkpoint": res.checkpoint, "final": res.final,
        }

    # -- 3. evaluations ----------------------------------------------------------------------
    invariances, realworld, downstream = [], [], []
    for preset in PRESETS:
        name = model_name(preset)
        with timed("synthetic"), stages.evaluate(f"{name}: synthetic invariance") as rep:
            for r in _synthetic(cfg, name, pool, rep):
                cached &= r.cached
                invariances.append({"model": name, "transform": r.transform, "kind": _kind(r.transform),
                                    "similarity": r.similarity, "distance": r.distance, "k": r.k})
        with timed("realworld"), stages.evaluate(f"{name}: real-world-style invariance") as rep:
            for r in _realworld(cfg, name, pool, rep):
                cached &= r.cached
                realworld.append({"model": name, "dataset": r.dataset, "similarity": r.similarity,
                                  "distance": r.distance, "groups": r.num_groups})
        with timed("downstream"), stages.evaluate(f"{name}: downstream linear probes") as rep:
            for r in _downstream(cfg, name, rep):
                cached &= r.cached
                downstream.append({"model": name, "dataset": r.dataset, "metric": r.metric, "score": r.score})

    # -- 4. the report: one HTML page of the three models' results ----------------------------
    with timed("report"):
        report = _report(cfg, list(models))

    return DemoResult(
        report=str(report),
        models=models,
        invariances=invariances,
        realworld=realworld,
        downstream=downstream,
        finding=finding(invariances, cfg.epochs, cfg.recipe.pool_images),
        settings={**config_dump(cfg), "realworld": list(REALWORLD), "downstream": list(DOWNSTREAM)},
        seconds=round(time.perf_counter() - t_start, 3),
        cached=cached,
        steps=steps,
    )


def _report(cfg: DemoConfig, models: list[str]) -> Path:
    from sslinv import paths
    from sslinv.report.build import build, write_html

    return write_html(build([paths.results_dir(cfg.cache_dir)], models=models), paths.demo_report(cfg.cache_dir))


def _kind(transform: str) -> str:
    from sslinv.transforms import get_family

    return "colour" if transform in COLOUR else get_family(transform).kind


def _pretrain(cfg: DemoConfig, preset: str, train_pool: Path, reporter):
    from sslinv.errors import UsageError
    from sslinv.pretrain.augment import get_preset
    from sslinv.pretrain.config import PretrainConfig
    from sslinv.pretrain.loop import run as pretrain
    from sslinv.pretrain.state import TrainedLongerError

    r = cfg.recipe
    train_cfg = PretrainConfig(
        name=model_name(preset),
        augment=list(get_preset(preset).augment),
        arch=r.arch,
        cache_dir=cfg.cache_dir,
        data_root=cfg.cache_dir,
        preset=preset,
        data=str(train_pool),
        epochs=cfg.epochs,
        batch_size=r.batch_size,
        lr=r.lr,
        moco_k=r.moco_k,
        moco_m=r.moco_m,
        seed=cfg.seed,
        image_size=r.image_size,
        workers=cfg.workers,
        device=cfg.device,
        force=cfg.force,
    )
    try:
        return pretrain(train_cfg, reporter)
    except TrainedLongerError as exc:
        raise UsageError(
            f"The demo models in this cache were trained for {exc.trained} epochs, more than "
            f"--epochs {cfg.epochs}. Pass --epochs {exc.trained} (or more, to continue them), or "
            "--force to retrain them from scratch."
        ) from None


def _synthetic(cfg: DemoConfig, name: str, pool: Path, reporter):
    from sslinv.evaluate.synthetic import SyntheticConfig
    from sslinv.evaluate.synthetic import run as synthetic
    from sslinv.transforms import FAMILIES

    return synthetic(SyntheticConfig(
        runtime=cfg.runtime(name), transforms=list(FAMILIES.names()), data=str(pool), k=cfg.k,
        num_images=cfg.num_images, seed=cfg.seed, resize=cfg.recipe.eval_resize, crop=cfg.recipe.image_size,
    ), reporter)


def _realworld(cfg: DemoConfig, name: str, pool: Path, reporter):
    from sslinv.evaluate.realworld import RealWorldConfig
    from sslinv.evaluate.realworld import run as realworld

    return realworld(RealWorldConfig(
        runtime=cfg.runtime(name), datasets=list(REALWORLD), stats_data=str(pool),
        resize=cfg.recipe.image_size, crop=cfg.recipe.image_size,
        stats_resize=cfg.recipe.eval_resize, stats_crop=cfg.recipe.image_size,
    ), reporter)


def _downstream(cfg: DemoConfig, name: str, reporter):
    from sslinv.evaluate.downstream import DownstreamConfig
    from sslinv.evaluate.downstream import run as downstream

    return downstream(DownstreamConfig(
        runtime=cfg.runtime(name), datasets=list(DOWNSTREAM),
        resize=cfg.recipe.image_size, crop=cfg.recipe.image_size, seed=cfg.seed,
    ), reporter)


# --------------------------------------------------------------------------- the finding


def finding(invariances: list[dict[str, Any]], epochs: int, images: int) -> dict[str, Any]:
    """Does the paper's central finding show? Per group of transformations: the mean
    similarity of ventral and dorsal, and on how many transformations the expected model
    is the more invariant one. It *shows* when the expected model wins on the mean and on
    a majority of the transformations."""
    sim = {(r["model"], r["transform"]): r["similarity"] for r in invariances}
    ventral, dorsal = model_name("ventral"), model_name("dorsal")
    spatial = [r["transform"] for r in invariances if r["model"] == ventral and r["kind"] == "spatial"]
    out: dict[str, Any] = {}
    for group, transforms, winner, loser in (
        ("spatial", spatial, ventral, dorsal),
        ("colour", [t for t in COLOUR if (ventral, t) in sim], dorsal, ventral),
    ):
        pairs = [(sim.get((winner, t)), sim.get((loser, t))) for t in transforms]
        pairs = [(w, lo) for w, lo in pairs if w is not None and lo is not None]
        if not pairs:
            out[group] = {"transforms": transforms, "shows": None, "text": f"{group}: no numbers."}
            continue
        wins = sum(w > lo for w, lo in pairs)
        mean_w = sum(w for w, _ in pairs) / len(pairs)
        mean_l = sum(lo for _, lo in pairs) / len(pairs)
        shows = mean_w > mean_l and wins * 2 > len(pairs)
        expected = f"{winner.removeprefix('demo-')} more invariant than {loser.removeprefix('demo-')}"
        verdict = "shows" if shows else ("shows in part" if (mean_w > mean_l or wins * 2 > len(pairs)) else "does not show")
        out[group] = {
            "transforms": transforms,
            "expected": expected,
            "more_invariant": winner,
            "mean_similarity": {winner: mean_w, loser: mean_l},
            "wins": wins,
            "of": len(pairs),
            "shows": shows,
            "verdict": verdict,
            "text": (f"{group} ({', '.join(transforms)}): expected {expected}; "
                     f"{winner} wins on {wins} of {len(pairs)}, mean similarity {mean_w:.3f} vs {mean_l:.3f}: {verdict}."),
        }
    missing = [g for g in ("spatial", "colour") if out[g].get("shows") is not True]
    out["shows"] = not missing
    out["epochs"] = epochs
    out["note"] = (
        "Both halves of the finding show at this budget." if out["shows"] else
        f"Not every half shows ({' and '.join(missing)}: see above) after {epochs} epochs of pretraining "
        f"on {images:,} painted images; the paper trains 200 epochs on ImageNet. Try --epochs 20."
    )
    return out
