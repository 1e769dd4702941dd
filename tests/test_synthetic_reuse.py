"""Work `sslinv synthetic` does not repeat: the sampled images' clean features come from
a statistics pass made in the same run, and a view equal to its clean view (a family's
identity element) is not embedded again. The numbers stay those of a run that embeds
everything."""

from __future__ import annotations

import pytest
import torch

from sslinv.evaluate.common import Runtime
from sslinv.evaluate.features import CleanView, Extractor, FamilyView, ViewChunks
from sslinv.evaluate.synthetic import SyntheticConfig, run


def _count_rows(monkeypatch) -> list[int]:
    """Rows seen by every forward pass, appended as they go."""
    seen: list[int] = []
    forward = Extractor.forward

    def counted(self, images):
        seen.append(len(images))
        return forward(self, images)

    monkeypatch.setattr(Extractor, "forward", counted)
    return seen


def _run(cache, folder, transforms, render="pil", **kw):
    rt = Runtime(model="random-tiny", cache_dir=cache, data_root=cache / "data", batch_size=8, workers=0,
                 device="cpu", **kw)
    cfg = SyntheticConfig(runtime=rt, transforms=transforms, data=str(folder), k=4, num_images=5,
                          resize=64, crop=56, render=render)
    return run(cfg)


def test_fresh_run_embeds_each_image_once_and_matches_a_cached_statistics_run(tmp_path, image_folder,
                                                                              monkeypatch):
    from sslinv.data.folder import scan_pool

    n_pool = len(scan_pool(image_folder))
    seen = _count_rows(monkeypatch)
    fresh = _run(tmp_path / "c", image_folder, ["rotation", "scale"])
    # statistics over the pool; rotation's identity (0 degrees) is the clean view: 3 of
    # 4 views embedded; scale's first value (0.25) is not the identity: all 4.
    assert sum(seen) == n_pool + 5 * 3 + 5 * 4

    seen.clear()
    again = _run(tmp_path / "c", image_folder, ["rotation", "scale"], force=True)  # statistics cached
    assert sum(seen) == 5 + 5 * 3 + 5 * 4  # the clean views are embedded this time
    for a, b in zip(fresh, again):
        assert a.distance == pytest.approx(b.distance, rel=1e-5)
        assert a.similarity == pytest.approx(b.similarity, rel=1e-5, abs=1e-7)
        assert a.curves["distance"] == pytest.approx(b.curves["distance"], rel=1e-5, abs=1e-6)
    rotation = fresh[0]
    assert rotation.curves["distance"][0] == 0.0 and rotation.curves["similarity"][0] == pytest.approx(1, abs=1e-12)


def test_device_rendering_reuses_the_statistics_pass_too(tmp_path, image_folder, monkeypatch):
    """``--render device`` takes the sampled images' clean features from a statistics
    pass made in the same run as well (its clean view is PIL's, byte for byte)."""
    from sslinv.data.folder import scan_pool

    n_pool = len(scan_pool(image_folder))
    seen = _count_rows(monkeypatch)
    fresh = _run(tmp_path / "c", image_folder, ["rotation"], render="device")
    assert sum(seen) == n_pool + 5 * 3
    seen.clear()
    again = _run(tmp_path / "c", image_folder, ["rotation"], render="device", force=True)
    assert sum(seen) == 5 + 5 * 3
    assert fresh[0].curves["distance"] == pytest.approx(again[0].curves["distance"], rel=1e-5, abs=1e-6)
    assert fresh[0].similarity == pytest.approx(again[0].similarity, rel=1e-5, abs=1e-7)


def test_identity_views_are_flagged_only_when_equal(image_folder):
    from sslinv.data.folder import load_rgb, scan_pool
    from sslinv.transforms import get_family

    pool = scan_pool(image_folder)
    # The protocol's identity index is the identity element for rotation and grayscale,
    # but not for scale (factor 0.25) or brightness (2.63 at index k // 2).
    for name, expect in [("rotation", True), ("grayscale", True), ("scale", False), ("brightness", False)]:
        fam = get_family(name)
        grid = fam.grid(5, 64, 56)
        tasks = [(r, p) for r in range(2) for p in range(grid.k)]
        ds = ViewChunks(pool, [0, 1], tasks, FamilyView(fam, grid.params, 64, 56), 4, 0,
                        identity=grid.identity, clean=CleanView(64, 56))
        items = [ds[c] for c in range(len(ds))]
        rows, params, views, same = (torch.cat(parts) for parts in zip(*items))
        at_identity = params == grid.identity
        assert same.tolist() == (at_identity & expect).tolist(), name
        if expect:  # flagged views really are the clean views
            clean = torch.stack([CleanView(64, 56)(load_rgb(pool.path(i))) for i in (0, 1)])
            assert torch.equal(views[same], clean)


def test_without_identity_nothing_is_flagged(image_folder):
    from sslinv.data.folder import scan_pool
    from sslinv.transforms import get_family

    pool = scan_pool(image_folder)
    fam = get_family("rotation")
    grid = fam.grid(4, 64, 56)
    ds = ViewChunks(pool, [0], [(0, p) for p in range(grid.k)], FamilyView(fam, grid.params, 64, 56), 8, 0)
    assert not ds[0][3].any()


def test_device_renderer_flags_identity_views_too(image_folder):
    from sslinv.data.folder import scan_pool
    from sslinv.evaluate.device_views import DeviceViews
    from sslinv.transforms import get_family

    pool = scan_pool(image_folder)
    views = DeviceViews(resize=64, crop=56, batch_size=4, workers=0, device=torch.device("cpu"))
    for name, expect in [("rotation", True), ("scale", False)]:
        grid = get_family(name).grid(3, 64, 56)
        batches = list(views.family_batches([pool.path(0), pool.path(1)], [0, 1], [0, 1], name, grid.params, 0,
                                            grid.identity))
        params = torch.cat([p for _, p, _, _ in batches])
        same = torch.cat([s for _, _, _, s in batches])
        assert same.tolist() == ((params == grid.identity) & expect).tolist(), name


@pytest.mark.parametrize("name", ["rotation", "translation", "h_flip", "deform", "grayscale"])
def test_view_chunks_render_per_image_as_single_views(image_folder, name):
    """Chunks render each image's views together (``Family.views`` where a family has a
    batch renderer): the bytes and seeds of one ``Family.view`` per task."""
    from sslinv.data.folder import load_rgb, scan_pool
    from sslinv.transforms import get_family

    pool = scan_pool(image_folder)
    fam = get_family(name)
    grid = fam.grid(6, 64, 56)
    ids = [2, 0, 5]
    tasks = [(r, p) for r in range(3) for p in range(grid.k)]
    ds = ViewChunks(pool, ids, tasks, FamilyView(fam, grid.params, 64, 56), 5, seed=3)
    rows, params, views, _ = (torch.cat(parts) for parts in zip(*(ds[c] for c in range(len(ds)))))
    assert list(zip(rows.tolist(), params.tolist())) == tasks
    want = torch.stack([fam.view(load_rgb(pool.path(ids[r])), grid.params[p], 64, 56,
                                 (3 * 1_000_003 + ids[r]) * 4099 + p) for r, p in tasks])
    assert torch.equal(views, want)
