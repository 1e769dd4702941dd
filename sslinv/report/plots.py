"""Figures: invariance heat maps, per-parameter curves, correlation heat maps (PNG + SVG).

matplotlib is an optional extra (``pip install 'sslinv[plot]'``).
"""

from __future__ import annotations

import math
from pathlib import Path

from sslinv import cache
from sslinv.errors import UsageError
from sslinv.report.collect import Row
from sslinv.report.correlate import Correlation
from sslinv.report.tables import Table


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, an optional extra. Install it with: pip install 'sslinv[plot]'"
        ) from None
    return plt


def _save(fig, out: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = out / f"{stem}.{ext}"
        with cache.atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", dpi=150)
        paths.append(path)
    return paths


def _heatmap(plt, matrix, rows, cols, title, cmap, vmin=None, vmax=None):
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(cols) + 2), max(2.5, 0.45 * len(rows) + 1.5)))
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = matrix[i][j]
            if v is not None and math.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    return fig


def plot_all(tables: list[Table], rows: list[Row], corrs: list[Correlation], out: Path) -> list[Path]:
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    nan = float("nan")

    # -- invariance heat maps (models x tasks) ----------------------------------------
    for t in tables:
        if t.command not in ("synthetic", "realworld") or t.metric != "similarity":
            continue
        matrix = [[t.cells.get((m, task), nan) if t.cells.get((m, task)) is not None else nan for task in t.tasks]
                  for m in t.models]
        fig = _heatmap(plt, matrix, t.models, t.tasks, t.title, "viridis")
        written += _save(fig, out, f"heatmap-{t.command}-{t.settings}")
        plt.close(fig)

    # -- per-parameter curves of each synthetic transform --------------------------------
    curves: dict[tuple[str, str], list] = {}
    for r in rows:
        if r.command == "synthetic" and "similarity" in r.values:
            rec = cache.read_json(Path(r.path))
            curves.setdefault((r.settings, r.task), []).append((r.model, rec))
    for (settings, task), runs in curves.items():
        drawn = [(model, c) for model, rec in runs if (c := (rec["metrics"].get("curves") or {}).get("similarity"))]
        if not drawn:  # result files without curves: no empty figure
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for model, curve in drawn:
            ys = [nan if y is None else y for y in curve]
            ax.plot(range(len(ys)), ys, label=model, lw=1.2)
        ax.set_xlabel(f"{task} parameter index (see result file for values)")
        ax.set_ylabel("similarity")
        ax.set_title(f"{task} [settings {settings}]")
        ax.legend(fontsize=7)
        written += _save(fig, out, f"curves-{task}-{settings}")
        plt.close(fig)

    # -- correlation heat maps -----------------------------------------------------------
    pairs: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for c in corrs:
        if c.rho is not None:
            pairs.setdefault((c.x_command, c.y_command), {})[(c.x_task, c.y_task)] = c.rho
    for (xc, yc), cells in pairs.items():
        xs = list(dict.fromkeys(x for x, _ in cells))
        ys = list(dict.fromkeys(y for _, y in cells))
        matrix = [[cells.get((x, y), nan) for y in ys] for x in xs]
        fig = _heatmap(plt, matrix, xs, ys, f"Spearman rho: {xc} invariance vs {yc}", "RdBu_r", -1, 1)
        written += _save(fig, out, f"correlation-{xc}-vs-{yc}")
        plt.close(fig)
    return written
