"""Pivot tidy rows into models x tasks tables and render them (rich, csv, markdown, latex)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

from sslinv.report.collect import HIGHER_IS_BETTER, Row


@dataclass
class Table:
    command: str
    metric: str
    unit: str
    settings: str
    settings_detail: dict[str, Any]
    models: list[str]
    tasks: list[str]
    cells: dict[tuple[str, str], float | None]
    #: The precision of every run in the table (one: it is part of the settings); ""
    #: when the result files do not say.
    precision: str = ""

    @property
    def title(self) -> str:
        precision = f", {self.precision}" if self.precision else ""
        return f"{self.command}: {self.metric} ({self.unit}) [settings {self.settings}{precision}]"

    def best(self, task: str) -> str | None:
        """The model with the best value of ``task``; None below two values or on a tie."""
        vals = [(m, self.cells.get((m, task))) for m in self.models]
        vals = [(m, v) for m, v in vals if v is not None and math.isfinite(v)]
        if len(vals) < 2:
            return None
        pick = max if HIGHER_IS_BETTER.get(self.metric, True) else min
        model, top = pick(vals, key=lambda mv: mv[1])
        return model if sum(v == top for _, v in vals) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command, "metric": self.metric, "unit": self.unit, "settings": self.settings,
            "settings_detail": self.settings_detail, "precision": self.precision, "models": self.models, "tasks": self.tasks,
            "rows": [{"model": m, **{t: self.cells.get((m, t)) for t in self.tasks}} for m in self.models],
        }


UNITS = {"similarity": "whitened cosine", "distance": "Mahalanobis", "similarity_reference": "cosine incl. i = j"}


def pivot(rows: list[Row], metric: str) -> list[Table]:
    """One table per (command, settings) for ``metric`` on invariance commands and the
    score on the others; tasks in the paper's order (``task_order``)."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        m = metric if metric in r.values else "score" if "score" in r.values else None
        if m is not None:
            groups.setdefault((r.command, m, r.settings), []).append(r)
    tables = []
    for (command, m, settings), rs in groups.items():
        units = {r.score_metric for r in rs} if m == "score" else {UNITS.get(m, m)}
        precisions = {r.precision for r in rs}
        tables.append(Table(
            command=command, metric=m, unit=units.pop() if len(units) == 1 else "mixed",
            settings=settings, settings_detail=rs[0].settings_detail,
            models=list(dict.fromkeys(r.model for r in rs)),
            tasks=sorted(dict.fromkeys(r.task for r in rs), key=task_order(command)),
            cells={(r.model, r.task): r.values.get(m) for r in rs},
            precision=precisions.pop() if len(precisions) == 1 else "mixed",
        ))
    return tables


def task_order(command: str):
    """Sort key for a table's tasks: the paper's order for transforms and real-world
    datasets (as the commands list them), then anything else by name."""
    from sslinv.data.realworld import REALWORLD
    from sslinv.transforms.families import FAMILIES

    known = {"synthetic": FAMILIES.names(), "realworld": REALWORLD.names()}.get(command, ())
    rank = {name: i for i, name in enumerate(known)}
    return lambda task: (rank.get(task, len(rank)), task)


def fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def to_csv(rows: list[Row]) -> str:
    """One line per finished (command, model, task, settings), every metric a column."""
    buf = io.StringIO()
    fields = list(rows[0].as_dict()) if rows else ["command", "model", "task"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r.as_dict())
    return buf.getvalue()


def to_markdown(tables: list[Table]) -> str:
    out = []
    for t in tables:
        out.append(f"### {t.title}\n")
        out.append("| model | " + " | ".join(t.tasks) + " |")
        out.append("|---|" + "---:|" * len(t.tasks))
        best = {task: t.best(task) for task in t.tasks}
        for m in t.models:
            cells = []
            for task in t.tasks:
                s = fmt(t.cells.get((m, task)))
                cells.append(f"**{s}**" if best[task] == m and s else s)
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _tex(s: str) -> str:
    return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")


def to_latex(tables: list[Table]) -> str:
    out = []
    for t in tables:
        out.append(f"% {t.title}")
        out.append(r"\begin{tabular}{l" + "r" * len(t.tasks) + "}")
        out.append(r"\toprule")
        out.append("model & " + " & ".join(_tex(x) for x in t.tasks) + r" \\")
        out.append(r"\midrule")
        best = {task: t.best(task) for task in t.tasks}
        for m in t.models:
            cells = []
            for task in t.tasks:
                s = fmt(t.cells.get((m, task)))
                cells.append(rf"\textbf{{{s}}}" if best[task] == m and s else s)
            out.append(_tex(m) + " & " + " & ".join(cells) + r" \\")
        out.append(r"\bottomrule")
        out.append(r"\end{tabular}")
        out.append("")
    return "\n".join(out)


def to_rich(tables: list[Table]):
    """Rich tables for the screen. A table with more tasks than models (18 transforms,
    3 models) is drawn transposed, tasks as rows, so it fits a terminal; the best value
    per task is in bold green either way."""
    from rich.markup import escape
    from rich.table import Table as RichTable

    rendered = []
    for t in tables:
        best = {task: t.best(task) for task in t.tasks}

        def cell(m: str, task: str, t: Table = t, best: dict = best) -> str:
            s = fmt(t.cells.get((m, task)))
            return f"[bold green]{s}[/]" if best[task] == m and s else s

        rt = RichTable(title=escape(t.title), title_justify="left")
        if len(t.tasks) > len(t.models):
            rt.add_column(t.command if t.command != "synthetic" else "transform")
            for m in t.models:
                rt.add_column(escape(m), justify="right")
            for task in t.tasks:
                rt.add_row(escape(task), *(cell(m, task) for m in t.models))
        else:
            rt.add_column("model")
            for task in t.tasks:
                rt.add_column(escape(task), justify="right")
            for m in t.models:
                rt.add_row(escape(m), *(cell(m, task) for task in t.tasks))
        rendered.append(rt)
    return rendered
