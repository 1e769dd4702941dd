"""Small numeric helpers shared across layers (no torch)."""

from __future__ import annotations

import math

__all__ = ["finite_or_none"]


def finite_or_none(x) -> float | None:
    """``x`` as a float, or None when it is NaN or infinite: JSON (a result file) has no NaN."""
    x = float(x)
    return x if math.isfinite(x) else None
