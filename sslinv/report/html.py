"""`report --html`: one self-contained page (inline SVG figures and CSS, no script, no
link or request outside the file) holding the tables, figures and correlations.

Layout: a header naming what the page comes from (models with their architecture,
precision and device kind, tasks, settings groups, result folders, sslinv version,
skipped files, a note when precisions are mixed) and how to read the statistics; then
one section per command with a subsection per settings group (its table with the best
value per row marked, and for synthetic runs each model's profile and the curves); then the
correlations per pair of tables: the matrix with n and p, scatter plots of the strongest
and weakest pairs, and the numbers as a table.
"""

from __future__ import annotations

import datetime as _dt
from html import escape
from pathlib import Path

from sslinv.report.collect import HIGHER_IS_BETTER, Row, Skipped
from sslinv.report.correlate import EXACT_MAX_N, MIN_MODELS, SAMPLED_PERMUTATIONS, Correlation, min_p_value
from sslinv.report.figures import Figure, model_colours, pair_group
from sslinv.report.precision import compute_labels, mixed_warning
from sslinv.report.tables import Table, fmt

TITLES = {
    "synthetic": "Synthetic invariance",
    "realworld": "Real-world invariance",
    "causal3dident": "Causal3DIdent: latent prediction",
    "downstream": "Downstream transfer",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:18px 24px 60px;background:#fff}
h1{font-size:24px;margin:6px 0 4px}h2{font-size:20px;border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:34px}
h3{font-size:16px;margin:22px 0 6px}h4{font-size:14px;margin:14px 0 6px;color:#444}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child,table.head td,table.settings td{text-align:left}
td.best{font-weight:bold;background:#e3f4e1}td.best::after{content:" \\25B2";font-size:9px;color:#2a7a2a}
td.low::after{content:" \\25BC";font-size:9px;color:#2a7a2a}
.figs{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure.fig{flex:0 0 auto;margin:0;border:1px solid #e4e4e4;padding:6px;background:#fff;max-width:100%;overflow-x:auto}
figure.fig svg{display:block;max-width:none}
figcaption{font-size:12px;color:#555;margin-top:4px}
.meta{color:#555;font-size:13px}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:baseline}
.note{background:#fff8e1;border-left:4px solid #f0c040;padding:8px 12px;font-size:13px}
.settings{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;color:#444}
details{margin:6px 0}nav ul{columns:2;margin:4px 0}
"""


def render(
    tables: list[Table],
    rows: list[Row],
    corrs: list[Correlation],
    figs: list[Figure],
    skipped: list[Skipped],
    roots: list[Path],
    metric: str,
) -> str:
    import sslinv

    colours = model_colours(rows)
    commands = [c for c in TITLES if any(t.command == c for t in tables)]
    commands += sorted({t.command for t in tables} - set(commands))
    parts: list[str] = []
    add = parts.append

    # -- header ----------------------------------------------------------------------
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    add("<header><h1>sslinv report</h1>")
    add(f'<p class="meta">Written {created} by sslinv {escape(sslinv.__version__)} from {len(rows)} result '
        f"files under {', '.join(f'<code>{escape(str(r))}</code>' for r in roots)}. Invariance metric: "
        f"<b>{escape(metric)}</b>. Everything on this page is in this one file.</p>")
    archs = {r.model: r.arch for r in rows if r.arch}
    computed = compute_labels(rows)
    add("<table class=\"head\"><tr><th>models</th><td>" + ", ".join(
        f'<span class="swatch" style="background:{colours[m]}"></span>{escape(m)}' + _model_info(archs.get(m), computed.get(m))
        for m in colours) + "</td></tr>")
    for c in commands:
        tasks = list(dict.fromkeys(r.task for r in rows if r.command == c))
        add(f"<tr><th>{escape(c)}</th><td>{escape(', '.join(tasks))}</td></tr>")
    add("</table>")
    add("<h4>Settings groups</h4><p class=\"meta\">Runs with different protocol settings are never mixed: "
        "each group has its own tables.</p><table class=\"settings\"><tr><th>settings</th><th>command</th><th>models</th><th>values</th></tr>")
    for t in tables:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(t.settings_detail.items()) if v is not None)
        add(f'<tr><td><a href="#{_id(t)}">{escape(t.settings)}</a></td><td>{escape(t.command)}</td>'
            f"<td>{len(t.models)}</td><td class=\"settings\">{escape(detail)}</td></tr>")
    add("</table>")
    if skipped:
        add(f"<details><summary>{len(skipped)} result file(s) skipped</summary><ul>" + "".join(
            f"<li><code>{escape(s.path)}</code>: {escape(s.reason)}</li>" for s in skipped) + "</ul></details>")
    mixed = mixed_warning(rows)
    if mixed:
        add(f'<p class="note precision">{escape(mixed[0].upper() + mixed[1:])}</p>')
    add(_statistics_note(corrs))
    add("<nav><b>Contents</b><ul>" + "".join(f'<li><a href="#{c}">{escape(TITLES.get(c, c))}</a></li>' for c in commands)
        + ('<li><a href="#correlations">Correlations</a></li>' if corrs else "") + "</ul></nav></header>")

    # -- per command and settings group --------------------------------------------------
    for c in commands:
        add(f'<section id="{c}"><h2>{escape(TITLES.get(c, c))}</h2>')
        for t in (t for t in tables if t.command == c):
            add(f'<h3 id="{_id(t)}">{escape(t.metric)} ({escape(t.unit)}) <span class="meta">settings '
                f"{escape(t.settings)}{_precision(t.precision)}, {len(t.models)} models</span></h3>")
            add(table_html(t))
            group = [f for f in figs if f.group == t.settings]
            for section, heading in (("profiles", "Invariance profile per model"),
                                     ("curves", "Curves over the transformation's parameter")):
                fs = [f for f in group if f.section == section]
                if fs:
                    add(f"<h4>{heading}</h4>" + _figs(fs))
        add("</section>")

    # -- correlations ------------------------------------------------------------------
    if corrs:
        add('<section id="correlations"><h2>Correlations across models</h2>')
        pairs: dict[tuple[str, str, str, str], list[Correlation]] = {}
        for c in corrs:
            pairs.setdefault((c.x_command, c.x_settings, c.y_command, c.y_settings), []).append(c)
        for (xc, xs, yc, ys), cs in pairs.items():
            group = pair_group(xc, xs, yc, ys)
            xp, yp = _precision(cs[0].x_precision), _precision(cs[0].y_precision)
            add(f"<h3>{escape(xc)} invariance [settings {escape(xs)}{xp}] vs {escape(yc)} [settings {escape(ys)}{yp}]</h3>")
            mats = [f for f in figs if f.group == group and f.section == "correlations"]
            sc = [f for f in figs if f.group == group and f.section == "scatter"]
            if mats:
                add(_figs(mats))
            if sc:
                add("<h4>Strongest and weakest pairs, one point per model</h4>" + _figs(sc))
            add(correlation_table(cs))
        add("</section>")
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>sslinv report</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


def _model_info(arch: str | None, computed: str | None) -> str:
    """`` (resnet50; fp32 on cuda)`` after a model's name: what the result files say."""
    info = "; ".join(x for x in (arch, computed) if x)
    return f' <span class="meta">({escape(info)})</span>' if info else ""


def _precision(precision: str) -> str:
    return f", {escape(precision)}" if precision else ""


def _id(t: Table) -> str:
    return f"{t.command}-{t.settings}"


def _figs(fs: list[Figure]) -> str:
    return '<div class="figs">' + "".join(
        f'<figure class="fig" id="fig-{escape(f.name)}">{f.svg}'
        + (f"<figcaption>{escape(f.caption)}</figcaption>" if f.caption else "") + "</figure>"
        for f in fs) + "</div>"


def table_html(t: Table) -> str:
    """Tasks as rows, models as columns; the best value of each row marked."""
    better = "higher" if HIGHER_IS_BETTER.get(t.metric, True) else "lower"
    first = "transform" if t.command == "synthetic" else "task"
    out = [f"<table><tr><th>{first}</th>" + "".join(f"<th>{escape(m)}</th>" for m in t.models) + "</tr>"]
    for task in t.tasks:
        best = t.best(task)
        cells = []
        for m in t.models:
            cls = ' class="best"' if best == m else ""
            cells.append(f"<td{cls}>{fmt(t.cells.get((m, task))) or '&ndash;'}</td>")
        out.append(f"<tr><td>{escape(task)}</td>{''.join(cells)}</tr>")
    out.append("</table>")
    out.append(f'<p class="meta">&#9650; best value in its row ({better} is better); &ndash;: no result.</p>')
    return "".join(out)


def correlation_table(cs: list[Correlation]) -> str:
    out = [("<details><summary>All numbers</summary><table><tr><th>invariance</th><th>against</th><th>rho</th>"
            "<th>n</th><th>p</th><th>p from</th></tr>")]
    for c in cs:
        rho = "n/a" if c.rho is None else f"{c.rho:+.3f}"
        p = escape(c.note) if c.p_value is None else f"{c.p_value:.3g}"
        method = {"exact": "all pairings", "sampled": f"{SAMPLED_PERMUTATIONS:,} random pairings"}.get(c.p_method, "")
        out.append(f"<tr><td>{escape(c.x_task)}</td><td>{escape(c.y_task)}</td><td>{rho}</td><td>{c.n_models}</td>"
                   f"<td>{p}</td><td>{method}</td></tr>")
    out.append("</table></details>")
    return "".join(out)


def _statistics_note(corrs: list[Correlation]) -> str:
    ns = sorted({c.n_models for c in corrs if c.rho is not None})
    text = (f"Spearman's rho is computed across models (at least {MIN_MODELS}); n is the number of models with "
            f"both numbers. p is two-sided and exact up to {EXACT_MAX_N} models (the share of all orderings of the "
            f"models that correlate at least as strongly), from {SAMPLED_PERMUTATIONS:,} random orderings above. "
            "With n models no test can give p below 2/n!")
    if ns:
        text += ": " + ", ".join(f"n = {n}: {min_p_value(n):.3g}" for n in ns)
    text += (". With few models a large rho is weak evidence, and the pairs on this page are many: some strong "
             "ones are expected by chance. A correlation across models says nothing about cause.")
    return f'<p class="note">{escape(text)}</p>'
