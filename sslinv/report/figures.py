"""The report's figures as SVG: invariance profiles, curves over real parameter axes,
correlation matrices with n and p, and labelled scatter plots of the strongest and
weakest correlations. ``report --plot DIR`` writes them as files, ``report --html``
inlines them; both use the same ``figures()``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from sslinv import cache
from sslinv.report import svg
from sslinv.report.axes import curve_axis, grid_matrix, points
from sslinv.report.collect import HIGHER_IS_BETTER, Row
from sslinv.report.correlate import Correlation
from sslinv.report.tables import UNITS, Table

#: How many of the strongest and of the weakest correlations get a scatter plot, per
#: pair of tables.
STRONGEST, WEAKEST = 2, 1


@dataclass(frozen=True)
class Figure:
    name: str  # file stem, unique in one report
    title: str
    svg: str
    section: str  # "profiles", "curves", "correlations" or "scatter"
    group: str  # the settings id of its table, or ``pair_group`` of its two tables
    caption: str = ""


def model_colours(rows: list[Row]) -> dict[str, str]:
    """One colour per model, the same in every figure (models in order of appearance)."""
    models = list(dict.fromkeys(r.model for r in rows))
    return {m: svg.colour(i) for i, m in enumerate(models)}


def figures(tables: list[Table], rows: list[Row], corrs: list[Correlation], metric: str) -> list[Figure]:
    colours = model_colours(rows)
    out: list[Figure] = []
    for t in tables:
        if t.command == "synthetic" and t.metric != "score":
            out += profiles(t)
    out += curves(rows, colours, metric)
    out += correlation_matrices(corrs)
    out += scatters(corrs, tables, colours)
    return out


def write_figures(figs: list[Figure], folder: Path) -> list[Path]:
    """Each figure as ``<name>.svg`` in ``folder`` (created); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for f in figs:
        path = folder / f"{f.name}.svg"
        with cache.atomic_path(path) as tmp:
            tmp.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + f.svg + "\n", encoding="utf-8")
        written.append(path)
    return written


# ------------------------------------------------------------------------- profiles


def _kind(task: str) -> str | None:
    from sslinv.errors import UnknownNameError
    from sslinv.transforms import FAMILIES

    try:
        return FAMILIES.get(task).kind
    except UnknownNameError:
        return None


def profiles(t: Table) -> list[Figure]:
    """One bar chart per model: its invariance to each transformation, coloured by kind
    (spatial or appearance), on a y scale shared by the models of the table."""
    values = [v for v in t.cells.values() if v is not None and math.isfinite(v)]
    if not values:
        return []
    if HIGHER_IS_BETTER.get(t.metric, True):
        ylim = (min(0.0, min(values)), max(1.0, max(values)))
    else:
        ylim = (0.0, max(values) * 1.05 or 1.0)
    label = f"{t.metric} ({t.unit})"
    out = []
    for m in t.models:
        vals = [t.cells.get((m, task)) for task in t.tasks]
        kinds = [_kind(task) for task in t.tasks]
        fills = [svg.KIND_COLOURS.get(k or "", "#999999") for k in kinds]
        tips = [f"{m}, {task} ({k or 'unknown kind'}): {t.metric} {'n/a' if v is None else f'{v:.4f}'}"
                for task, v, k in zip(t.tasks, vals, kinds)]
        title = f"{m}: {t.metric} per transformation"
        out.append(Figure(
            name=f"profile-{t.settings}-{_safe(m)}", title=title, section="profiles", group=t.settings,
            svg=svg.bar_chart(t.tasks, vals, fills, label, title, ylim, tips, width=max(380, 24 * len(t.tasks) + 70)),
            caption="dark: spatial, light: appearance transformations",
        ))
    return out


def _safe(name: str) -> str:
    from sslinv.paths import safe_name

    return safe_name(name)


# ---------------------------------------------------------------------------- curves


def curves(rows: list[Row], colours: dict[str, str], metric: str) -> list[Figure]:
    """Per synthetic transformation and settings: the models' curves over the real
    parameter values (a 2-D map per model for the translation and shear grids)."""
    curve_metric = metric if metric in ("similarity", "distance") else "similarity"
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        if r.command == "synthetic" and r.curve and curve_metric in r.curve:
            ident = (r.settings, r.task, json.dumps(r.curve["values"]))
            groups.setdefault(ident, []).append(r)
    from sslinv.report.tables import task_order

    out = []
    seen: dict[str, int] = {}
    order = task_order("synthetic")
    for (settings, task, _), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], order(kv[0][1]))):
        axis = curve_axis(task, rs[0].curve["values"], rs[0].settings_detail.get("resize"))
        if axis is None:
            continue
        stem = f"curves-{task}-{settings}"
        seen[stem] = seen.get(stem, 0) + 1
        if seen[stem] > 1:  # the same settings with another grid (a changed k per family)
            stem += f"-{seen[stem]}"
        ylabel = f"{curve_metric} ({UNITS[curve_metric]})"
        title = f"{task}: {curve_metric} over the parameter"
        if axis.kind == "grid":
            panels = []
            for r in rs:
                matrix, tips = grid_matrix(axis, r.curve[curve_metric])
                tips = [[f"{r.model}, {tip}: {_v(v)}" for tip, v in zip(trow, mrow)] for trow, mrow in zip(tips, matrix)]
                panels.append((r.model, matrix[::-1], tips[::-1]))  # largest y on top
            finite = [v for _, m, _ in panels for row in m for v in row if v is not None]
            lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
            cell = max(14, min(40, 320 // max(len(axis.gx), 1)))
            body = svg.heat_panels(panels, [svg.tick_label(x) for x in axis.gx], [svg.tick_label(y) for y in axis.gy][::-1],
                                   axis.xlabel, axis.ylabel, title, lo, hi, cell=cell, colorbar_label=curve_metric)
        else:
            series = {r.model: points(axis, r.curve[curve_metric]) for r in rs}
            series = {m: [(x, y, f"{m}, {tip}: {_v(y)}") for x, y, tip in pts] for m, pts in series.items()}
            body = svg.line_chart(series, colours, axis.xlabel, ylabel, title, xcats=axis.categories)
        out.append(Figure(name=stem, title=title, svg=body, section="curves", group=settings))
    return out


def _v(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


# ----------------------------------------------------------------------- correlations


def _pairs(corrs: list[Correlation]) -> dict[tuple[str, str, str, str], list[Correlation]]:
    """Correlations grouped by the pair of tables they come from."""
    out: dict[tuple[str, str, str, str], list[Correlation]] = {}
    for c in corrs:
        out.setdefault((c.x_command, c.x_settings, c.y_command, c.y_settings), []).append(c)
    return out


def pair_group(x_command: str, x_settings: str, y_command: str, y_settings: str) -> str:
    """The ``group`` of a figure about a pair of tables."""
    return f"{x_command}:{x_settings}/{y_command}:{y_settings}"


def cell_label(c: Correlation) -> str:
    if c.rho is None:
        return f"n/a\nn={c.n_models}"
    return f"{c.rho:+.2f}\nn={c.n_models} p={c.p_value:.2g}"


def correlation_matrices(corrs: list[Correlation]) -> list[Figure]:
    """One matrix per pair of tables: rho in colour, rho, n and p written in each cell."""
    from sslinv.report.correlate import describe

    out = []
    for (xc, xs, yc, ys), cs in _pairs(corrs).items():
        if all(c.rho is None for c in cs):
            continue
        xt = list(dict.fromkeys(c.x_task for c in cs))
        yt = list(dict.fromkeys(c.y_task for c in cs))
        by = {(c.x_task, c.y_task): c for c in cs}
        matrix = [[by[(x, y)].rho if (x, y) in by else None for y in yt] for x in xt]
        tips = [[f"{x} vs {y}: {describe(by[(x, y)])}" if (x, y) in by else "" for y in yt] for x in xt]
        labels = [[cell_label(by[(x, y)]) if (x, y) in by else "" for y in yt] for x in xt]
        title = f"Spearman rho across models: {xc} invariance vs {yc}"
        ylabel = f"{xc} invariance"
        body = svg.heat_panels([("", matrix, tips)], yt, xt, yc, ylabel, title, -1.0, 1.0, cell=96, cell_h=32,
                               diverge=True, labels=[labels], colorbar_label="rho")
        out.append(Figure(name=f"correlation-{xc}-{xs}-vs-{yc}-{ys}", title=title, svg=body, section="correlations",
                          group=pair_group(xc, xs, yc, ys)))
    return out


def scatters(corrs: list[Correlation], tables: list[Table], colours: dict[str, str]) -> list[Figure]:
    """For each pair of tables: the strongest and the weakest correlations as scatter
    plots, one labelled point per model."""
    from sslinv.report.correlate import describe

    by_table = {(t.command, t.settings): t for t in tables if t.command != "downstream" or t.metric == "score"}
    out = []
    for (xc, xs, yc, ys), cs in _pairs(corrs).items():
        valid = sorted((c for c in cs if c.rho is not None), key=lambda c: (-abs(c.rho), c.p_value))
        if not valid:
            continue
        picks = valid[:STRONGEST] + [c for c in valid[::-1][:WEAKEST] if c not in valid[:STRONGEST]]
        xt, yt = by_table.get((xc, xs)), by_table.get((yc, ys))
        if xt is None or yt is None:
            continue
        for rank, c in enumerate(picks):
            which = "strongest" if rank < min(STRONGEST, len(valid)) else "weakest"
            pts = [(m, xt.cells[(m, c.x_task)], yt.cells[(m, c.y_task)], colours.get(m, "#555")) for m in c.models]
            title = f"{c.x_task} vs {c.y_task}"
            body = svg.scatter(pts, f"{c.x_task}: {xt.metric} [{xc}]", f"{c.y_task}: {yt.metric} [{yc}]",
                               title, subtitle=f"{which}: {describe(c)}")
            out.append(Figure(name=f"scatter-{xc}-{_safe(c.x_task)}-vs-{yc}-{_safe(c.y_task)}-{xs}-{ys}",
                              title=title, svg=body, section="scatter", group=pair_group(xc, xs, yc, ys)))
    return out
