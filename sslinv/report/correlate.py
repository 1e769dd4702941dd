"""Rank correlations across models, as in the paper.

For each downstream dataset: Spearman's rho (with p-value and number of models) between
each invariance (a synthetic transform's or a real-world dataset's similarity) and the
downstream score; and between synthetic and real-world invariances. Below three models
in common a correlation is refused with a reason, never computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sslinv.report.tables import Table

MIN_MODELS = 3


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "x": f"{self.x_command}:{self.x_task}", "y": f"{self.y_command}:{self.y_task}",
            "rho": self.rho, "p_value": self.p_value, "n_models": self.n_models,
            "models": list(self.models), "note": self.note,
        }


def spearman(x_table: Table, x_task: str, y_table: Table, y_task: str) -> Correlation:
    from scipy.stats import spearmanr

    models = [
        m for m in x_table.models
        if m in y_table.models
        and _finite(x_table.cells.get((m, x_task)))
        and _finite(y_table.cells.get((m, y_task)))
    ]
    base = dict(x_command=x_table.command, x_task=x_task, y_command=y_table.command, y_task=y_task,
                n_models=len(models), models=tuple(models))
    if len(models) < MIN_MODELS:
        return Correlation(rho=None, p_value=None, note=f"needs at least {MIN_MODELS} models with both numbers", **base)
    xs = [x_table.cells[(m, x_task)] for m in models]
    ys = [y_table.cells[(m, y_task)] for m in models]
    res = spearmanr(xs, ys)
    rho, p = float(res.statistic), float(res.pvalue)
    if not math.isfinite(rho):
        return Correlation(rho=None, p_value=None, note="constant values: rank correlation undefined", **base)
    return Correlation(rho=rho, p_value=p, **base)


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def correlations(tables: list[Table]) -> list[Correlation]:
    """Invariance (the tables' metric) vs downstream score, and synthetic vs real-world invariance."""
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
