"""Small SVG charts written by hand: bars, lines, heat maps and labelled scatter plots.

No plotting library: the figures are plain SVG text, so ``report --html`` and
``report --plot`` work with the base install, the page stays small and the figures
look the same inline and as files. Every chart is a ``Canvas`` of fixed pixel size with
a viewBox (it scales with the page); every mark that stands for a number carries a
``<title>`` with the exact value, which browsers show on hover without any script.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

#: Tableau 10: distinguishable model colours, used in order of the models.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
#: Bar colours of the two kinds of transformation, apart from the model colours.
KIND_COLOURS = {"spatial": "#51606f", "appearance": "#c9a66b"}
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _n(v: float) -> str:
    """A coordinate: short, and never '-0'."""
    s = f"{v:.1f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


class Canvas:
    """An SVG document built element by element."""

    def __init__(self, width: float, height: float, title: str = "") -> None:
        self.width, self.height = width, height
        self.title = title
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def rect(self, x, y, w, h, fill, stroke="none", tip: str | None = None, extra: str = "") -> None:
        t = f"<title>{escape(tip)}</title>" if tip else ""
        self.add(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(w, 0))}" height="{_n(max(h, 0))}" '
                 f'fill="{fill}" stroke="{stroke}"{extra}>{t}</rect>')

    def line(self, x1, y1, x2, y2, stroke="#333", width=1.0, dash: str | None = None) -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
                 f'stroke-width="{width}"{d}/>')

    def polyline(self, points: Sequence[tuple[float, float]], stroke: str, width=1.6) -> None:
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        self.add(f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width}" '
                 'stroke-linejoin="round"/>')

    def circle(self, x, y, r, fill, tip: str | None = None, stroke="white") -> None:
        t = f"<title>{escape(tip)}</title>" if tip else ""
        self.add(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}" fill="{fill}" stroke="{stroke}" '
                 f'stroke-width="0.8">{t}</circle>')

    def text(self, x, y, s: str, size=11, anchor="start", fill="#222", weight="normal",
             rotate: float | None = None, baseline: str | None = None) -> None:
        r = f' transform="rotate({_n(rotate)} {_n(x)} {_n(y)})"' if rotate else ""
        b = f' dominant-baseline="{baseline}"' if baseline else ""
        w = ' font-weight="bold"' if weight != "normal" else ""
        self.add(f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{w}{r}{b}>'
                 f"{escape(s)}</text>")

    def render(self) -> str:
        title = f"<title>{escape(self.title)}</title>" if self.title else ""
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(self.width)}" height="{_n(self.height)}" '
                f'viewBox="0 0 {_n(self.width)} {_n(self.height)}" role="img" style="{FONT}">{title}'
                f'<rect width="100%" height="100%" fill="white"/>' + "".join(self.parts) + "</svg>")


# ------------------------------------------------------------------------------ scales


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.3g}"
    return f"{v:.6g}" if v == round(v, 4) else f"{v:.3g}"


def padded_range(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if lo == hi:
        return lo - 0.5, hi + 0.5
    span = hi - lo
    return lo - pad * span, hi + pad * span


class Linear:
    """Map [d0, d1] onto pixels [r0, r1]."""

    def __init__(self, d0: float, d1: float, r0: float, r1: float) -> None:
        self.d0, self.d1, self.r0, self.r1 = d0, d1, r0, r1

    def __call__(self, v: float) -> float:
        if self.d1 == self.d0:
            return (self.r0 + self.r1) / 2
        return self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)


def _lerp_colour(stops: Sequence[str], t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    a, b = stops[i], stops[i + 1]
    rgb = [round(int(a[k:k + 2], 16) * (1 - f) + int(b[k:k + 2], 16) * f) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
DIVERGING = ("#2166ac", "#67a9cf", "#f7f7f7", "#ef8a62", "#b2182b")


def sequential(v: float | None, lo: float, hi: float) -> str:
    if v is None or not math.isfinite(v):
        return "#e8e8e8"
    return _lerp_colour(VIRIDIS, 0.5 if hi == lo else (v - lo) / (hi - lo))


def diverging(v: float | None) -> str:
    """-1 blue, 0 white, +1 red."""
    if v is None or not math.isfinite(v):
        return "#e8e8e8"
    return _lerp_colour(DIVERGING, (v + 1) / 2)


def text_on(fill: str) -> str:
    """Black or white text, whichever reads on ``fill``."""
    r, g, b = (int(fill[k:k + 2], 16) for k in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


# ------------------------------------------------------------------------------ axes


def axes(c: Canvas, x0, y0, w, h, xs: Linear | None, ys: Linear, xticks, yticks, xlabel: str, ylabel: str,
         xcats: Sequence[str] | None = None) -> None:
    """Frame, grid, ticks and labels of a plot area at (x0, y0) of size w x h."""
    for t in yticks:
        y = ys(t)
        c.line(x0, y, x0 + w, y, stroke="#e3e3e3")
        c.text(x0 - 5, y + 3.5, tick_label(t), size=10, anchor="end")
    if xs is not None:
        for t in xticks:
            x = xs(t)
            c.line(x, y0, x, y0 + h, stroke="#eeeeee")
            c.text(x, y0 + h + 13, tick_label(t), size=10, anchor="middle")
    if xcats is not None:
        step = w / max(len(xcats), 1)
        for i, cat in enumerate(xcats):
            c.text(x0 + step * (i + 0.5), y0 + h + 13, cat, size=10, anchor="middle")
    c.line(x0, y0 + h, x0 + w, y0 + h)
    c.line(x0, y0, x0, y0 + h)
    c.text(x0 + w / 2, y0 + h + 30, xlabel, size=11, anchor="middle")
    c.text(x0 - 38, y0 + h / 2, ylabel, size=11, anchor="middle", rotate=-90)


def legend(c: Canvas, x, y, names: Sequence[str], colours: Sequence[str], size=10) -> None:
    for i, (name, col) in enumerate(zip(names, colours)):
        c.rect(x, y + i * 15 - 8, 10, 10, col)
        c.text(x + 14, y + i * 15 + 1, name, size=size)


# ------------------------------------------------------------------------------ charts


def bar_chart(labels: Sequence[str], values: Sequence[float | None], fills: Sequence[str], ylabel: str,
              title: str, ylim: tuple[float, float], tips: Sequence[str], width=560, height=250) -> str:
    """Vertical bars, one per label (e.g. a model's similarity per transformation)."""
    c = Canvas(width, height, title)
    x0, y0, w, h = 52, 26, width - 62, height - 26 - 86
    ys = Linear(ylim[0], ylim[1], y0 + h, y0)
    c.text(x0, 15, title, size=12, weight="bold")
    axes(c, x0, y0, w, h, None, ys, [], nice_ticks(*ylim), "", ylabel)
    step = w / max(len(labels), 1)
    base = ys(max(ylim[0], min(0.0, ylim[1])))
    for i, (label, v, fill, tip) in enumerate(zip(labels, values, fills, tips)):
        x = x0 + step * i + step * 0.15
        if v is not None and math.isfinite(v):
            top = ys(min(max(v, ylim[0]), ylim[1]))
            c.rect(x, min(top, base), step * 0.7, abs(base - top), fill, tip=tip)
        else:
            c.text(x + step * 0.35, base - 3, "n/a", size=8, anchor="middle", fill="#888")
        c.text(x + step * 0.35, y0 + h + 8, label, size=10, anchor="end", rotate=-55, baseline="middle")
    return c.render()


def line_chart(series: dict[str, list[tuple[float, float | None, str]]], colours: dict[str, str],
               xlabel: str, ylabel: str, title: str, xcats: Sequence[str] | None = None,
               width=460, height=290) -> str:
    """One line per series over a numeric x axis (``xcats``: categories at x = 0, 1, ...).
    Points are (x, y, tip); a None y breaks the line."""
    c = Canvas(width, height, title)
    legend_w = 130
    x0, y0, w, h = 56, 26, width - 56 - legend_w - 10, height - 26 - 46
    all_x = [x for pts in series.values() for x, _, _ in pts]
    all_y = [y for pts in series.values() for _, y, _ in pts if y is not None]
    if xcats is not None:
        xs = Linear(-0.5, len(xcats) - 0.5, x0, x0 + w)
        xticks: list[float] = []
    else:
        xlo, xhi = padded_range(all_x, 0.03)
        xs = Linear(xlo, xhi, x0, x0 + w)
        xticks = nice_ticks(xlo, xhi, 6)
    ylo, yhi = padded_range(all_y)
    ys = Linear(ylo, yhi, y0 + h, y0)
    c.text(x0, 15, title, size=12, weight="bold")
    axes(c, x0, y0, w, h, xs if xcats is None else None, ys, xticks, nice_ticks(ylo, yhi), xlabel, ylabel, xcats)
    for name, pts in series.items():
        col = colours[name]
        run: list[tuple[float, float]] = []
        for x, y, _ in pts:
            if y is None:
                if len(run) > 1:
                    c.polyline(run, col)
                run = []
            else:
                run.append((xs(x), ys(y)))
        if len(run) > 1:
            c.polyline(run, col)
        for x, y, tip in pts:
            if y is not None:
                c.circle(xs(x), ys(y), 2.6, col, tip=tip)
    legend(c, x0 + w + 14, y0 + 6, list(series), [colours[n] for n in series])
    return c.render()


def heat_panels(panels: list[tuple[str, list[list[float | None]], list[list[str]]]], xcats: Sequence[str],
                ycats: Sequence[str], xlabel: str, ylabel: str, title: str, lo: float, hi: float,
                cell=34, diverge=False, labels: list[list[list[str]]] | None = None, colorbar_label: str = "",
                cell_h: float | None = None) -> str:
    """Heat maps side by side sharing axes and colour scale: one per panel (name, matrix
    [row][col], tips [row][col]); rows are ``ycats`` (drawn top to bottom), columns ``xcats``.
    ``labels`` (one per panel, [row][col] text) is written into the cells; cells are
    ``cell`` wide and ``cell_h`` (default: ``cell``) high."""
    ch = cell_h or cell
    ylab_w = max(40, 7 * max((len(s) for s in ycats), default=0) + 14)
    pw, ph = cell * len(xcats), ch * len(ycats)
    xlab_h = max(30, 4.6 * max((len(s) for s in xcats), default=0) + 14)  # names slanted at 45 degrees
    gap = 26
    width = ylab_w + 18 + len(panels) * pw + (len(panels) - 1) * gap + 80
    height = 34 + 16 + ph + xlab_h + 24
    c = Canvas(max(width, 260, 7.4 * len(title) + 20), height, title)
    c.text(8, 15, title, size=12, weight="bold")
    top = 50
    for k, (name, matrix, tips) in enumerate(panels):
        x0 = ylab_w + 18 + k * (pw + gap)
        c.text(x0 + pw / 2, top - 6, name, size=11, anchor="middle", weight="bold")
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                fill = diverging(v) if diverge else sequential(v, lo, hi)
                c.rect(x0 + j * cell, top + i * ch, cell, ch, fill, stroke="white", tip=tips[i][j])
                if labels is not None and labels[k][i][j]:
                    lines = labels[k][i][j].split("\n")
                    for li, part in enumerate(lines):
                        y = top + (i + 0.5) * ch + 4 + (li - (len(lines) - 1) / 2) * 11
                        c.text(x0 + (j + 0.5) * cell, y, part, size=9.5 if li == 0 else 8.5, anchor="middle",
                               fill=text_on(fill))
        for j, xc in enumerate(xcats):
            cx = x0 + (j + 0.5) * cell
            if len(xc) > 4:  # long names slant down from the column
                c.text(cx, top + ph + 8, xc, size=10, anchor="end", rotate=-45, baseline="middle")
            else:
                c.text(cx, top + ph + 13, xc, size=10, anchor="middle")
        if k == 0:
            for i, yc in enumerate(ycats):
                c.text(x0 - 5, top + (i + 0.5) * ch + 3.5, yc, size=10, anchor="end")
    last = ylab_w + 18 + len(panels) * pw + (len(panels) - 1) * gap
    # colour bar
    bx, steps = last + 16, 24
    for s in range(steps):
        v_hi = hi - (hi - lo) * s / steps
        fill = diverging(v_hi) if diverge else sequential(v_hi, lo, hi)
        c.rect(bx, top + ph * s / steps, 10, ph / steps + 0.5, fill)
    c.text(bx + 13, top + 8, tick_label(hi), size=9)
    c.text(bx + 13, top + ph, tick_label(lo), size=9)
    if colorbar_label:
        c.text(bx + 5, top + ph + 14, colorbar_label, size=9, anchor="middle")
    c.text(ylab_w + 18 + (last - ylab_w - 18) / 2, height - 8, xlabel, size=11, anchor="middle")
    if ph >= 6.5 * len(ylabel):
        c.text(12, top + ph / 2, ylabel, size=11, anchor="middle", rotate=-90)
    else:  # too short a map for a vertical title: write it under the figure's title
        c.text(8, 32, ylabel, size=11)
    return c.render()


def scatter(points: list[tuple[str, float, float, str]], xlabel: str, ylabel: str, title: str,
            subtitle: str = "", width=400, height=300) -> str:
    """Labelled points (label, x, y, colour): one per model."""
    c = Canvas(width, height, title)
    x0, y0, w, h = 60, 44, width - 60 - 24, height - 44 - 46
    xlo, xhi = padded_range([p[1] for p in points], 0.12)
    ylo, yhi = padded_range([p[2] for p in points], 0.12)
    xs, ys = Linear(xlo, xhi, x0, x0 + w), Linear(ylo, yhi, y0 + h, y0)
    c.text(8, 15, title, size=12, weight="bold")
    if subtitle:
        c.text(8, 31, subtitle, size=10.5, fill="#444")
    axes(c, x0, y0, w, h, xs, ys, nice_ticks(xlo, xhi, 5), nice_ticks(ylo, yhi), xlabel, ylabel)
    for label, x, y, col in points:
        px, py = xs(x), ys(y)
        c.circle(px, py, 4.5, col, tip=f"{label}: {x:.4g}, {y:.4g}")
        right = px < x0 + w * 0.7
        c.text(px + (7 if right else -7), py - 6, label, size=10, anchor="start" if right else "end")
    return c.render()
