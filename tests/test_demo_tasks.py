"""The built-in demo tasks: groups of views and labelled landmark images."""

import numpy as np
import pytest

from sslinv.data import demo_tasks as dt


def test_generate_layout_and_determinism(tmp_path):
    dt.generate(tmp_path / "a", n_groups=2, n_views=4, n_landmarks=4, n_classes=16)
    dt.generate(tmp_path / "b", n_groups=2, n_views=4, n_landmarks=4, n_classes=16)
    for kind in ("viewpoint", "lighting"):
        groups = dt.groups(tmp_path / "a", kind)
        assert [len(g) for g in groups] == [4, 4]
        for g in groups:
            other = tmp_path / "b" / g[0].relative_to(tmp_path / "a")
            assert g[0].read_bytes() == other.read_bytes()
    files, targets = dt.landmark_targets(tmp_path / "a")
    assert len(files) == 4 and targets.shape == (4, 6)
    assert all(f.exists() for f in files)
    assert ((targets > 0) & (targets < dt.LANDMARK_SIDE)).all()
    classes = sorted((tmp_path / "a" / "classes").glob("*/*.jpg"))
    assert len(classes) == 16 and len({c.parent.name for c in classes}) == 8
    assert dt.verify(tmp_path / "a") == {"viewpoint": 2, "lighting": 2, "classes": 16, "landmarks": 4}


def test_views_change_the_image_in_the_intended_way():
    scene = dt._scene(0)
    vp = dt.viewpoint_views(scene, 4)
    li = dt.lighting_views(scene, 4)
    # Viewpoint: pixels move, the colour histogram stays about the same.
    assert np.abs(vp[0] - vp[-1]).mean() > 0.05
    assert np.abs(vp[0].mean((0, 1)) - vp[-1].mean((0, 1))).max() < 0.1
    # Lighting: pixel values change, but edges stay in place far more than under a
    # change of viewpoint.
    assert np.abs(li[0] - li[2]).mean() > 0.05

    def edge_corr(a, b):
        ga, gb = np.diff(a.mean(2), axis=1).ravel(), np.diff(b.mean(2), axis=1).ravel()
        return np.corrcoef(ga, gb)[0, 1]

    assert edge_corr(li[0], li[2]) > 0.7 > edge_corr(vp[0], vp[-1])


def test_landmark_markers_are_where_the_targets_say():
    rng = np.random.default_rng(0)
    img, pts = dt.landmark_image(0, rng)
    (x, y) = pts[0]
    r, g, b = img[int(round(y)), int(round(x))]
    assert r > 0.8 and g < 0.3 and b < 0.3  # the red disc's centre


def test_split():
    assert [dt.split_of(i) for i in range(8)] == ["train"] * 3 + ["test"] + ["train"] * 3 + ["test"]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / dt.DIRNAME
    dt.generate(root, n_groups=3, n_views=4, n_landmarks=8, n_classes=32)
    return root


def test_classes_split_keeps_every_class_in_both_splits(tasks):
    from sslinv.data.demo import CLASSES

    tv, te = (dt.load(tasks, s, mode="classes") for s in ("trainval", "test"))
    assert len(tv) == 24 and len(te) == 8
    assert sorted(te.targets.tolist()) == list(range(8)) and sorted(set(tv.targets.tolist())) == list(range(8))
    for split in (tv, te):
        assert all(CLASSES[y] == f.parent.name for f, y in zip(split.files, split.targets))
    assert not set(tv.files) & set(te.files)


def test_landmarks_split_and_targets_in_view(tasks):
    tv, te = (dt.load(tasks, s, mode="landmarks") for s in ("trainval", "test"))
    assert len(tv) == 6 and len(te) == 2 and tv.targets.shape == (6, 6)
    assert (tv.sizes == dt.LANDMARK_SIDE).all()
    _, all_targets = dt.landmark_targets(tasks)
    assert np.allclose(te.targets, all_targets[[3, 7]])
    # Square images: the 64/64 view is a pure rescaling of the coordinates.
    assert np.allclose(te.view_targets(64, 64), all_targets[[3, 7]] * 64 / dt.LANDMARK_SIDE)


def test_builtin_datasets_in_both_registries(tasks, tmp_path):
    from sslinv.data import downstream as ds_reg
    from sslinv.data import realworld as rw_reg
    from sslinv.errors import DataNotFoundError

    grouped = rw_reg.get("demo-viewpoint").load(tasks.parent)
    assert grouped.layout == "sslinv-demo" and [len(g) for g in grouped.groups] == [4, 4, 4]
    assert all(grouped.path(f).is_file() for g in grouped.groups for f in g.files)
    assert rw_reg.get("DEMO-LIGHTING").name == "demo-lighting"
    assert "demo-viewpoint" not in rw_reg.NAMES  # not part of --dataset all

    entry = ds_reg.get_dataset("demo-landmarks")
    assert entry.builtin and entry.task == "regression"
    assert len(entry.load(tasks.parent, "test")) == 2
    with pytest.raises(DataNotFoundError, match="incomplete"):
        dt.load_groups(tmp_path, "viewpoint")
    with pytest.raises(DataNotFoundError, match="incomplete"):
        dt.verify(tmp_path)


def test_downstream_all_skips_builtin_datasets(tmp_path):
    from sslinv.evaluate.downstream import resolve_datasets
    from sslinv.reporting import Reporter

    (tmp_path / "CIFAR10").mkdir()
    (tmp_path / dt.DIRNAME).mkdir()  # even where the folder exists under the data root
    names = [d.name for d in resolve_datasets(["all"], tmp_path, "linear", Reporter())]
    assert names == ["cifar10"]


def test_scaled_pool(tmp_path):
    from PIL import Image

    from sslinv.data import demo

    root = demo.ensure_scaled_pool(tmp_path, 40, n=9)
    assert root.name == "v1-n9-s0-side40"
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == 9
    for f in files:
        with Image.open(f) as im:
            assert min(im.size) == 40
    assert demo.ensure_scaled_pool(tmp_path, 40, n=9) == root  # reused
