"""The demo pool's procedural painter: one scene class at a time, every choice drawn from
the image's own random stream (``sslinv.data.demo`` names the classes, seeds the streams
and writes the pool).

What the images are for: transformations (rotation, flips, crops, colour jitter, blur,
grey-scale...) must change them, and a small CNN's features over the pool must have a
well-conditioned covariance. Hence off-centre objects, a horizon, light from one side
and cast shadows (so flips and rotations are visible); the full hue circle and dark,
bright, pastel and near-grey palettes (so colour transformations matter); textures at
several scales plus mild pixel noise (so no image is piecewise flat).

Any change to what this module paints changes the pool: bump ``DEMO_VERSION`` in
``sslinv.data.demo``.

The texture recipes are the textbook ones: value noise summed over octaves (fractal
noise, after Perlin's "An image synthesizer", SIGGRAPH 1985, with lattice values in
place of gradients), domain-warped sine veins for marble, and a Voronoi diagram for the
mosaic.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable

import numpy as np

SIZE_RANGE = (256, 352)  # width and height, each drawn uniformly in this closed range

Rgb = np.ndarray  # shape (3,), float32 in [0, 1]
Field = np.ndarray  # shape (H, W) or broadcastable to it, float32
Sdf = Callable[[np.ndarray, np.ndarray], np.ndarray]  # signed distance in pixels, < 0 inside


# --------------------------------------------------------------------------- the canvas


class _Scene:
    """A float RGB canvas plus the per-image choices every painter shares.

    Coordinates are pixel centres as broadcastable grids (``X`` is 1xW, ``Y`` is Hx1),
    so fields cost one full-size array per operation and no meshgrid.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.w = int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1))
        self.h = int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1))
        self.X = np.arange(self.w, dtype=np.float32)[None, :] + 0.5
        self.Y = np.arange(self.h, dtype=np.float32)[:, None] + 0.5
        self.size = float(min(self.w, self.h))
        # Light comes from one side (upper left or upper right, never straight above), so
        # a horizontal flip moves highlights and shadows.
        side = 1.0 if rng.random() < 0.5 else -1.0
        ang = math.radians(rng.uniform(20.0, 70.0))
        self.light = (side * math.cos(ang), -math.sin(ang))  # unit vector towards the light
        self.img = np.zeros((self.h, self.w, 3), np.float32)
        self.x0 = self.y0 = 0  # where this canvas sits in the image (non-zero for a window)

    def window(self, cx: float, cy: float, reach: float) -> _Scene:
        """A view of the square of half-side ``reach`` around (cx, cy), clipped to the image.

        Painting an object only where it can reach (shadow included) keeps the cost per
        object proportional to its area. The view shares ``img``, so painting it paints
        the image. Object centres lie inside the image, so a window is never empty.
        """
        x0 = min(max(int(cx - reach), self.x0), self.x0 + self.w - 1)
        x1 = max(min(int(cx + reach) + 1, self.x0 + self.w), x0 + 1)
        y0 = min(max(int(cy - reach), self.y0), self.y0 + self.h - 1)
        y1 = max(min(int(cy + reach) + 1, self.y0 + self.h), y0 + 1)
        sub = object.__new__(_Scene)
        sub.__dict__.update(self.__dict__)
        sub.x0, sub.y0, sub.w, sub.h = x0, y0, x1 - x0, y1 - y0
        sub.X = self.X[:, x0 - self.x0 : x1 - self.x0]
        sub.Y = self.Y[y0 - self.y0 : y1 - self.y0]
        sub.img = self.img[y0 - self.y0 : y1 - self.y0, x0 - self.x0 : x1 - self.x0]
        return sub

    def uniform(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def point(self, margin: float = 0.1) -> tuple[float, float]:
        """A random point, usually off-centre."""
        return (self.x0 + self.uniform(margin, 1 - margin) * self.w,
                self.y0 + self.uniform(margin, 1 - margin) * self.h)

    def paint(self, sdf: Sdf, fill: np.ndarray, shadow: bool = True) -> None:
        """Composite ``fill`` inside the shape, after a soft shadow cast away from the light."""
        if shadow:
            off = 0.03 * self.size
            sd = sdf(self.X + off * self.light[0], self.Y + off * self.light[1])
            a = np.clip(0.5 - sd / (0.02 * self.size), 0.0, 1.0) * 0.45
            self.img *= (1.0 - a)[..., None]
        a = np.clip(0.5 - sdf(self.X, self.Y), 0.0, 1.0)[..., None]  # one-pixel anti-aliasing
        self.img += a * (fill - self.img)

    def shaded(
        self, colour: Rgb, cx: float, cy: float, r: float, texture: bool | None = None
    ) -> np.ndarray:
        """A fill for an object at (cx, cy), radius ``r``: lit from one side, maybe textured."""
        lx, ly = self.light
        if self.rng.random() < 0.5:  # linear light gradient across the object
            s = 1.0 + 0.45 * ((self.X - cx) * lx + (self.Y - cy) * ly) / r
            s = np.clip(s, 0.35, 1.5)
        else:  # radial highlight offset towards the light (a glossy ball)
            hx, hy = cx + 0.45 * r * lx, cy + 0.45 * r * ly
            d2 = (self.X - hx) ** 2 + (self.Y - hy) ** 2
            s = 0.45 + 0.85 * np.exp(-d2 / (2 * (0.7 * r) ** 2))
        fill = colour * s[..., None]
        if texture is None:
            texture = self.rng.random() < 0.45
        if texture:
            t = self.pattern(scale=r)
            other = _jitter_colour(self.rng, colour)
            fill = fill + 0.5 * (t[..., None] * (other - colour)) * s[..., None]
        return fill.astype(np.float32)

    def pattern(self, scale: float | None = None) -> np.ndarray:
        """A random texture in [0, 1]: grating, stripes, checkers, rings or fractal noise."""
        rng = self.rng
        scale = scale or self.size
        kind = int(rng.integers(5))
        period = self.uniform(0.12, 0.5) * scale
        theta = self.uniform(0, math.pi)
        if kind == 0:
            phase = 2 * math.pi * _along(self, theta) / period + self.uniform(0, 6.3)
            return 0.5 + 0.5 * np.sin(phase)
        if kind == 1:
            return _square(2 * math.pi * _along(self, theta) / period + self.uniform(0, 6.3))
        if kind == 2:
            u = 2 * math.pi * _along(self, theta) / period
            v = 2 * math.pi * _along(self, theta + math.pi / 2) / period
            return _square_field(np.sin(u) * np.sin(v))
        if kind == 3:
            cx, cy = self.point(0.0)
            rho = np.sqrt((self.X - cx) ** 2 + (self.Y - cy) ** 2)
            return 0.5 + 0.5 * np.sin(2 * math.pi * rho / period)
        cells = max(2, int(round(min(self.h, self.w) / (0.5 * scale))))
        return value_noise(rng, self.h, self.w, cells=cells, octaves=3)

    def finish(self) -> np.ndarray:
        """Global light falloff from the light's side and mild pixel noise; to uint8."""
        rng = self.rng
        lx, ly = self.light
        g = self.uniform(0.0, 0.35)
        ramp = ((self.X / self.w - 0.5) * lx + (self.Y / self.h - 0.5) * ly)
        img = self.img * (1.0 + g * ramp)[..., None]
        sigma = self.uniform(0.01, 0.03)
        img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
        return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- textures


def value_noise(rng: np.random.Generator, h: int, w: int, cells: int = 4, octaves: int = 4,
                persistence: float = 0.5) -> np.ndarray:
    """Fractal value noise in [0, 1], shape (h, w): random lattices, smoothstep-interpolated.

    Octave ``o`` has ``cells * 2**o`` lattice cells along the shorter side; interpolation is
    separable (rows, then columns), so each octave costs two gathers of the output size.
    """
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    short = min(h, w)
    for o in range(octaves):
        g = cells * 2**o
        gy, gx = max(1, round(g * h / short)), max(1, round(g * w / short))
        lattice = rng.random((gy + 1, gx + 1), dtype=np.float32)
        ys = (np.arange(h, dtype=np.float32) + 0.5) * (gy / h)
        xs = (np.arange(w, dtype=np.float32) + 0.5) * (gx / w)
        iy, ix = ys.astype(np.int64), xs.astype(np.int64)
        fy, fx = _smoothstep(ys - iy), _smoothstep(xs - ix)
        rows = lattice[:, ix] * (1 - fx) + lattice[:, ix + 1] * fx
        out += amp * (rows[iy] * (1 - fy)[:, None] + rows[iy + 1] * fy[:, None])
        total += amp
        amp *= persistence
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


def _along(sc: _Scene, theta: float) -> np.ndarray:
    return sc.X * math.cos(theta) + sc.Y * math.sin(theta)


def _square(phase: np.ndarray) -> np.ndarray:
    """A square wave in [0, 1] with soft (about one pixel) edges."""
    return _square_field(np.sin(phase))


def _square_field(v: np.ndarray) -> np.ndarray:
    return np.clip(0.5 + 4.0 * v, 0.0, 1.0)


def _ramp(t: np.ndarray, colours: list[Rgb]) -> np.ndarray:
    """Map a field in [0, 1] through a piecewise-linear colour ramp -> (H, W, 3)."""
    stops = np.linspace(0.0, 1.0, len(colours))
    t = np.clip(t, 0.0, 1.0)
    out = np.empty(t.shape + (3,), np.float32)
    for c in range(3):
        out[..., c] = np.interp(t, stops, [col[c] for col in colours])
    return out


def _gradient(t: np.ndarray, a: Rgb, b: Rgb) -> np.ndarray:
    return (a + (b - a) * t[..., None]).astype(np.float32)


# --------------------------------------------------------------------------- colours


def hsv(h: float, s: float, v: float) -> Rgb:
    """An RGB colour from hue in turns (wrapped), saturation and value in [0, 1]."""
    s, v = min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


def _jitter_colour(rng: np.random.Generator, colour: Rgb) -> Rgb:
    h, s, v = colorsys.rgb_to_hsv(*[float(c) for c in colour])
    dh, ds, dv = rng.uniform(-0.25, 0.25), rng.uniform(-0.3, 0.3), rng.uniform(-0.35, 0.35)
    return hsv(h + dh, s + ds, v + dv)


def _vivid(rng: np.random.Generator, hue: float | None = None) -> Rgb:
    hue = rng.random() if hue is None else hue
    return hsv(hue, rng.uniform(0.55, 1.0), rng.uniform(0.45, 1.0))


# --------------------------------------------------------------------------- shapes


def ellipse(cx: float, cy: float, a: float, b: float, angle: float = 0.0) -> Sdf:
    c, s = math.cos(angle), math.sin(angle)

    def sdf(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        u = (X - cx) * c + (Y - cy) * s
        v = (Y - cy) * c - (X - cx) * s
        return (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * min(a, b)

    return sdf


def ring(cx: float, cy: float, r: float, width: float) -> Sdf:
    def sdf(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.abs(np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) - r) - width / 2

    return sdf


def polygon(vertices: np.ndarray) -> Sdf:
    """A convex polygon: the largest signed distance to its edge lines (exact near edges)."""
    v = np.asarray(vertices, np.float64)
    x, y = v[:, 0], v[:, 1]
    if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) < 0:
        v = v[::-1]
    planes = []
    for p0, p1 in zip(v, np.roll(v, -1, axis=0)):
        dx, dy = p1 - p0
        norm = math.hypot(dx, dy) or 1.0
        nx, ny = dy / norm, -dx / norm  # outward for counter-clockwise order
        planes.append((np.float32(nx), np.float32(ny), np.float32(nx * p0[0] + ny * p0[1])))

    def sdf(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        out = None
        for nx, ny, c in planes:
            d = X * nx + Y * ny - c
            out = d if out is None else np.maximum(out, d)
        return out

    return sdf


def regular_polygon(cx: float, cy: float, r: float, k: int, angle: float) -> Sdf:
    t = angle + np.arange(k) * 2 * math.pi / k
    return polygon(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1))


def rectangle(cx: float, cy: float, w: float, h: float, angle: float) -> Sdf:
    c, s = math.cos(angle), math.sin(angle)
    corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    rot = np.array([[c, -s], [s, c]])
    return polygon(corners @ rot.T + [cx, cy])


def star(cx: float, cy: float, r_out: float, r_in: float, k: int, angle: float) -> Sdf:
    def sdf(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        dx, dy = X - cx, Y - cy
        t = (k * (np.arctan2(dy, dx) - angle) / (2 * math.pi)) % 1.0
        r = r_in + (r_out - r_in) * np.abs(2 * t - 1)
        return (np.sqrt(dx * dx + dy * dy) - r) * 0.8

    return sdf


def random_shape(sc: _Scene, cx: float, cy: float, r: float, kinds: str = "ecrptsg") -> Sdf:
    """One of: e(llipse), c(ircle), r(ectangle), p(olygon), t(riangle), s(tar), g (rin)g."""
    rng = sc.rng
    kind = kinds[int(rng.integers(len(kinds)))]
    angle = sc.uniform(0, 2 * math.pi)
    if kind == "e":
        return ellipse(cx, cy, r, r * sc.uniform(0.35, 0.9), angle)
    if kind == "c":
        return ellipse(cx, cy, r, r)
    if kind == "r":
        return rectangle(cx, cy, 2 * r, 2 * r * sc.uniform(0.3, 1.0), angle)
    if kind == "p":
        return regular_polygon(cx, cy, r, int(rng.integers(5, 9)), angle)
    if kind == "t":
        # Corners a third of a turn apart, jittered: varied but never a needle.
        t = angle + np.array([0.0, 2.0, 4.0]) * math.pi / 3 + rng.uniform(-0.6, 0.6, 3)
        rad = r * rng.uniform(0.7, 1.2, 3)
        return polygon(np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], axis=1))
    if kind == "s":
        return star(cx, cy, r, r * sc.uniform(0.35, 0.6), int(rng.integers(4, 8)), angle)
    return ring(cx, cy, r * 0.8, r * sc.uniform(0.15, 0.45))


def _objects(sc: _Scene, colour: Callable[[], Rgb], kinds: str = "ecrptsg", lo: float = 0.07,
             hi: float = 0.22, count: tuple[int, int] = (2, 6),
             where: Callable[[], tuple[float, float]] | None = None, shadow: bool = True) -> None:
    """Paint 2-6 shaded objects, largest first, so small ones stay visible on top."""
    k = int(sc.rng.integers(count[0], count[1] + 1))
    radii = sorted((sc.uniform(lo, hi) * sc.size for _ in range(k)), reverse=True)
    for r in radii:
        cx, cy = where() if where else sc.point()
        sdf = random_shape(sc, cx, cy, r, kinds)
        # Reach: a rectangle's corner (r * sqrt 2) plus the shadow's offset and blur.
        view = sc.window(cx, cy, 1.5 * r + 0.06 * sc.size + 2)
        view.paint(sdf, view.shaded(colour(), cx, cy, r), shadow=shadow)


# --------------------------------------------------------------------------- scene classes


def _checkers(sc: _Scene) -> None:
    """A rotated checkerboard in two hues, lit from one side; rectangles and polygons on top."""
    rng = sc.rng
    hue = rng.random()
    a = _vivid(rng, hue)
    b = hsv(hue + rng.choice([0.08, 0.33, 0.5, 0.66]), sc.uniform(0.2, 1.0), sc.uniform(0.15, 1.0))
    period = sc.uniform(0.08, 0.3) * sc.size
    theta = sc.uniform(0, math.pi)
    u = 2 * math.pi * _along(sc, theta) / period
    v = 2 * math.pi * _along(sc, theta + math.pi / 2) / period
    sc.img[:] = _gradient(_square_field(np.sin(u) * np.sin(v)), a, b)
    _objects(sc, lambda: _vivid(rng), kinds="rrppt")


def _gratings(sc: _Scene) -> None:
    """Sums of sinusoidal gratings through a three-colour ramp; rings and stars on top."""
    rng = sc.rng
    hue = rng.random()
    spread = sc.uniform(0.1, 0.45)
    colours = [hsv(hue + i * spread, sc.uniform(0.4, 1.0), sc.uniform(0.3, 1.0)) for i in range(3)]
    t = np.zeros((sc.h, sc.w), np.float32)
    k = int(rng.integers(1, 4))
    for _ in range(k):
        period = sc.uniform(0.04, 0.35) * sc.size
        phase = 2 * math.pi * _along(sc, sc.uniform(0, math.pi)) / period
        t = t + np.sin(phase + sc.uniform(0, 6.3))
    sc.img[:] = _ramp(0.5 + 0.5 * t / k, colours)
    _objects(sc, lambda: _vivid(rng), kinds="ggssc")


def _landscape(sc: _Scene) -> None:
    """Sky gradient over a tilted horizon, a sun on one side, fields of fractal noise, hills."""
    rng = sc.rng
    sky_hue = (0.58 + rng.normal(0, 0.12)) if rng.random() < 0.6 else rng.random()
    top = hsv(sky_hue, sc.uniform(0.4, 0.9), sc.uniform(0.35, 0.9))
    low = hsv(sky_hue + rng.normal(0, 0.08), sc.uniform(0.05, 0.4), sc.uniform(0.75, 1.0))
    horizon = sc.uniform(0.3, 0.65) * sc.h + np.tan(sc.uniform(-0.12, 0.12)) * (sc.X - sc.w / 2)
    sc.img[:] = _gradient(np.clip(sc.Y / horizon, 0, 1) ** 1.5, top, low)

    # Sun (or moon) with a glow, on the side of the light.
    sx = sc.w * (0.5 + sc.light[0] * sc.uniform(0.15, 0.4))
    sy = float(horizon.mean()) * sc.uniform(0.15, 0.6)
    sr = sc.uniform(0.04, 0.1) * sc.size
    glow = np.exp(-((sc.X - sx) ** 2 + (sc.Y - sy) ** 2) / (2 * (3 * sr) ** 2))
    sun = hsv(sc.uniform(0.0, 0.17), sc.uniform(0.0, 0.6), 1.0)
    sc.img += 0.35 * glow[..., None] * (sun - sc.img)
    sc.paint(ellipse(sx, sy, sr, sr), sun, shadow=False)

    # Distant hills: triangles standing on the horizon.
    hill = hsv(sc.uniform(0.2, 0.75), sc.uniform(0.15, 0.5), sc.uniform(0.25, 0.6))
    for _ in range(int(rng.integers(1, 4))):
        x0, half = sc.uniform(-0.1, 1.1) * sc.w, sc.uniform(0.15, 0.4) * sc.w
        base = float(np.interp(x0, sc.X[0], horizon[0])) + 2
        peak = base - sc.uniform(0.08, 0.3) * sc.h
        top_x = x0 + sc.uniform(-0.3, 0.3) * half
        tri = np.array([[x0 - half, base], [x0 + half, base], [top_x, peak]])
        fill = sc.shaded(_jitter_colour(rng, hill), x0, (base + peak) / 2, half, texture=False)
        sc.paint(polygon(tri), fill, shadow=False)

    # Ground: fractal noise between two earth/grass hues, furrows converging to the horizon.
    g_hue = rng.choice([0.08, 0.13, 0.25, 0.33]) + rng.normal(0, 0.04)
    n = value_noise(rng, sc.h, sc.w, cells=int(rng.integers(3, 8)), octaves=5)
    depth = np.maximum(sc.Y - horizon + 8, 8)  # furrows converge on the horizon's midpoint
    furrow = 0.5 + 0.5 * np.sin(2 * math.pi * (sc.X - sc.w / 2) / depth * 6)
    t = 0.7 * n + 0.3 * furrow * (rng.random() < 0.5)
    ground = _gradient(t, hsv(g_hue, sc.uniform(0.4, 0.9), sc.uniform(0.2, 0.5)),
                       hsv(g_hue + 0.05, sc.uniform(0.3, 0.8), sc.uniform(0.5, 0.9)))
    below = np.clip(sc.Y - horizon + 0.5, 0, 1)[..., None]
    sc.img += below * (ground - sc.img)

    # Things on the ground, bigger when nearer.
    def on_ground() -> tuple[float, float]:
        x = sc.uniform(0.05, 0.95) * sc.w
        return x, sc.uniform(float(horizon.max()) + 0.05 * sc.h, 0.95 * sc.h)

    _objects(sc, lambda: _vivid(rng), kinds="ecrpts", lo=0.05, hi=0.14, where=on_ground)


def _marble(sc: _Scene) -> None:
    """Domain-warped veins through a colour ramp; glossy balls and ellipses on top."""
    rng = sc.rng
    hue = rng.random()
    colours = [
        hsv(hue + rng.normal(0, 0.1 * i), sc.uniform(0.1, 0.8), sc.uniform(0.25, 1.0))
        for i in range(3)
    ]
    warp = value_noise(rng, sc.h, sc.w, cells=int(rng.integers(2, 5)), octaves=5)
    period = sc.uniform(0.15, 0.5) * sc.size
    phase = 2 * math.pi * _along(sc, sc.uniform(0, math.pi)) / period
    veins = np.abs(np.sin(phase + sc.uniform(3, 9) * warp))
    sc.img[:] = _ramp(veins ** sc.uniform(0.3, 1.0), colours)
    _objects(sc, lambda: _vivid(rng), kinds="ccee")


def _mosaic(sc: _Scene) -> None:
    """Voronoi tiles, each its own colour and shading, with grout lines; polygons on top."""
    rng = sc.rng
    k = int(rng.integers(8, 33))
    sx = rng.uniform(0, sc.w, k).astype(np.float32)
    sy = rng.uniform(0, sc.h, k).astype(np.float32)
    d2 = (sc.X[..., None] - sx) ** 2 + (sc.Y[..., None] - sy) ** 2  # (H, W, k)
    two = np.partition(d2, 1, axis=-1)[..., :2]
    cell = np.argmin(d2, axis=-1)
    hue, spread = rng.random(), sc.uniform(0.1, 1.0)
    tiles = np.stack([hsv(hue + spread * rng.random(), sc.uniform(0.3, 1.0), sc.uniform(0.35, 1.0))
                      for _ in range(k)])
    d1 = np.sqrt(two[..., 0])
    shade = 1.0 - 0.35 * np.clip(d1 / (0.5 * sc.size / math.sqrt(k)), 0, 1.5)
    sc.img[:] = tiles[cell] * shade[..., None]
    grout = np.clip((np.sqrt(two[..., 1]) - d1) / 3.0, 0, 1)[..., None]
    sc.img[:] = sc.img * grout + hsv(hue, 0.2, sc.uniform(0.05, 0.9)) * (1 - grout)
    _objects(sc, lambda: _vivid(rng), kinds="tpr")


def _night(sc: _Scene) -> None:
    """Dark sky, stars, a glowing moon off to one side, silhouettes along the bottom."""
    rng = sc.rng
    hue = sc.uniform(0.55, 0.8) if rng.random() < 0.7 else rng.random()
    zenith = hsv(hue, sc.uniform(0.5, 1.0), sc.uniform(0.02, 0.12))
    low = hsv(hue + 0.05, sc.uniform(0.3, 0.8), sc.uniform(0.12, 0.35))
    sc.img[:] = _gradient(np.clip(sc.Y / sc.h, 0, 1), zenith, low)
    stars = rng.random((sc.h, sc.w), dtype=np.float32) > sc.uniform(0.996, 0.999)
    stars = stars.astype(np.float32)
    stars = np.maximum(stars, 0.5 * np.maximum(np.roll(stars, 1, 0), np.roll(stars, 1, 1)))
    sc.img += stars[..., None] * (hsv(rng.random(), 0.2, 1.0) - sc.img) * 0.9
    mx = sc.w * (0.5 + sc.light[0] * sc.uniform(0.1, 0.4))
    my, mr = sc.uniform(0.1, 0.4) * sc.h, sc.uniform(0.05, 0.12) * sc.size
    moon = hsv(rng.random(), sc.uniform(0.0, 0.5), 1.0)
    glow = np.exp(-((sc.X - mx) ** 2 + (sc.Y - my) ** 2) / (2 * (2.5 * mr) ** 2))
    sc.img += 0.4 * glow[..., None] * (moon - sc.img)
    view = sc.window(mx, my, mr + 2)
    view.paint(ellipse(mx, my, mr, mr), view.shaded(moon, mx, my, mr, texture=True), shadow=False)
    # Glowing lanterns / planets: small bright saturated objects.
    _objects(sc, lambda: hsv(rng.random(), sc.uniform(0.6, 1.0), 1.0), kinds="ccsg",
             lo=0.03, hi=0.08, count=(1, 3), shadow=False)
    # Skyline: dark rectangles standing on the bottom edge.
    dark = hsv(hue, sc.uniform(0.2, 0.6), sc.uniform(0.02, 0.1))
    for _ in range(int(rng.integers(2, 7))):
        bw, bh = sc.uniform(0.06, 0.2) * sc.w, sc.uniform(0.1, 0.45) * sc.h
        bx = sc.uniform(0, 1) * sc.w
        sc.paint(rectangle(bx, sc.h - bh / 2 + 2, bw, bh + 4, 0.0), dark, shadow=False)
        lit = _square_field(np.sin(sc.X * 0.9) * np.sin(sc.Y * 0.7)) * (rng.random() < 0.5)
        win = rectangle(bx, sc.h - bh / 2 + 2, bw * 0.8, bh * 0.9, 0.0)(sc.X, sc.Y) < 0
        sc.img += (0.6 * lit * win)[..., None] * (hsv(0.13, 0.6, 1.0) - sc.img)


def _pastel(sc: _Scene) -> None:
    """Bright, washed-out colours: soft blobs of low-saturation noise, pastel shapes."""
    rng = sc.rng
    hue = rng.random()
    a = hsv(hue, sc.uniform(0.05, 0.35), sc.uniform(0.8, 1.0))
    b = hsv(hue + sc.uniform(-0.3, 0.3), sc.uniform(0.1, 0.4), sc.uniform(0.7, 1.0))
    sc.img[:] = _gradient(value_noise(rng, sc.h, sc.w, cells=2, octaves=4, persistence=0.6), a, b)

    def pastel() -> Rgb:
        return hsv(rng.random(), sc.uniform(0.15, 0.45), sc.uniform(0.8, 1.0))

    _objects(sc, pastel, kinds="ecsgp", lo=0.08, hi=0.25)


def _stone(sc: _Scene) -> None:
    """Near-grey granite (fine fractal noise, faint tint) with pebbles and slabs."""
    rng = sc.rng
    tint = rng.random()
    v0 = sc.uniform(0.15, 0.75)
    n = value_noise(rng, sc.h, sc.w, cells=int(rng.integers(4, 12)), octaves=5, persistence=0.65)
    speck = (rng.random((sc.h, sc.w), dtype=np.float32) - 0.5) * sc.uniform(0.05, 0.2)
    t = n + speck
    dark = hsv(tint, sc.uniform(0.0, 0.12), v0 * 0.6)
    sc.img[:] = _gradient(t, dark, hsv(tint, sc.uniform(0.0, 0.12), v0 * 1.3))

    def grey() -> Rgb:
        return hsv(tint + rng.normal(0, 0.1), sc.uniform(0.0, 0.18), sc.uniform(0.2, 0.95))

    _objects(sc, grey, kinds="eerpt", lo=0.08, hi=0.22)


#: The painter of each scene class (``sslinv.data.demo.CLASSES``).
PAINTERS: dict[str, Callable[[_Scene], None]] = {
    "checkers": _checkers,
    "gratings": _gratings,
    "landscape": _landscape,
    "marble": _marble,
    "mosaic": _mosaic,
    "night": _night,
    "pastel": _pastel,
    "stone": _stone,
}


def render(name: str, rng: np.random.Generator) -> np.ndarray:
    """One image of scene class ``name`` as uint8 RGB (H, W, 3), every choice drawn from ``rng``."""
    sc = _Scene(rng)
    PAINTERS[name](sc)
    return sc.finish()
