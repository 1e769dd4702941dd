"""Real parameter axes for the synthetic curves, from the grid values in the result file.

A result file records, for each view of a transformation, its grid value
(``transform.values``): a number (degrees, a factor, sigma, bits), a toggle (False/True),
a pair (translation dx, dy in pixels; shear x, y in degrees) or a crop box (top, left,
height, width in pixels of the resized image). ``curve_axis`` turns one curve into what
a figure draws: a line over the real values, two points for a toggle, a 2-D map over a
pair grid, or a line over the crop boxes' area with each box named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Axis titles of the 2-D grids, per dimension.
PAIR_LABELS = {
    "translation": ("shift dx (px of the resized image)", "shift dy (px)"),
    "shear": ("shear x (degrees)", "shear y (degrees)"),
}


@dataclass
class CurveAxis:
    """What to draw for one transformation's curves.

    kind: "line" (x numbers), "toggle" (x categories), "grid" (2-D map) or "boxes"
    (line over crop area). For "line"/"boxes"/"toggle": ``x`` holds one x per curve
    point (duplicates averaged by ``points``). For "grid": ``gx``/``gy`` the sorted
    distinct values of each dimension and ``cells`` the (row, col) of each curve point.
    """

    kind: str
    xlabel: str
    x: list[float] = field(default_factory=list)
    tips: list[str] = field(default_factory=list)
    categories: list[str] | None = None
    ylabel: str = ""
    gx: list[float] = field(default_factory=list)
    gy: list[float] = field(default_factory=list)
    cells: list[tuple[int, int]] = field(default_factory=list)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def describe(transform: str) -> str:
    """The family's own description of its parameter ("rotation angle, degrees")."""
    from sslinv.errors import UnknownNameError
    from sslinv.transforms import FAMILIES

    try:
        return FAMILIES.get(transform).description
    except UnknownNameError:  # a transformation this version does not know: plain wording
        return "parameter value"


def curve_axis(transform: str, values: list[Any], resize: int | None = None) -> CurveAxis | None:
    """The axis of ``transform`` given its grid ``values``; None for a shape not known."""
    if not values:
        return None
    desc = describe(transform)
    if all(isinstance(v, bool) for v in values):
        cats = ["off (identity)" if not v else "on" for v in values]
        return CurveAxis("toggle", desc, x=[float(v) for v in values], tips=cats, categories=["off", "on"])
    if all(_number(v) for v in values):
        return CurveAxis("line", desc, x=[float(v) for v in values], tips=[f"{desc}: {_fmt(v)}" for v in values])
    if all(isinstance(v, list) and len(v) == 2 and all(_number(a) for a in v) for v in values):
        xl, yl = PAIR_LABELS.get(transform, (f"{desc}: first", f"{desc}: second"))
        gx = sorted({float(v[0]) for v in values})
        gy = sorted({float(v[1]) for v in values})
        cells = [(gy.index(float(v[1])), gx.index(float(v[0]))) for v in values]
        tips = [f"{transform} ({_fmt(v[0])}, {_fmt(v[1])})" for v in values]
        return CurveAxis("grid", xl, ylabel=yl, gx=gx, gy=gy, cells=cells, tips=tips)
    if all(isinstance(v, list) and len(v) == 4 and all(_number(a) for a in v) for v in values):
        # Crop boxes (top, left, height, width): the x axis is the box's share of the
        # resized image (or its area in px^2 when the resize is not recorded).
        area = [float(v[2]) * float(v[3]) for v in values]
        if resize:
            x, label = [a / resize**2 for a in area], "crop box area (fraction of the resized image)"
        else:
            x, label = area, "crop box area (px^2)"
        tips = [f"box top {_fmt(v[0])}, left {_fmt(v[1])}, height {_fmt(v[2])}, width {_fmt(v[3])} px" for v in values]
        return CurveAxis("boxes", label, x=x, tips=tips)
    return None


def points(axis: CurveAxis, ys: list[float | None]) -> list[tuple[float, float | None, str]]:
    """(x, y, tip) of a line/toggle/boxes curve, sorted by x; points with the same x
    (deform repeats a sigma with new random fields) are averaged over their finite ys."""
    groups: dict[float, list[float]] = {}
    tips: dict[float, list[str]] = {}
    for x, y, tip in zip(axis.x, ys, axis.tips):
        groups.setdefault(x, [])
        tips.setdefault(x, []).append(tip)
        if y is not None:
            groups[x].append(y)
    out = []
    for x in sorted(groups):
        vals = groups[x]
        y = sum(vals) / len(vals) if vals else None
        n = len(tips[x])
        tip = tips[x][0] if n == 1 else f"{tips[x][0]} (mean of {n} views)"
        if axis.kind == "boxes" and n > 1:
            tip = "; ".join(tips[x])
        out.append((x, y, tip))
    return out


def grid_matrix(axis: CurveAxis, ys: list[float | None]) -> tuple[list[list[float | None]], list[list[str]]]:
    """A 2-D map [row = y value][col = x value] of one curve (mean over repeats)."""
    sums = [[0.0] * len(axis.gx) for _ in axis.gy]
    counts = [[0] * len(axis.gx) for _ in axis.gy]
    for (i, j), y in zip(axis.cells, ys):
        if y is not None:
            sums[i][j] += y
            counts[i][j] += 1
    matrix = [[sums[i][j] / counts[i][j] if counts[i][j] else None for j in range(len(axis.gx))]
              for i in range(len(axis.gy))]
    tips = [["" for _ in axis.gx] for _ in axis.gy]
    for (i, j), tip in zip(axis.cells, axis.tips):
        tips[i][j] = tip
    return matrix, tips
