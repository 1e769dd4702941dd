"""The built-in demo pool: layout, determinism, variety, and safe first-use generation."""

from __future__ import annotations

import colorsys
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslinv import paths
from sslinv.data import demo
from sslinv.errors import UsageError

N = 16  # two images per class: enough for every check, fast to paint


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _leftovers(cache: Path) -> list[str]:
    """Temp folders (or anything hidden) left beside the pools; the lock file is allowed."""
    parent = cache / "demo"
    if not parent.exists():
        return []
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") or ".tmp" in p.name)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("demo") / "pool"
    demo.generate(dest, n=N, seed=0)
    return dest


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """64 images (8 per class) as float RGB in [0, 1], for the variety checks."""
    return [np.asarray(demo.render_image(i, seed=0), dtype=np.float64) / 255.0 for i in range(64)]


# --------------------------------------------------------------------------- layout


def test_every_class_has_a_painter():
    assert list(demo.CLASSES) == sorted(demo.CLASSES) == sorted(demo.PAINTERS)


def test_layout_is_imagefolder(pool):
    assert sorted(p.name for p in pool.iterdir()) == list(demo.CLASSES)
    expected = sorted(demo.relative_path(i) for i in range(N))
    assert _files(pool) == expected
    for name in demo.CLASSES:
        files = sorted((pool / name).iterdir())
        assert len(files) == N // len(demo.CLASSES)
        assert all(f.name.startswith(f"{name}_") and f.suffix == ".jpg" for f in files)
    assert demo.relative_path(9) == Path("gratings/gratings_0009.jpg")


def test_files_are_rgb_jpegs_in_size_range(pool):
    lo, hi = demo.SIZE_RANGE
    sizes = set()
    for rel in _files(pool):
        with Image.open(pool / rel) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert lo <= im.width <= hi and lo <= im.height <= hi
            sizes.add(im.size)
    assert len(sizes) > N // 2, "sizes should vary from image to image"


def test_torchvision_imagefolder_reads_pool(pool):
    datasets = pytest.importorskip("torchvision.datasets")
    ds = datasets.ImageFolder(str(pool))
    assert ds.classes == list(demo.CLASSES)
    assert len(ds) == N
    for path, label in ds.samples:
        index = int(Path(path).stem.rsplit("_", 1)[1])
        assert ds.classes[label] == demo.class_of(index)
    img, _ = ds[0]
    assert img.mode == "RGB"


def test_small_pool_has_no_empty_class_folders(tmp_path):
    demo.generate(tmp_path / "p", n=3)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == list(demo.CLASSES[:3])


# --------------------------------------------------------------------------- determinism


def test_generate_is_bit_identical(pool, tmp_path):
    again = tmp_path / "again"
    demo.generate(again, n=N, seed=0)
    assert _files(again) == _files(pool)
    for rel in _files(pool):
        assert (again / rel).read_bytes() == (pool / rel).read_bytes(), rel


def test_render_image_matches_file_and_depends_on_seed(pool):
    a = np.asarray(demo.render_image(5, seed=0))
    assert np.array_equal(a, np.asarray(demo.render_image(5, seed=0)))
    other = np.asarray(demo.render_image(6, seed=0))
    assert not np.array_equal(a, other[: a.shape[0], : a.shape[1]])
    b = demo.render_image(5, seed=1)
    assert b.size != demo.render_image(5, seed=0).size or not np.array_equal(a, np.asarray(b))
    with Image.open(pool / demo.relative_path(5)) as im:
        assert im.size == demo.render_image(5).size


def test_image_does_not_depend_on_pool_size(tmp_path):
    """Image i is the same in a pool of 8 and a pool of 16: a bigger pool extends a smaller one."""
    demo.generate(tmp_path / "small", n=8)
    demo.generate(tmp_path / "big", n=16)
    for rel in _files(tmp_path / "small"):
        assert (tmp_path / "small" / rel).read_bytes() == (tmp_path / "big" / rel).read_bytes()


# --------------------------------------------------------------------------- variety


def test_mean_colours_and_contrast_vary(images):
    means = np.array([a.reshape(-1, 3).mean(0) for a in images])
    stds = np.array([a.reshape(-1, 3).std(0).mean() for a in images])
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert np.median(dist[np.triu_indices(len(images), 1)]) > 0.2
    hsv = np.array([colorsys.rgb_to_hsv(*m) for m in means])
    value, sat = hsv[:, 2], hsv[:, 1]
    assert value.min() < 0.3 and value.max() > 0.8, "want both dark and bright images"
    assert sat.min() < 0.1 and sat.max() > 0.4, "want both near-grey and colourful images"
    assert stds.min() > 0.03 and stds.max() > 3 * stds.min(), "want flat-ish and busy images"


def _hues(a: np.ndarray) -> np.ndarray:
    """Hues (in turns) of the clearly coloured pixels of an image."""
    mx, mn = a.max(-1), a.min(-1)
    chroma = np.maximum(mx - mn, 1e-9)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    sector = np.where(mx == g, (b - r) / chroma + 2, (r - g) / chroma + 4)
    h = np.where(mx == r, ((g - b) / chroma) % 6, sector) / 6
    return h[((mx - mn) / np.maximum(mx, 1e-9) > 0.3) & (mx > 0.2)]


def test_hues_cover_the_colour_wheel(images):
    hues = np.concatenate([_hues(a) for a in images])
    share = np.histogram(hues, bins=12, range=(0.0, 1.0))[0] / hues.size
    assert share.min() > 0.02, f"every 30-degree hue sector should be used: {share.round(3)}"


def test_images_are_not_piecewise_flat(images):
    for a in images:
        # Mean absolute difference between horizontal neighbours, in 8-bit levels.
        assert np.abs(np.diff(a, axis=1)).mean() * 255 > 1.5


def test_flips_change_the_images(images):
    """Asymmetric content (off-centre objects, side light, horizon) makes flips visible."""
    for a in images:
        assert np.abs(a - a[:, ::-1]).mean() > 0.02
        assert np.abs(a - a[::-1]).mean() > 0.02


# --------------------------------------------------------------------------- the cache


def test_ensure_demo_pool_generates_once(tmp_path, monkeypatch):
    final = demo.ensure_demo_pool(tmp_path, n=N)
    assert final == paths.demo_dir(tmp_path, f"{demo.DEMO_VERSION}-n{N}-s0")
    assert len(_files(final)) == N
    some = final / demo.relative_path(0)
    stamp = (final.stat().st_mtime_ns, some.stat().st_mtime_ns)

    def fail(*args, **kwargs):
        raise AssertionError("generate() called for an existing pool")

    monkeypatch.setattr(demo, "generate", fail)
    assert demo.ensure_demo_pool(tmp_path, n=N) == final
    assert (final.stat().st_mtime_ns, some.stat().st_mtime_ns) == stamp
    assert _leftovers(tmp_path) == []


def test_ensure_demo_pool_threads_generate_once(tmp_path, monkeypatch):
    calls = []
    start = threading.Barrier(2)
    real = demo.generate

    def counting(*args, **kwargs):
        calls.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(demo, "generate", counting)
    results, errors = [], []

    def worker():
        try:
            start.wait()
            results.append(demo.ensure_demo_pool(tmp_path, n=8))
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(calls) == 1
    assert results[0] == results[1]
    assert len(_files(results[0])) == 8
    assert _leftovers(tmp_path) == []


def test_ensure_demo_pool_processes_share_one_pool(tmp_path):
    code = (
        "import sys; from pathlib import Path; from sslinv.data.demo import ensure_demo_pool; "
        "print(ensure_demo_pool(Path(sys.argv[1]), n=8))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1]
    final = Path(outs[0])
    assert _files(final) == sorted(demo.relative_path(i) for i in range(8))
    assert _leftovers(tmp_path) == []


def test_interrupted_generation_leaves_nothing(tmp_path):
    class Stop(Exception):
        pass

    def progress(done, total):
        assert total == N
        if done == N // 2:
            raise Stop

    with pytest.raises(Stop):
        demo.ensure_demo_pool(tmp_path, n=N, progress=progress)
    final = paths.demo_dir(tmp_path, demo.pool_name(N, 0))
    assert not final.exists()
    assert _leftovers(tmp_path) == []
    # The next call starts afresh and completes.
    assert len(_files(demo.ensure_demo_pool(tmp_path, n=N))) == N


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n": 0}, "size must be a positive integer"), ({"seed": -1}, "seed must be a non-negative")],
)
def test_bad_arguments_name_the_fix(tmp_path, kwargs, match):
    with pytest.raises(UsageError, match=match):
        demo.ensure_demo_pool(tmp_path, **kwargs)


def test_generate_refuses_non_empty_folder(tmp_path):
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(UsageError, match="non-empty folder"):
        demo.generate(tmp_path, n=2)
