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
        W = torch.eye(cov.shape[0], dtype=torch.float64)
    else:
        keep = ~low
        W = evecs[:, keep] * evals[keep].rsqrt()  # V_k diag(lambda_k^-1/2): W W^T = pinv(Sigma)
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
    if reg.get("method") == "identity":
        return (
            f"Feature covariance is zero ({why}): every feature is constant over the pool; "
            "distances are Euclidean. Use a real statistics pool (--data)."
        )
    return (
        f"Feature covariance is singular or ill-conditioned ({why}): "
        f"{reg['num_dropped']} of {reg['dim']} directions with variance below "
        f"{reg['rtol']:.3g} x the largest ({reg.get('precision', 'fp32')} cutoff) are left out of "
        "the metric (pseudo-inverse). Features after a LayerNorm (ViTs) always have one such "
        "direction; otherwise use a larger statistics pool (--data) for stable numbers."
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
