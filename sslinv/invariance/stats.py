"""Feature statistics and the whitened metrics of protocol section 1 (pure numerics).

- ``RunningStats``: streaming mean and covariance in float64 with Chan et al.'s
  pairwise update, so memory is O(d^2) rather than O(N d) and shards computed on
  different processes merge exactly (world-size independent up to rounding).
- ``Whitening``: ``mu``, the precision ``P = Sigma^-1`` and a factor ``W`` with
  ``W W^T = P``. We take ``W = V diag(lambda^-1/2)`` from the eigendecomposition of
  ``Sigma`` (the reference uses the Cholesky factor of ``P``; the similarity does not
  depend on the choice and the distance uses only ``P``). The eigendecomposition also
  tells us when ``Sigma`` is singular or ill-conditioned, in which case eigenvalues
  below ``rtol * lambda_max`` are raised to that floor, a warning is issued and the
  regularisation is recorded (the reference adds 1e-10 I for the random model only and
  crashes otherwise).
- ``pair_metrics``: Mahalanobis distance and whitened cosine similarity between paired
  rows, one matrix product per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

#: Eigenvalues below RTOL * max eigenvalue count as numerically zero (float32 features
#: carry ~1e-7 relative error, so their covariance is not trustworthy much below that).
DEFAULT_RTOL = 1e-9


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


def whitening_from_stats(
    mean: torch.Tensor, cov: torch.Tensor, n: int, rtol: float = DEFAULT_RTOL
) -> Whitening:
    """Precision and whitening from mean and covariance; regularise if ill-conditioned."""
    cov = cov.to(torch.float64)
    cov = (cov + cov.T) / 2
    evals, evecs = torch.linalg.eigh(cov)
    top = float(evals.max()) if evals.numel() else 0.0
    if not math.isfinite(top) or top <= 0:
        # Degenerate pool (all features identical): fall back to the identity metric.
        floor = 1.0
    else:
        floor = rtol * top
    low = evals < floor
    n_low = int(low.sum())
    smallest = float(evals.min()) if evals.numel() else 0.0
    reg: dict[str, Any] = {
        "applied": n_low > 0,
        "method": "eigenvalue_floor" if n_low else "none",
        "rtol": rtol,
        "floor": floor if n_low else None,
        "num_floored": n_low,
        "dim": int(cov.shape[0]),
        "num_samples": int(n),
        "max_eigenvalue": top,
        "min_eigenvalue": smallest,
        "condition_number": (top / smallest) if smallest > 0 else math.inf,
    }
    evals = torch.where(low, torch.full_like(evals, floor), evals)
    inv_sqrt = evals.rsqrt()
    W = evecs * inv_sqrt  # V diag(lambda^-1/2): W W^T = V diag(1/lambda) V^T = P
    P = W @ W.T
    return Whitening(mu=mean.to(torch.float64), P=P, W=W, regularisation=reg)


def regularisation_warning(reg: dict[str, Any]) -> str | None:
    if not reg.get("applied"):
        return None
    if reg["num_samples"] <= reg["dim"]:
        why = f"only {reg['num_samples']} images for {reg['dim']}-d features"
    elif reg["min_eigenvalue"] <= 0:
        why = "some features are constant over the pool"
    else:
        why = f"condition number {reg['condition_number']:.3g}"
    return (
        f"Feature covariance is singular or ill-conditioned ({why}): "
        f"{reg['num_floored']} of {reg['dim']} eigenvalues raised to "
        f"{reg['rtol']:g} x the largest. Distances and similarities depend on this "
        "regularisation; use a larger statistics pool (--data) for stable numbers."
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
