"""Built-in demo tasks: groups of views under real-world-like changes, and labelled tasks.

``sslinv demo`` runs the whole study without downloads, so besides the demo image pool
(``sslinv.data.demo``) it needs stand-ins for the real-world datasets and the downstream
tasks. All are painted from the demo scenes, deterministically, into the cache::

    <cache>/demo/tasks-v2/
        viewpoint/g000/g000_v0.jpg ... g000_v7.jpg      a scene seen from 8 camera angles
        lighting/g000/g000_l0.jpg ... g000_l7.jpg       a scene under 8 light directions/colours
        classes/<class>/<class>_0000.jpg ...            new scenes of the 8 demo pool classes
        landmarks/images/0000.jpg ...                   scenes with three coloured markers
        landmarks/targets.csv                           index,x1,y1,x2,y2,x3,y3 (image pixels)

They are registered like the real datasets, so every command can use them by name
(their data root is ``<cache>/demo``, and they are generated on first use):

- ``sslinv realworld --dataset demo-viewpoint`` / ``demo-lighting`` (``load_groups``);
- ``sslinv downstream --dataset demo-classes`` (8-way accuracy) / ``demo-landmarks``
  (R^2 of the 6 marker coordinates) (``load``, train/test by ``split_of``).

- *viewpoint*: the scene as a plane seen by a pinhole camera turning (yaw -25..25
  degrees, with a little pitch and roll): a homography ``K R K^-1``, as a camera rotating
  about its centre sees a distant scene. Mostly spatial change.
- *lighting*: the scene lit from 8 directions around it (a directional gain field) with
  a light colour moving from warm to cold. Mostly appearance change.
- *landmarks*: square scenes carrying a red disc, a green square and a blue triangle at
  random places; the targets are their centres. Square images make the centre crop a
  pure rescaling, so targets in the final crop are ``xy * crop / side``.
- *classes*: 48 new scenes of each of the 8 demo pool classes (images the models never
  saw in pretraining), for a classification probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

TASKS_VERSION = "v2"
#: The folder under ``<cache>/demo`` (the data root of the built-in datasets).
DIRNAME = f"tasks-{TASKS_VERSION}"
N_GROUPS = 24
N_VIEWS = 8
N_LANDMARK_IMAGES = 384
N_CLASS_IMAGES = 384  # 48 per class
LANDMARK_SIDE = 288
JPEG_QUALITY = 95


def split_of(index: int) -> str:
    """Train/test split of landmark image ``index`` (or of the ``index``-th image of a
    class): every 4th is test."""
    return "test" if index % 4 == 3 else "train"


# Scenes for the tasks come from index ranges no demo pool of fewer than 10,000 images
# uses. Class images start at a multiple of 8, so image i has the pool's class i % 8.
TASK_SCENES = 10_000
CLASS_SCENES = 20_000


def _scene(index: int) -> np.ndarray:
    from sslinv.data.demo import render_image

    return np.asarray(render_image(TASK_SCENES + index), dtype=np.float32) / 255.0


def _to_jpeg(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path, quality=JPEG_QUALITY)


def viewpoint_views(scene: np.ndarray, n: int = N_VIEWS) -> list[np.ndarray]:
    import cv2

    h, w = scene.shape[:2]
    f = 1.2 * max(h, w)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    views = []
    for v in range(n):
        yaw = math.radians(-25 + 50 * v / max(1, n - 1))
        pitch = math.radians(8 * math.sin(2 * math.pi * v / n))
        roll = math.radians(4 * math.cos(2 * math.pi * v / n))
        cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
        R = (np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
             @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
             @ np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]]))
        H = K @ R @ np.linalg.inv(K)
        views.append(cv2.warpPerspective(scene, H, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101))
    return views


def lighting_views(scene: np.ndarray, n: int = N_VIEWS) -> list[np.ndarray]:
    h, w = scene.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx, yy = (xx - w / 2) / max(h, w), (yy - h / 2) / max(h, w)
    views = []
    for v in range(n):
        phi = 2 * math.pi * v / n
        gain = 0.55 + 0.9 * np.clip(0.5 + 1.2 * (xx * math.cos(phi) + yy * math.sin(phi)), 0, 1)
        t = v / max(1, n - 1)  # warm -> cold light
        tint = np.array([1.15 - 0.3 * t, 1.0, 0.85 + 0.3 * t], dtype=np.float32)
        views.append(scene * gain[..., None] * tint)
    return views


MARKERS = ("red_disc", "green_square", "blue_triangle")


def landmark_image(index: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[float, float]]]:
    import cv2

    scene = cv2.resize(_scene(1000 + index), (LANDMARK_SIDE, LANDMARK_SIDE), interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(scene * 0.8)
    s = LANDMARK_SIDE
    r = s // 14
    pts = []
    for m in range(3):
        x, y = (float(c) for c in rng.uniform(r * 1.5, s - r * 1.5, size=2))
        pts.append((x, y))
        c = (int(round(x)), int(round(y)))
        if m == 0:
            cv2.circle(img, c, r, (1.0, 0.1, 0.1), -1, lineType=cv2.LINE_AA)
        elif m == 1:
            cv2.rectangle(img, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), (0.1, 0.95, 0.2), -1, lineType=cv2.LINE_AA)
        else:
            tri = np.array([[c[0], c[1] - r], [c[0] - r, c[1] + r], [c[0] + r, c[1] + r]], np.int32)
            cv2.fillPoly(img, [tri], (0.15, 0.3, 1.0), lineType=cv2.LINE_AA)
    return img, pts


def generate(dest: Path, n_groups: int = N_GROUPS, n_views: int = N_VIEWS, n_landmarks: int = N_LANDMARK_IMAGES,
             n_classes: int = N_CLASS_IMAGES) -> None:
    """Write every demo task into ``dest`` (deterministic)."""
    from sslinv.data import demo

    for i in range(n_classes):
        path = dest / "classes" / demo.relative_path(CLASS_SCENES + i)
        path.parent.mkdir(parents=True, exist_ok=True)
        demo.render_image(CLASS_SCENES + i).save(path, quality=JPEG_QUALITY)
    for g in range(n_groups):
        scene = _scene(g)
        for v, view in enumerate(viewpoint_views(scene, n_views)):
            _to_jpeg(view, dest / "viewpoint" / f"g{g:03d}" / f"g{g:03d}_v{v}.jpg")
        for v, view in enumerate(lighting_views(scene, n_views)):
            _to_jpeg(view, dest / "lighting" / f"g{g:03d}" / f"g{g:03d}_l{v}.jpg")
    lines = ["index," + ",".join(f"{m}_x,{m}_y" for m in MARKERS)]
    for i in range(n_landmarks):
        rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(i,)))
        img, pts = landmark_image(i, rng)
        _to_jpeg(img, dest / "landmarks" / "images" / f"{i:04d}.jpg")
        lines.append(f"{i}," + ",".join(f"{x:.3f},{y:.3f}" for x, y in pts))
    (dest / "landmarks" / "targets.csv").write_text("\n".join(lines) + "\n")


def ensure_demo_tasks(cache: Path, announce: Callable[[], None] | None = None) -> Path:
    """``<cache>/demo/tasks-v2``, generated on first use, atomically (``cache.build_dir``);
    ``announce()`` is called first when (and only when) they are generated."""
    from sslinv import cache as cache_mod
    from sslinv import paths

    def build(tmp: Path) -> None:
        if announce is not None:
            announce()
        generate(tmp)

    return cache_mod.build_dir(paths.demo_dir(Path(cache), DIRNAME), build)


def groups(root: Path, kind: str) -> list[list[Path]]:
    """The view files of each group of ``viewpoint`` or ``lighting``, sorted."""
    return [sorted(g.glob("*.jpg")) for g in sorted((root / kind).iterdir()) if g.is_dir()]


def landmark_targets(root: Path) -> tuple[list[Path], np.ndarray]:
    """Image files and an (n, 6) array of marker centres in image pixels."""
    rows = (root / "landmarks" / "targets.csv").read_text().split("\n")[1:]
    data = np.array([[float(v) for v in r.split(",")] for r in rows if r], dtype=np.float64)
    files = [root / "landmarks" / "images" / f"{int(i):04d}.jpg" for i in data[:, 0]]
    return files, data[:, 1:]


# ------------------------------------------- loaders: the contract of both registries


EXPECTED = (
    "viewpoint/gNNN/*.jpg, lighting/gNNN/*.jpg, classes/<class>/<class>_NNNNN.jpg, "
    "landmarks/images/NNNN.jpg and landmarks/targets.csv"
)


def _incomplete(root: Path, what: str):
    from sslinv.errors import DataNotFoundError

    return DataNotFoundError(
        f"The built-in demo tasks under {root} are incomplete ({what}; expected {EXPECTED}). "
        f"Delete {root}: it is painted again on next use."
    )


def verify(root: Path) -> dict[str, int]:
    """Counts of what the folder holds; raises DataNotFoundError when a part is missing."""
    root = Path(root)
    counts = {kind: len(groups(root, kind)) if (root / kind).is_dir() else 0 for kind in ("viewpoint", "lighting")}
    counts["classes"] = len(list((root / "classes").glob("*/*.jpg")))
    counts["landmarks"] = len(list((root / "landmarks" / "images").glob("*.jpg")))
    missing = [k for k, v in counts.items() if v == 0]
    if missing or not (root / "landmarks" / "targets.csv").is_file():
        raise _incomplete(root, f"missing: {', '.join(missing) or 'landmarks/targets.csv'}")
    return counts


def load_groups(root: Path, mode: str):
    """The real-world registry's contract: ``(layout, groups)`` of ``viewpoint`` or ``lighting``."""
    from sslinv.data.realworld import Group, rel

    root = Path(root)
    found = groups(root, mode) if (root / mode).is_dir() else []
    found = [g for g in found if g]
    if not found:
        raise _incomplete(root, f"no {mode}/gNNN/*.jpg groups")
    return "sslinv-demo", [Group(g[0].parent.name, tuple(rel(root, f) for f in g)) for g in found]


def load(root: Path, split: str, *, mode: str):
    """The downstream registry's contract: the ``trainval`` or ``test`` Split of ``classes``
    (labels: index in the demo pool's CLASSES) or ``landmarks`` (6 coordinates, pixels)."""
    from sslinv.data.demo import CLASSES
    from sslinv.data.downstream import Split, image_sizes, stat_fingerprint

    root = Path(root)
    if split not in ("trainval", "test"):
        raise ValueError(f"split must be 'trainval' or 'test', not {split!r}")
    want = "train" if split == "trainval" else "test"
    if mode == "classes":
        files = sorted((root / "classes").glob("*/*.jpg"))
        if not files:
            raise _incomplete(root, "no classes/<class>/*.jpg")
        # Image i is the (i // 8)-th of its class: split on that, so every class is in both.
        index = [(int(f.stem.rsplit("_", 1)[1]) - CLASS_SCENES) // len(CLASSES) for f in files]
        files = [f for f, i in zip(files, index) if split_of(i) == want]
        labels = np.array([CLASSES.index(f.parent.name) for f in files], dtype=np.int64)
        return Split(f"demo-{mode}", split, labels, files=tuple(files),
                     fingerprint=stat_fingerprint(files), source="sslinv-demo")
    if mode == "landmarks":
        if not (root / "landmarks" / "targets.csv").is_file():
            raise _incomplete(root, "no landmarks/targets.csv")
        all_files, targets = landmark_targets(root)
        keep = np.array([split_of(int(f.stem)) == want for f in all_files], dtype=bool)
        files = [f for f, k in zip(all_files, keep) if k]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise _incomplete(root, f"{missing[0]} is missing")
        return Split(f"demo-{mode}", split, targets[keep], files=tuple(files), sizes=image_sizes(files),
                     fingerprint=stat_fingerprint(files, (root / "landmarks" / "targets.csv").read_bytes()),
                     source="sslinv-demo")
    raise ValueError(f"unknown demo task {mode!r}")


def data_root(cache: Path, reporter=None) -> Path:
    """The data root of the built-in demo datasets, ``<cache>/demo``; the tasks are painted
    there on first use (said through ``reporter.info`` when one is given)."""
    announce = None
    if reporter is not None:
        announce = lambda: reporter.info("Painting the built-in demo tasks (first use, a few seconds).")  # noqa: E731
    return ensure_demo_tasks(cache, announce).parent
