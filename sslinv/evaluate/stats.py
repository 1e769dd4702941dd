"""Feature statistics and the whitened metrics of protocol section 1 (pure numerics).

- ``RunningStats``: streaming mean and covariance in float64 with Chan et al.'s
  pairwise update, so memory is O(d^2) rather than O(N d) and shards computed on
  different processes merge exactly (world-size independent up to rounding).
- ``Whitening``: ``mu``, the precision ``P = Sigma^-1`` and a factor ``W`` with
  ``W W^T = P``. We take ``W = V diag(lambda^-1/2)`` from the eigendecomposition of
  ``Sigma`` (the reference uses the Cholesky factor of ``P``; the similarity does not
  depend on the choice and the distance uses only ``P``). The eigendecomposition also
  tells us when ``Sigma`` is singular or ill-conditioned, in which case the directions
  with variance below ``rtol * lambda_max`` (a cutoff per precision) are dropped
  (pseudo-inverse), a warning is issued and what was dropped is recorded (the
  reference adds 1e-10 I for the random model only and crashes otherwise).
- ``pool_whitening``: the whitening is computed once, on rank 0 and on the model's
  device (a float64 ``eigh``), and broadcast to the other ranks (``share_whitening``).
- ``pair_metrics``: Mahalanobis distance and whitened cosine similarity between paired
  rows, one matrix product per batch.
- ``pool_statistics``: the model's feature statistics over a pool, cached. The cache key
  holds everything they depend on: model identity (incl. the checkpoint hash), feature
  layer, pool identity (files, sizes, mtimes), resize, crop, precision, device kind and the number of
  images. The reference keys only by model and layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sslinv import cache, distributed, paths
from sslinv.data.folder import ImagePool
from sslinv.distributed import World
from sslinv.evaluate.features import CleanImages, Extractor, collate_clean
from sslinv.reporting import lazy_task
from sslinv.runtime import image_batch_bytes, make_loader

#: Eigenvalues below RTOL * max eigenvalue count as numerically zero (float32 features
#: carry ~1e-7 relative error, so their covariance is not trustworthy much below that).
DEFAULT_RTOL = 1e-9
STATS_FORMAT = 1

Progress = Callable[[int], None]


class RunningStats:
    """Streaming count, mean and centred scatter matrix (float64).

    The scatter matrix is one preallocated d x d buffer updated in place (``addmm_`` for
    the batch's scatter, ``addr_`` for Chan's correction), so a batch costs one matrix
    product and no d x d temporaries. ``device`` keeps the buffers beside the model (a
    GPU accumulates in float64 there); ``state()`` always returns CPU tensors.
    """

    def __init__(self, dim: int, device: torch.device | str | None = None) -> None:
        self.device = torch.device("cpu" if device is None else device)
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=self.device)
        self.m2 = torch.zeros(dim, dim, dtype=torch.float64, device=self.device)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def update(self, x: torch.Tensor) -> None:
        """Add a batch of rows ``x`` (b x d)."""
        x = x.detach().to(self.device, torch.float64)
        b = x.shape[0]
        if b == 0:
            return
        mean_b = x.mean(0)
        centred = x - mean_b  # b x d: small next to d x d
        self.m2.addmm_(centred.T, centred)
        self._shift(b, mean_b)

    def merge(self, other: RunningStats) -> None:
        if other.n:
            self.m2.add_(other.m2.to(self.device))
            self._shift(other.n, other.mean.to(self.device))

    def _shift(self, n_b: int, mean_b: torch.Tensor) -> None:
        """Chan et al.'s update of the mean and the cross term, once ``n_b`` rows with mean
        ``mean_b`` have had their own scatter added to ``m2``."""
        n_a = self.n
        n = n_a + n_b
        delta = mean_b - self.mean
        if n_a:
            self.m2.addr_(delta, delta, alpha=n_a * n_b / n)
        self.mean.add_(delta, alpha=n_b / n)
        self.n = n

    def covariance(self) -> torch.Tensor:
        """Unbiased covariance (N - 1), as numpy.cov."""
        if self.n < 2:
            raise ValueError("need at least two samples for a covariance")
        return self.m2 / (self.n - 1)

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean.cpu(), "m2": self.m2.cpu()}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device | str | None = None) -> RunningStats:
        s = cls.__new__(cls)
        s.device = torch.device("cpu" if device is None else device)
        # Copies: updates happen in place and must not write into the caller's tensors.
        s.n = int(state["n"])
        s.mean = state["mean"].to(s.device, torch.float64, copy=True)
        s.m2 = state["m2"].to(s.device, torch.float64, copy=True)
        return s


@dataclass
class Whitening:
    """``mu`` (d), precision ``P`` (d x d), whitening factor ``W`` (W W^T = P), float64."""

    mu: torch.Tensor
    P: torch.Tensor
    W: torch.Tensor
    regularisation: dict[str, Any] = field(default_factory=dict)

    @property
    def regularised(self) -> bool:
        return bool(self.regularisation.get("applied"))

    def to(self, device: torch.device | str) -> Whitening:
        """A copy on ``device`` (so whitening runs beside the model, e.g. on the GPU)."""
        return Whitening(self.mu.to(device), self.P.to(device), self.W.to(device), self.regularisation)

    def whiten(self, f: torch.Tensor) -> torch.Tensor:
        """``z(f) = (mu - f) W`` for rows of ``f``, in float64 on ``f``'s device."""
        return (self.mu.to(f.device, torch.float64) - f.to(torch.float64)) @ self.W.to(f.device)


#: Relative eigenvalue cutoff per precision of the forward pass: directions whose
#: variance lies below ``cutoff x lambda_max`` are below the features' rounding noise and
#: are dropped (pseudo-inverse). fp32 features carry ~1e-7 relative error (the cutoff is
#: today's 1e-9, so no fp32 number changes unless an eigenvalue lies below it); fp16 and
#: TF32 keep 11 significand bits, bf16 8: the cutoff is the squared relative rounding error.
PRECISION_RTOL = {"fp32": DEFAULT_RTOL, "tf32": 2.0**-22, "fp16": 2.0**-22, "bf16": 2.0**-16}


def cutoff_for(precision: str) -> float:
    """The relative eigenvalue cutoff for ``precision`` (fp32, tf32, fp16, bf16)."""
    try:
        return PRECISION_RTOL[precision]
    except KeyError:
        raise ValueError(
            f"no whitening cutoff for precision {precision!r}; known: {', '.join(PRECISION_RTOL)}"
        ) from None


def whitening_from_stats(
    mean: torch.Tensor, cov: torch.Tensor, n: int, rtol: float | None = None, precision: str = "fp32"
) -> Whitening:
    """Precision and whitening from mean and covariance, over the directions that carry signal.

    Eigen-directions whose variance is below ``rtol x lambda_max`` (``rtol`` defaults to
    the cutoff of ``precision``, see ``PRECISION_RTOL``) are dropped, not floored: a
    floored direction would get a weight of ``1 / (rtol x lambda_max)`` and rounding noise
    along it would dominate the distance. ``P`` is then the pseudo-inverse of ``Sigma``
    and ``W`` has one column per direction kept (``W W^T = P``). Features after a final
    LayerNorm (every ViT's CLS token) always have one exact null direction. What was
    dropped is recorded in ``regularisation``; with nothing below the cutoff the result is
    the plain inverse, as before.
    """
    rtol = cutoff_for(precision) if rtol is None else rtol
    cov = cov.to(torch.float64)
    cov = (cov + cov.T) / 2
    evals, evecs = torch.linalg.eigh(cov)
    top = float(evals.max()) if evals.numel() else 0.0
    degenerate = not math.isfinite(top) or top <= 0
    # Degenerate pool (all features identical): fall back to the identity metric.
    cutoff = 1.0 if degenerate else rtol * top
    low = evals < cutoff
    n_low = int(low.sum())
    smallest = float(evals.min()) if evals.numel() else 0.0
    total = float(evals.clamp_min(0).sum())
    reg: dict[str, Any] = {
        "applied": n_low > 0,
        "method": ("identity" if degenerate else "pseudo_inverse") if n_low else "none",
        "precision": precision,
        "rtol": rtol,
        "cutoff": cutoff if n_low else None,
        "num_dropped": 0 if degenerate else n_low,
        "dropped_eigenvalues": [] if degenerate else [float(v) for v in evals[low][:32]],
        "dropped_variance_fraction": (
            float(evals[low].clamp_min(0).sum()) / total if n_low and total > 0 and not degenerate else 0.0
        ),
        "dim": int(cov.shape[0]),
        "num_samples": int(n),
        "max_eigenvalue": top,
        "min_eigenvalue": smallest,
        "condition_number": (top / smallest) if smallest > 0 else math.inf,
    }
    if degenerate:
        W = torch.eye(cov.shape[0], dtype=torch.float64, device=cov.device)
    else:
        keep = ~low
        W = evecs[:, keep] * evals[keep].rsqrt()  # V_k diag(lambda_k^-1/2): W W^T = pinv(Sigma)
    P = W @ W.T
    return Whitening(mu=mean.to(cov.device, torch.float64), P=P, W=W, regularisation=reg)


def share_whitening(world: World, whitening: Whitening | None) -> Whitening:
    """Rank 0's ``whitening`` on every rank (the others pass None), on the CPU: tensors
    are broadcast as tensors, so the eigendecomposition is done once, not once per rank."""
    if not world.is_distributed:
        return whitening
    main = world.is_main
    reg = distributed.broadcast_object(world, whitening.regularisation if main else None)
    mu, P, W = (distributed.broadcast_tensor(world, getattr(whitening, name).cpu() if main else None)
                for name in ("mu", "P", "W"))
    return Whitening(mu=mu, P=P, W=W, regularisation=reg)


def regularisation_warning(reg: dict[str, Any], option: str = "--data") -> str | None:
    if not reg.get("applied"):
        return None
    if reg["num_samples"] <= reg["dim"]:
        why = f"only {reg['num_samples']} images for {reg['dim']}-d features"
    elif reg["min_eigenvalue"] <= 0:
        why = "some features are constant over the pool"
    else:
        why = f"condition number {reg['condition_number']:.3g}"
    if reg.get("method") == "identity":
        return (
            f"Feature covariance is zero ({why}): every feature is constant over the pool; "
            f"distances are Euclidean. Use a real statistics pool ({option})."
        )
    return (
        f"Feature covariance is singular or ill-conditioned ({why}): "
        f"{reg['num_dropped']} of {reg['dim']} directions with variance below "
        f"{reg['rtol']:.3g} x the largest ({reg.get('precision', 'fp32')} cutoff) are left out of "
        "the metric (pseudo-inverse). Features after a LayerNorm (ViTs) always have one such "
        f"direction; otherwise use a larger statistics pool ({option}) for stable numbers."
    )


def pair_metrics(
    za: torch.Tensor, zb: torch.Tensor, eps: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``||za - zb||`` (= Mahalanobis in feature space) and cosine of paired rows.

    ``za`` and ``zb`` are whitened rows (``Whitening.whiten``) of equal shape (n x d).
    """
    dist = torch.linalg.vector_norm(za - zb, dim=1)
    dot = (za * zb).sum(1)
    norms = torch.linalg.vector_norm(za, dim=1) * torch.linalg.vector_norm(zb, dim=1)
    sim = dot / norms.clamp_min(eps)
    return dist, sim


# --------------------------------------------------------------- pool statistics


def stats_key(model_identity: dict, pool: ImagePool, resize: int, crop: int, precision: str, skip_bad: bool,
              *, device: str) -> dict[str, Any]:
    """What the statistics depend on, the device kind (cpu, cuda) included."""
    return {
        "format": STATS_FORMAT,
        "model": model_identity,
        "pool": pool.identity(),
        "resize": resize,
        "crop": crop,
        "precision": precision,
        "device": torch.device(device).type,
        "skip_bad": skip_bad,
    }


def pool_statistics(
    extractor: Extractor,
    model_identity: dict,
    pool: ImagePool,
    *,
    resize: int,
    crop: int,
    precision: str,
    skip_bad: bool,
    batch_size: int,
    workers: int,
    cache_root: Path,
    world: World,
    progress: Progress | None = None,
    keep: Collection[int] = (),
    kept: dict[int, torch.Tensor] | None = None,
) -> tuple[RunningStats, dict[str, Any]]:
    """Mean and covariance of the model's features over every pool image, cached.

    Returns the statistics and a record for the result file (cache path, hit or miss,
    images used and skipped). All ranks return the same statistics. When they are
    computed in this call, the features of the pool images ``keep`` that this rank
    embedded are put into ``kept`` (pool index -> float32 feature on the device,
    checked finite), so a caller needing them need not embed those images again.
    """
    key = stats_key(model_identity, pool, resize, crop, precision, skip_bad, device=extractor.device.type)
    path = paths.stats_dir(cache_root, model_identity["spec"]) / f"{cache.key_hash(key)}.pt"

    def compute() -> tuple[RunningStats, list[str]]:
        return _compute(extractor, pool, resize, crop, skip_bad, batch_size, workers, world, progress,
                        set(keep), kept)

    def save(value: tuple[RunningStats, list[str]], p: Path) -> None:
        stats, skipped = value
        torch.save({**stats.state(), "skipped": skipped}, p)

    def load(p: Path) -> tuple[RunningStats, list[str]]:
        state = torch.load(p, map_location="cpu", weights_only=True)
        return RunningStats.from_state(state), list(state.get("skipped", []))

    (stats, skipped), hit = cache.cached(
        path, key, compute, save, load,
        extra=lambda v: {"num_images": v[0].n, "skipped": v[1]},
        world=world,
    )
    return stats, {"path": str(path), "cached": hit, "num_images": stats.n, "skipped": skipped}


def pool_whitening(extractor: Extractor, model_identity: dict, pool: ImagePool, *, resize: int, crop: int,
                   rt, session, reporter, option: str = "--data", keep: Collection[int] = (),
                   kept: dict[int, torch.Tensor] | None = None) -> tuple[Whitening, dict[str, Any]]:
    """The whitening of the model's features over ``pool`` (statistics cached; computed
    with the run's settings ``rt`` and ``session``), warning when it had to be regularised
    (``option`` names the pool's option). Returns it, on the model's device, with the
    statistics' record. The eigendecomposition runs once, on rank 0 and on the model's
    device; the other ranks receive its result (``share_whitening``). ``keep``/``kept``:
    as in ``pool_statistics``."""
    world = session.world
    stats, info = pool_statistics(
        extractor, model_identity, pool,
        resize=resize, crop=crop, precision=rt.precision, skip_bad=rt.skip_bad,
        batch_size=rt.batch_size, workers=session.workers, cache_root=rt.cache_dir, world=world,
        progress=lazy_task(reporter, f"statistics over {len(pool)} images", -(-len(pool) // world.world_size)),
        keep=keep, kept=kept,
    )
    device = extractor.device
    whitening = None
    if world.is_main:
        whitening = whitening_from_stats(stats.mean.to(device), stats.covariance().to(device), stats.n,
                                         precision=rt.precision)
    whitening = share_whitening(world, whitening).to(device)
    if (msg := regularisation_warning(whitening.regularisation, option)) is not None:
        reporter.warn(msg)
    return whitening, info


def _compute(extractor, pool, resize, crop, skip_bad, batch_size, workers, world, progress,
             keep: set[int] = frozenset(), kept: dict[int, torch.Tensor] | None = None):
    """Statistics of this rank's shard, accumulated beside the model (features never
    leave the device), merged across ranks. An unreadable image (without ``skip_bad``) or
    non-finite features stop every rank (``distributed.run_then_gather``). The features
    of the pool images ``keep`` go into ``kept`` once checked."""
    mine = list(distributed.shard(len(pool), world))
    if progress:
        progress(0)  # the bar appears now (cached statistics show none)
    dataset = CleanImages([pool.path(i) for i in mine], resize, crop, skip_bad)
    loader = make_loader(dataset, workers, batch_size, collate_clean, device=extractor.device,
                         batch_bytes=image_batch_bytes(batch_size, crop))

    def local_pass():
        local: RunningStats | None = None
        bad: list[int] = []
        watch = extractor.check()
        mine_kept: dict[int, torch.Tensor] = {}
        for _idx, views, bad_j in loader:
            bad += [mine[j] for j in bad_j]
            if views is not None:
                feats = extractor.forward(views)
                watch.add(feats, lambda idx=_idx: [pool.files[mine[j]] for j in idx.tolist()])
                if local is None:
                    local = RunningStats(feats.shape[1], device=extractor.device)
                local.update(feats)
                if keep:
                    mine_kept.update((mine[j], feats[r].clone()) for r, j in enumerate(_idx.tolist())
                                     if mine[j] in keep)
            if progress:
                progress(len(_idx) + len(bad_j))
        watch.done()  # before the statistics (or any kept feature) leave this rank
        if kept is not None:
            kept.update(mine_kept)
        return local.state() if local else None, bad

    _, parts = distributed.run_then_gather(world, local_pass)
    total: RunningStats | None = None
    skipped: list[int] = []
    for state, b in parts:  # merged in rank order: identical on every rank
        skipped += b
        if state is None:
            continue
        if total is None:
            total = RunningStats.from_state(state)
        else:
            total.merge(RunningStats.from_state(state))
    if total is None or total.n < 2:
        from sslinv.errors import DataNotFoundError

        raise DataNotFoundError(
            f"Fewer than two readable images in the statistics pool {pool.root}; "
            "the covariance needs at least two."
        )
    return total, sorted(pool.files[i] for i in skipped)
