"""The report pipeline in one place: result files -> rows -> tables -> correlations
(-> figures -> one HTML page). The ``report`` command and the demo's last step use it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from sslinv.report.collect import Row, Skipped, collect
from sslinv.report.correlate import Correlation, correlations
from sslinv.report.tables import Table, pivot


@dataclass
class Report:
    roots: list[Path]
    metric: str
    rows: list[Row]
    skipped: list[Skipped]
    tables: list[Table]
    corrs: list[Correlation]

    @functools.cached_property
    def figures(self):
        from sslinv.report.figures import figures

        return figures(self.tables, self.rows, self.corrs, self.metric)

    @property
    def precision_mixed(self) -> bool:
        """Does the report hold results of more than one precision (``report.precision``)?"""
        from sslinv.report.precision import is_mixed

        return is_mixed(self.rows)

    @property
    def precision_warning(self) -> str | None:
        from sslinv.report.precision import mixed_warning

        return mixed_warning(self.rows)

    def html(self) -> str:
        from sslinv.report.html import render

        return render(self.tables, self.rows, self.corrs, self.figures, self.skipped, self.roots, self.metric)


def build(
    roots: list[Path],
    metric: str = "similarity",
    models: list[str] | None = None,
    commands: list[str] | None = None,
    tasks: list[str] | None = None,
    all_runs: bool = False,
    precisions: list[str] | None = None,
) -> Report:
    rows, skipped = collect(roots, models=models, commands=commands, tasks=tasks, all_runs=all_runs,
                            precisions=precisions)
    tables = pivot(rows, metric)
    return Report(list(roots), metric, rows, skipped, tables, correlations(tables))


def write_html(report: Report, path: Path) -> Path:
    """Write the page atomically (nothing half-written under ``path``)."""
    from sslinv import cache

    text = report.html()
    with cache.atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
