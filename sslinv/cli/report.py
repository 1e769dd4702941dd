"""`sslinv report`: the paper's tables, correlations and figures from finished results."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from sslinv.cli import options as o
from sslinv.cli.output import handle_errors, print_json, stderr, stdout


class Format(str, Enum):
    table = "table"
    csv = "csv"
    markdown = "markdown"
    latex = "latex"
    json = "json"


class Metric(str, Enum):
    similarity = "similarity"
    distance = "distance"
    similarity_reference = "similarity_reference"


COMMANDS = ("synthetic", "realworld", "causal3dident", "downstream")


@handle_errors()
def report(
    results: Annotated[
        Optional[list[Path]],
        typer.Option("--results", help="Folder(s) of result files (repeatable) \\[default: <cache>/results].",
                     show_default=False, rich_help_panel=o.RUN),
    ] = None,
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Only these models (repeatable).",
                                                       autocompletion=o.complete_model, rich_help_panel=o.RUN)] = None,
    command: Annotated[Optional[list[str]], typer.Option("--command", help="Only these commands (repeatable): " + ", ".join(COMMANDS) + ".",
                                                         rich_help_panel=o.RUN)] = None,
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", help="Only these tasks: datasets, transforms or targets (repeatable).",
                                                         rich_help_panel=o.RUN)] = None,
    metric: Annotated[Metric, typer.Option("--metric", help="Invariance metric in the tables: similarity (1 = invariant), distance (0 = invariant), or similarity_reference (real-world similarity including i = j pairs, the reference's number).",
                                           rich_help_panel=o.RUN)] = Metric.similarity,
    format_: Annotated[Format, typer.Option("--format", "-f", help="table (rich, on screen), csv (one line per model and task), markdown, latex or json.",
                                            rich_help_panel=o.RUN)] = Format.table,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write csv/markdown/latex/json to this file instead of stdout.",
                                                   rich_help_panel=o.RUN)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write figures (PNG and SVG) to this folder; needs pip install 'sslinv[plot]'.",
                                                 rich_help_panel=o.RUN)] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="List every run, not only the newest per model, task and settings.",
                                           rich_help_panel=o.RUN)] = False,
    cache_dir: o.CacheDir = None,
    verbose: o.Verbose = False,
) -> None:
    """Tables, rank correlations and figures from the finished result files.

    Reads only result files (never recomputes). One table per command and protocol setting: results computed with different settings (pool, resize, k, number of images...) are shown in separate tables, never mixed in one cell. Correlations are Spearman's rho across models between each invariance and each downstream score, and between synthetic and real-world invariances, as in the paper (at least three models).

    Example: sslinv report --format markdown -o results.md --plot figures/
    """
    from sslinv import cache, paths
    from sslinv.errors import DataNotFoundError, UsageError
    from sslinv.report.collect import collect
    from sslinv.report.correlate import correlations
    from sslinv.report.tables import pivot, to_csv, to_latex, to_markdown, to_rich

    if command:
        bad = [c for c in command if c not in COMMANDS]
        if bad:
            from sslinv.registry import did_you_mean

            raise UsageError(f"Unknown command {bad[0]!r}.{did_you_mean(bad[0], list(COMMANDS))} Known: {', '.join(COMMANDS)}.")
    roots = results or [paths.results_dir(paths.cache_dir(cache_dir))]
    missing = [r for r in roots if not r.is_dir()]
    if missing:
        raise DataNotFoundError(f"No results folder at {missing[0]}. Run a command first (e.g. sslinv synthetic), or pass --results DIR.")

    rows = collect(roots, models=model, commands=command, tasks=dataset, all_runs=all_runs)
    if not rows:
        raise DataNotFoundError(f"No result files match under {', '.join(map(str, roots))}.")
    if all_runs and format_ in (Format.table, Format.markdown, Format.latex):
        raise UsageError("--all-runs lists every run: use --format csv or json.")
    tables = pivot(rows, metric.value)
    corrs = correlations(tables)

    if plot is not None:
        from sslinv.report.plots import plot_all

        written = plot_all(tables, rows, corrs, plot)
        stderr.print(f"wrote {len(written)} figure files to {plot}", highlight=False)

    if format_ == Format.table:
        for t in to_rich(tables):
            stdout.print(t)
        _print_correlations(corrs)
        return
    if format_ == Format.json:
        payload = {
            "results": [r.as_dict() for r in rows],
            "tables": [t.as_dict() for t in tables],
            "correlations": [c.as_dict() for c in corrs],
        }
        if output is None:
            print_json(payload)
        else:
            cache.write_json(output, payload)
        return
    text = {Format.csv: lambda: to_csv(rows), Format.markdown: lambda: to_markdown(tables) + _md_correlations(corrs),
            Format.latex: lambda: to_latex(tables)}[format_]()
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        with cache.atomic_path(output) as tmp:
            tmp.write_text(text)


def _print_correlations(corrs) -> None:
    from rich.table import Table

    if not corrs:
        return
    t = Table(title="Spearman rank correlation across models", title_justify="left")
    for col in ("invariance / x", "y", "rho", "p", "models"):
        t.add_column(col, justify="right" if col in ("rho", "p", "models") else "left")
    for c in corrs:
        rho = "n/a" if c.rho is None else f"{c.rho:+.3f}"
        p = c.note if c.p_value is None else f"{c.p_value:.3g}"
        t.add_row(f"{c.x_command}:{c.x_task}", f"{c.y_command}:{c.y_task}", rho, p, str(c.n_models))
    stdout.print(t)


def _md_correlations(corrs) -> str:
    if not corrs:
        return ""
    lines = ["### Spearman rank correlation across models", "", "| x | y | rho | p | models |", "|---|---|---:|---:|---:|"]
    for c in corrs:
        rho = "n/a" if c.rho is None else f"{c.rho:+.3f}"
        p = c.note if c.p_value is None else f"{c.p_value:.3g}"
        lines.append(f"| {c.x_command}:{c.x_task} | {c.y_command}:{c.y_task} | {rho} | {p} | {c.n_models} |")
    return "\n".join(lines) + "\n"
