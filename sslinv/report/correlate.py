"""Rank correlations across models, as in the paper.

For each downstream dataset: Spearman's rho (with p-value and number of models) between
each invariance (a synthetic transform's or a real-world dataset's similarity) and the
downstream score; and between synthetic and real-world invariances. Below three models
in common a correlation is refused with a reason, never computed.

p-values: a study like the paper's has a handful of models, where the usual t
approximation of Spearman's test is wrong (with three models and rho = 1 it gives
p = 0; the exact two-sided p is 1/3). Up to ``EXACT_MAX_N`` models the p-value is
exact: the share of all n! pairings of the two rankings whose |rho| reaches the observed
one (ties keep their mid-ranks, so the test is exact for tied data too). Above that the
permutation distribution is sampled: ``SAMPLED_PERMUTATIONS`` random orderings (seeded
by n, so a report is reproducible), ``p = (1 + hits) / (1 + samples)``, never 0;
``p_method`` says which ("exact" or "sampled").
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sslinv.report.tables import Table

MIN_MODELS = 3
#: Largest number of models for which the p-value enumerates all n! pairings (362,880).
EXACT_MAX_N = 9
#: Random orderings drawn for the p-value above ``EXACT_MAX_N`` models (standard error
#: about 0.0015 at p = 0.05).
SAMPLED_PERMUTATIONS = 20_000


@dataclass(frozen=True)
class Correlation:
    x_command: str
    x_task: str
    y_command: str
    y_task: str
    rho: float | None
    p_value: float | None
    n_models: int
    models: tuple[str, ...]
    note: str = ""
    p_method: str = ""  # "exact" (all pairings) or "sampled" (random pairings)
    x_settings: str = ""  # settings ids of the two tables
    y_settings: str = ""
    x_precision: str = ""  # precisions of the two tables ("" when the files do not say)
    y_precision: str = ""

    @property
    def x(self) -> str:
        return f"{self.x_command}:{self.x_task}"

    @property
    def y(self) -> str:
        return f"{self.y_command}:{self.y_task}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "x": self.x, "y": self.y, "rho": self.rho, "p_value": self.p_value, "p_method": self.p_method,
            "n_models": self.n_models, "models": list(self.models), "note": self.note,
            "x_settings": self.x_settings, "y_settings": self.y_settings,
            "x_precision": self.x_precision, "y_precision": self.y_precision,
        }


def describe(c: Correlation) -> str:
    """'rho = +0.800, n = 4, p = 0.333 (exact)', or why there is no rho."""
    if c.rho is None:
        return f"n = {c.n_models}: {c.note}"
    return f"rho = {c.rho:+.3f}, n = {c.n_models}, p = {c.p_value:.3g} ({c.p_method})"


def min_p_value(n: int) -> float:
    """The smallest two-sided p any Spearman test on ``n`` untied models can give:
    2 / n! (only the identical and the reversed ranking reach |rho| = 1)."""
    return min(1.0, 2 / math.factorial(n))


@functools.lru_cache(maxsize=32)
def _pairings(n: int) -> np.ndarray:
    """Every permutation of range(n), one per row (n!, n), up to ``EXACT_MAX_N``; above,
    ``SAMPLED_PERMUTATIONS`` random ones drawn with seed n."""
    if n <= EXACT_MAX_N:
        return np.array(list(itertools.permutations(range(n))), dtype=np.intp).reshape(-1, n)
    rng = np.random.default_rng(n)
    return rng.permuted(np.tile(np.arange(n, dtype=np.intp), (SAMPLED_PERMUTATIONS, 1)), axis=1)


def spearman_test(xs, ys) -> tuple[float | None, float | None, str]:
    """Spearman's rho of two equally long sequences and its two-sided p-value.

    Returns ``(rho, p, method)``; ``(None, None, "")`` when either side is constant.
    """
    from scipy.stats import rankdata

    rx = rankdata(np.asarray(xs, dtype=np.float64))
    ry = rankdata(np.asarray(ys, dtype=np.float64))
    cx, cy = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float(cx @ cx) * float(cy @ cy))
    if denom == 0.0:
        return None, None, ""
    rho = float(cx @ cy) / denom
    n = len(rx)
    null = np.abs(cy[_pairings(n)] @ cx) / denom  # |rho| of every (or each sampled) pairing
    hits = int(np.count_nonzero(null >= abs(rho) - 1e-9))  # a little slack for rounding
    if n <= EXACT_MAX_N:  # the observed pairing is one of them
        return rho, hits / len(null), "exact"
    return rho, (1 + hits) / (1 + len(null)), "sampled"


def spearman(x_table: Table, x_task: str, y_table: Table, y_task: str) -> Correlation:
    models = [
        m for m in x_table.models
        if m in y_table.models
        and _finite(x_table.cells.get((m, x_task)))
        and _finite(y_table.cells.get((m, y_task)))
    ]
    base = {"x_command": x_table.command, "x_task": x_task, "y_command": y_table.command, "y_task": y_task,
            "n_models": len(models), "models": tuple(models), "x_settings": x_table.settings,
            "y_settings": y_table.settings, "x_precision": x_table.precision, "y_precision": y_table.precision}
    if len(models) < MIN_MODELS:
        return Correlation(rho=None, p_value=None, note=f"needs at least {MIN_MODELS} models with both numbers", **base)
    xs = [x_table.cells[(m, x_task)] for m in models]
    ys = [y_table.cells[(m, y_task)] for m in models]
    rho, p, method = spearman_test(xs, ys)
    if rho is None:
        return Correlation(rho=None, p_value=None, note="constant values: rank correlation undefined", **base)
    return Correlation(rho=rho, p_value=p, p_method=method, **base)


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def correlations(tables: list[Table]) -> list[Correlation]:
    """Invariance (the tables' metric) vs downstream score, and synthetic vs real-world
    invariance: every pair of tables, each table one (command, settings) group."""
    inv = [t for t in tables if t.command in ("synthetic", "realworld") and t.metric != "score"]
    down = [t for t in tables if t.command == "downstream" and t.metric == "score"]
    out = []
    for d in down:
        for i in inv:
            for dt in d.tasks:
                for it in i.tasks:
                    out.append(spearman(i, it, d, dt))
    syn = [t for t in inv if t.command == "synthetic"]
    real = [t for t in inv if t.command == "realworld"]
    for s in syn:
        for r in real:
            for rt in r.tasks:
                for st in s.tasks:
                    out.append(spearman(s, st, r, rt))
    return out
