"""The built-in demo tasks: groups of views and labelled landmark images."""

import numpy as np

from sslinv.data import demo_tasks as dt


def test_generate_layout_and_determinism(tmp_path):
    dt.generate(tmp_path / "a", n_groups=2, n_views=4, n_landmarks=4)
    dt.generate(tmp_path / "b", n_groups=2, n_views=4, n_landmarks=4)
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
