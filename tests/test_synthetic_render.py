"""`sslinv synthetic --render device`: views made on the model's device from decoded images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_synthetic import FAST, invoke, run_json

from sslinv.evaluate.device_views import DecodedImages, DeviceViews, rebatch, view_seed

TINY = ("--model", "random-tiny", "--num-images", "5", *FAST)
#: A geometric and a colour family of each kind: warp, zoom, toggle, blend.
FAMILIES = ("rotation", "scale", "grayscale", "brightness")


def families(*names: str) -> list[str]:
    return [a for n in names for a in ("-t", n)]


def test_device_views_match_pil_within_the_documented_drift(cache_dir, image_folder):
    args = (*TINY, "--data", str(image_folder), *families(*FAMILIES), "--k", "4")
    pil = run_json(*args)
    dev = run_json(*args, "--render", "device")
    assert (pil["render"], dev["render"]) == ("pil", "device")
    assert dev["statistics"]["cached"] is True  # the PIL statistics, shared by both modes
    for a, b in zip(pil["results"], dev["results"]):
        assert a["transform"] == b["transform"] and a["values"] == b["values"]
        # docs/gpu.md: these families move by less than 0.05% in distance, 1e-4 in similarity.
        assert b["distance"] == pytest.approx(a["distance"], rel=5e-4), a["transform"]
        assert b["similarity"] == pytest.approx(a["similarity"], abs=1e-4), a["transform"]
        np.testing.assert_allclose(b["curves"]["distance"], a["curves"]["distance"], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(b["curves"]["similarity"], a["curves"]["similarity"], atol=3e-4)
    rot, gray = dev["results"][0], dev["results"][2]
    for r in (rot, gray):  # the identity view is the device's clean view itself
        assert r["curves"]["distance"][0] == pytest.approx(0, abs=1e-6)
        assert r["curves"]["similarity"][0] == pytest.approx(1)
    assert rot["curves"]["distance"][2] > 0.1  # and the others are not


def test_keys_differ_between_render_modes_and_reruns_are_cached(cache_dir, image_folder):
    args = (*TINY, "--data", str(image_folder), "-t", "h_flip")
    pil = run_json(*args)["results"][0]
    dev = run_json(*args, "--render", "device")["results"][0]
    assert dev["cached"] is False and dev["result_file"] != pil["result_file"]
    pil_key = json.loads(open(pil["result_file"]).read())["key"]
    dev_key = json.loads(open(dev["result_file"]).read())["key"]
    assert "render" not in pil_key  # PIL keys as before: existing result files stay valid
    assert dev_key == {**pil_key, "render": "device"}
    again = run_json(*args, "--render", "device")["results"][0]
    assert again["cached"] is True and again["similarity"] == dev["similarity"]
    assert run_json(*args)["results"][0]["cached"] is True
    table = invoke(*args, "--render", "device")
    assert table.exit_code == 0 and "rendered on the device" in table.stdout and "cached" in table.stdout


def test_skip_bad_with_a_corrupt_sampled_image(cache_dir, image_folder):
    bad = image_folder / "class1" / "img_000.jpg"
    bad.write_bytes(b"not a jpeg")
    args = ("--model", "random-tiny", "-t", "v_flip", "--data", str(image_folder), "--num-images", "all", *FAST,
            "--render", "device")
    res = invoke(*args)
    assert res.exit_code == 3 and str(bad) in res.stderr and "--skip-bad" in res.stderr
    out = run_json(*args, "--skip-bad")
    assert out["skipped_images"] == ["class1/img_000.jpg"]
    assert out["num_images"] == 23 and out["results"][0]["num_images"] == 23
    assert all(np.isfinite(out["results"][0]["curves"]["distance"]))


def test_unknown_render_mode_is_a_usage_error(cache_dir, image_folder):
    res = invoke(*TINY, "--data", str(image_folder), "-t", "grayscale", "--render", "bogus")
    assert res.exit_code == 2 and "--render" in res.stderr and "bogus" in res.stderr
    assert "Traceback" not in res.stderr

    from sslinv.errors import UsageError
    from sslinv.evaluate.common import Runtime
    from sslinv.evaluate.synthetic import SyntheticConfig, run

    rt = Runtime(model="random-tiny", cache_dir=cache_dir, data_root=cache_dir / "data")
    with pytest.raises(UsageError, match=r"Unknown render mode 'gpu'\. Use one of: pil, device"):
        run(SyntheticConfig(runtime=rt, transforms=["grayscale"], render="gpu"))


def test_runs_with_a_worker_under_forkserver(cache_dir, image_folder, monkeypatch):
    """The decoding dataset reaches a worker pickled (Python 3.14's default start method)."""
    monkeypatch.setenv("SSLINV_START_METHOD", "forkserver")
    out = run_json("--model", "random-tiny", "--data", str(image_folder), "-t", "rotation", "--k", "2",
                   "--num-images", "2", "--resize", "40", "--crop-size", "32", "--batch-size", "8", "--workers", "1",
                   "--device", "cpu", "--render", "device")
    assert out["results"][0]["curves"]["similarity"][0] == pytest.approx(1)


# ------------------------------------------------------------------------- the parts


def test_view_seeds_are_the_pil_paths(image_folder):
    """deform's random fields depend on the per-view seed: both paths must draw the same."""
    from sslinv.data.folder import scan_pool
    from sslinv.evaluate.features import ViewChunks

    pool = scan_pool(image_folder)
    ids, seen = [3, 7, 11], []

    def record(img, p, seed):
        seen.append(seed)
        return torch.zeros(3, 2, 2, dtype=torch.uint8)

    tasks = [(r, p) for r in range(3) for p in range(5)]
    ds = ViewChunks(pool, ids, tasks, record, 4, seed=2)
    for c in range(len(ds)):
        ds[c]
    assert seen == [view_seed(2, ids[r], p) for r, p in tasks]


def test_rebatch_packs_pieces_in_order():
    sizes = [3, 1, 0, 5, 2]
    start = np.cumsum([0, *sizes])
    pieces = [(torch.arange(a, a + n), -torch.arange(a, a + n)) for a, n in zip(start, sizes)]
    out = list(rebatch(pieces, 4))
    assert [len(a) for a, _ in out] == [4, 4, 3]
    assert torch.cat([a for a, _ in out]).tolist() == list(range(11))
    assert torch.cat([b for _, b in out]).tolist() == [-i for i in range(11)]


def _views(**kw) -> DeviceViews:
    return DeviceViews(resize=40, crop=32, batch_size=4, workers=0, device=torch.device("cpu"), **kw)


def test_family_batches_fill_forward_batches_across_images(image_folder):
    from sslinv.data.folder import scan_pool
    from sslinv.transforms import get_family
    from sslinv.transforms.device import image_tensor, render_views

    pool = scan_pool(image_folder)
    fam = get_family("deform")
    params = fam.grid(3, 40, 32).params
    ids = [0, 5, 9]
    files = [pool.path(i) for i in ids]
    batches = list(_views().family_batches(files, [10, 11, 12], ids, "deform", params, seed=1))
    assert [len(r) for r, _, _, _ in batches] == [4, 4, 1]  # 3 images x 3 views
    rows = torch.cat([r for r, _, _, _ in batches]).tolist()
    ps = torch.cat([p for _, p, _, _ in batches]).tolist()
    assert list(zip(rows, ps)) == [(r, p) for r in (10, 11, 12) for p in range(3)]
    from sslinv.data.folder import load_rgb

    views = torch.cat([v for _, _, v, _ in batches])
    want = render_views("deform", image_tensor(load_rgb(files[1])), params, 40, 32,
                        seed=[view_seed(1, 5, p) for p in range(3)])
    assert torch.equal(views[3:6], want)


@pytest.mark.parametrize("bad_at", [0, 2, 4])
def test_clean_batches_report_unreadable_images_once(image_folder, bad_at):
    from sslinv.errors import BadImageError

    files = sorted(image_folder.glob("*/*.jpg"))[:5]
    files[bad_at].write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError, match="--skip-bad"):
        list(_views().clean_batches(files))
    batches = list(_views(skip_bad=True).clean_batches(files))
    good = torch.cat([i for i, v, _ in batches if v is not None]).tolist()
    bad = [j for _, _, b in batches for j in b]
    assert good == [j for j in range(5) if j != bad_at] and bad == [bad_at]
    assert all(v is None or (len(v) == len(i) <= 4 and v.dtype == torch.uint8 and v.shape[1:] == (3, 32, 32))
               for i, v, _ in batches)
    assert DecodedImages(files, skip_bad=True)[bad_at] == (bad_at, None)
