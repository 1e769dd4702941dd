"""`sslinv report`: the paper's tables, correlations and figures from finished results."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from sslinv.cli import options as o
from sslinv.cli.output import handle_errors, print_json, stderr, stdout, warn


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
    precision: Annotated[Optional[list[str]], typer.Option("--precision", help="Only results computed at these precisions (repeatable): fp32, tf32, bf16, fp16. A report that holds several warns: low precision adds noise that whitening amplifies.",
                                                           rich_help_panel=o.RUN)] = None,
    metric: Annotated[Metric, typer.Option("--metric", help="Invariance metric in the tables: similarity (1 = invariant), distance (0 = invariant), or similarity_reference (real-world similarity including i = j pairs, the reference's number).",
                                           rich_help_panel=o.RUN)] = Metric.similarity,
    format_: Annotated[Format, typer.Option("--format", "-f", help="table (rich, on screen), csv (one line per model and task), markdown, latex or json.",
                                            rich_help_panel=o.RUN)] = Format.table,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write csv/markdown/latex/json to this file instead of stdout.",
                                                   rich_help_panel=o.RUN)] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write one self-contained HTML page (tables, figures, correlations; opens offline in any browser) to this file.",
                                                 rich_help_panel=o.RUN)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write the figures as SVG files to this folder (created if missing).",
                                                 rich_help_panel=o.RUN)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 3) if any result file is skipped (truncated, not a result, no numbers) instead of warning.",
                                         rich_help_panel=o.RUN)] = False,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="List every run, not only the newest per model, task and settings.",
                                           rich_help_panel=o.RUN)] = False,
    cache_dir: o.CacheDir = None,
    verbose: o.Verbose = False,
) -> None:
    """Tables, rank correlations and figures from the finished result files.

    Reads only result files (never recomputes). One table per command and protocol setting: results computed with different settings (pool, resize, k, number of images...) are shown in separate tables, never mixed in one cell; so are results at different precisions (fp32, tf32, bf16, fp16), and a report holding several warns. Correlations are Spearman's rho across models between each invariance and each downstream score, and between synthetic and real-world invariances, as in the paper (at least three models; p from the permutation test: exact up to nine models, sampled above). A result file that cannot be used is skipped with a warning naming it and why.

    Example: sslinv report --html report.html --format markdown -o results.md
    """
    from sslinv import cache, paths
    from sslinv.errors import BadResultError, DataNotFoundError, UsageError
    from sslinv.report.build import build, write_html
    from sslinv.report.tables import to_csv, to_latex, to_markdown, to_rich

    if command:
        bad = [c for c in command if c not in COMMANDS]
        if bad:
            from sslinv.registry import did_you_mean

            raise UsageError(f"Unknown command {bad[0]!r}.{did_you_mean(bad[0], list(COMMANDS))} Known: {', '.join(COMMANDS)}.")
    if precision:
        from sslinv.report.collect import PRECISION_ORDER

        bad = [p for p in precision if p not in PRECISION_ORDER]
        if bad:
            from sslinv.registry import did_you_mean

            raise UsageError(f"Unknown precision {bad[0]!r}.{did_you_mean(bad[0], list(PRECISION_ORDER))} "
                             f"Known: {', '.join(PRECISION_ORDER)}.")
    _check_outputs(output, html, plot)
    if output is not None and format_ == Format.table:
        raise UsageError("--output writes csv, markdown, latex or json: add --format csv (or another), "
                         "or leave out --output to print the tables.")
    roots = results or [paths.results_dir(paths.cache_dir(cache_dir))]
    missing = [r for r in roots if not r.is_dir()]
    if missing:
        raise DataNotFoundError(f"No results folder at {missing[0]}. Run a command first (e.g. sslinv synthetic), or pass --results DIR.")

    rep = build(roots, metric.value, models=model, commands=command, tasks=dataset, all_runs=all_runs,
                precisions=precision)
    if rep.skipped:
        if strict:
            first = rep.skipped[0]
            raise BadResultError(f"{len(rep.skipped)} result file(s) cannot be used (--strict); first: {first.path}: "
                                 f"{first.reason}. Delete or rerun it, or drop --strict to skip with a warning.")
        for s in rep.skipped:
            warn(f"skipped {s.path}: {s.reason}")
        warn(f"skipped {len(rep.skipped)} result file(s) that cannot be used (see above); --strict fails instead.")
    rows, tables, corrs = rep.rows, rep.tables, rep.corrs
    if not rows:
        raise DataNotFoundError(f"No result files match under {', '.join(map(str, roots))}.")
    if all_runs and format_ in (Format.table, Format.markdown, Format.latex):
        raise UsageError("--all-runs lists every run: use --format csv or json.")
    if rep.precision_warning:
        warn(rep.precision_warning)
    if not tables and not all_runs and format_ != Format.json:
        warn(f"None of the {len(rows)} matching results has the metric {metric.value!r}"
             + (" (it is a realworld metric)" if metric.value == "similarity_reference" else "")
             + "; try another --metric.")

    if plot is not None:
        from sslinv.report.figures import write_figures

        written = _writing(plot, lambda: write_figures(rep.figures, plot))
        stderr.print(f"wrote {len(written)} figures (SVG) to {plot}", highlight=False)
    if html is not None:
        _writing(html, lambda: write_html(rep, html))
        stderr.print(f"wrote the HTML report to {html}", highlight=False)

    if format_ == Format.table:
        for t in to_rich(tables):
            stdout.print(t)
        _print_correlations(corrs)
        return
    if format_ == Format.json:
        from sslinv.report.precision import by_precision

        payload = {
            "results": [r.as_dict() for r in rows],
            "tables": [t.as_dict() for t in tables],
            "correlations": [c.as_dict() for c in corrs],
            "skipped": [{"result_file": s.path, "reason": s.reason} for s in rep.skipped],
            "precisions": by_precision(rows),
            "precision_mixed": rep.precision_mixed,
        }
        if output is None:
            print_json(payload)
        else:
            _writing(output, lambda: cache.write_json(output, payload))
        return
    text = {Format.csv: lambda: to_csv(rows), Format.markdown: lambda: to_markdown(tables) + _md_correlations(corrs),
            Format.latex: lambda: to_latex(tables)}[format_]()
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        def write() -> None:
            with cache.atomic_path(output) as tmp:
                tmp.write_text(text)

        _writing(output, write)


def _check_outputs(output: Path | None, html: Path | None, plot: Path | None) -> None:
    """Refuse output paths of the wrong kind before any work."""
    from sslinv.errors import UsageError

    for opt, path, example in (("--output", output, "results.csv"), ("--html", html, "report.html")):
        if path is not None and path.is_dir():
            raise UsageError(f"{opt} takes a file, but {path} is a folder. Give a file name, e.g. {path / example}.")
        blocked = next((p for p in (path.parents if path is not None else ()) if p.exists() and not p.is_dir()), None)
        if blocked is not None:
            raise UsageError(f"{opt} {path}: {blocked} is a file, not a folder. Give a path under a folder.")
    if plot is not None and plot.exists() and not plot.is_dir():
        raise UsageError(f"--plot takes a folder, but {plot} is a file. Give a folder (created if missing), e.g. figures/.")


def _writing(path: Path, write):
    """Run ``write``; an OSError becomes one line naming the path."""
    from sslinv.errors import SslinvError

    try:
        return write()
    except OSError as exc:
        raise SslinvError(f"Cannot write {path}: {exc.strerror or exc}. Check the path and its permissions.") from None


def _print_correlations(corrs) -> None:
    from rich.table import Table

    from sslinv.report.correlate import EXACT_MAX_N, SAMPLED_PERMUTATIONS

    if not corrs:
        return
    t = Table(title="Spearman rank correlation across models", title_justify="left")
    for col in ("invariance / x", "y", "rho", "n", "p"):
        t.add_column(col, justify="right" if col in ("rho", "p", "n") else "left")
    for c in corrs:
        t.add_row(c.x, c.y, _rho(c), str(c.n_models), _p(c))
    stdout.print(t)
    stdout.print(f"[dim]n: models with both numbers. p: two-sided; (exact) enumerates every ordering of the "
                 f"models, (sampled) draws {SAMPLED_PERMUTATIONS:,} random orderings, above {EXACT_MAX_N} models. "
                 "With n models p cannot go below 2/n! (n = 3: 0.33, 4: 0.083, 5: 0.017).[/]", highlight=False)


def _rho(c) -> str:
    return "n/a" if c.rho is None else f"{c.rho:+.3f}"


def _p(c) -> str:
    return c.note if c.p_value is None else f"{c.p_value:.3g} ({c.p_method})"


def _md_correlations(corrs) -> str:
    if not corrs:
        return ""
    lines = ["### Spearman rank correlation across models", "", "| x | y | rho | n | p |", "|---|---|---:|---:|---:|"]
    for c in corrs:
        lines.append(f"| {c.x} | {c.y} | {_rho(c)} | {c.n_models} | {_p(c)} |")
    return "\n".join(lines) + "\n"
