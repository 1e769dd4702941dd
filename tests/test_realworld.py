"""`sslinv realworld`: every loader on a fake in its exact on-disk layout, the pairwise
metrics against numpy, parity with the reference's formulas, and the errors."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.data import realworld as rw
from sslinv.errors import DataNotFoundError
from sslinv.evaluate.realworld import group_metrics, reference_similarity

FAST = ["--resize", "32", "--crop-size", "32", "--stats-resize", "64", "--stats-crop-size", "56",
        "--batch-size", "32", "--workers", "0", "--device", "cpu"]
ALOI_TEMPERATURES = (110, 120, 130, 140, 150, 160, 170, 180, 190, 210, 230, 250)
EXPOSURES = ("N1.5", "N1", "0", "P1", "P1.5")


def invoke(*args: str):
    return CliRunner().invoke(app, ["realworld", *args], prog_name="sslinv")


def run_json(*args: str) -> dict:
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


# ---------------------------------------------------------------------------- fakes


class Painter:
    """Writes PNG/JPEG files: a shared tiny blob (indexing tests) or varied images."""

    def __init__(self, varied: bool = False, size: int = 24, seed: int = 0):
        self.varied, self.size = varied, size
        self.rng = np.random.default_rng(seed)
        self._blob: dict[str, bytes] = {}

    def __call__(self, path: Path, group: int = 0, view: int = 0) -> None:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
        if not self.varied:
            if fmt not in self._blob:
                buf = io.BytesIO()
                Image.new("RGB", (4, 4), (90, 30, 200)).save(buf, format=fmt)
                self._blob[fmt] = buf.getvalue()
            path.write_bytes(self._blob[fmt])
            return
        # A group's views share a colour scheme; the view moves a bar and shifts the tint.
        s = self.size
        g = np.random.default_rng(1000 + group)
        img = np.zeros((s, s, 3)) + g.uniform(40, 215, 3)
        x = int((view * 7) % (s - 6))
        img[:, x : x + 6] = g.uniform(0, 255, 3)
        img += 4 * np.sin(view) + self.rng.normal(0, 6, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, format=fmt)


def fake_coil100(root: Path, paint, n=2, official=False):
    top = root / "COIL100" / ("coil-100" if official else "")
    for o in range(1, n + 1):
        for v, a in enumerate(range(0, 360, 5)):
            paint(top / f"obj{o}__{a}.png", o, v)
    if official:
        (top / "convertGroupppm2png.pl").write_text("# helper script shipped in the zip\n")


def fake_aloi(root: Path, paint, n=2, official=False):
    base = root / "ALOI"
    for o in range(1, n + 1):
        top = (lambda mode, o=o: base / "png4" / str(o)) if official else (lambda mode, o=o: base / mode / str(o))
        for v, a in enumerate(range(0, 360, 5)):
            paint(top("viewpoint") / f"{o}_r{a}.png", o, v)
        for c in range(1, 4):
            for light in range(1, 9):
                paint(top("illumination") / f"{o}_l{light}c{c}.png", o, light)
        for v, t in enumerate(ALOI_TEMPERATURES):
            paint(top("temperature") / f"{o}_i{t}.png", o, v)


def fake_alot(root: Path, paint, n=2, official=False):
    base = root / "ALOT" / ("alot_png4" if official else "")
    for m in range(1, n + 1):
        d = base / str(m)
        for c in range(1, 5):
            for light in (1, 2, 3, 4, 5, 8):
                for r in ("", "r60", "r120", "r180"):
                    paint(d / f"{m}_c{c}l{light}{r}.png", m, c * 10 + light)
            paint(d / f"{m}_c{c}i.png", m, c)


def fake_exposure_errors(root: Path, paint, n=3, official=False):
    base = root / "ExposureErrors"
    splits = ["training", "validation"] if official else [""]
    for split in splits:
        for s in range(1, n + 1):
            stem = f"a{s:04d}-jmac_DSC{1400 + s}"
            paint(base / split / "GT_IMAGES" / f"{stem}.jpg", s, 0)
            for v, ev in enumerate(EXPOSURES, 1):
                paint(base / split / "INPUT_IMAGES" / f"{stem}_{ev}.JPG", s, v)
    if official:  # the test split has no ground truth and is not used
        paint(base / "testing" / "INPUT_IMAGES" / "a4999-x_P1.JPG", 0, 0)


def fake_dali(root: Path, paint, n=2, official=False):
    for s in range(1, n + 1):
        for v in range(1, 33):
            paint(root / "DaLI" / "input" / "png" / str(s) / f"{v}.png", s, v)


def fake_flickr1024(root: Path, paint, n=3, official=False):
    for split, k in (("Train", n), ("Validation", 1)):
        for i in range(1, k + 1):
            paint(root / "Flickr1024" / split / f"{i:04d}_L.png", i, 0)
            paint(root / "Flickr1024" / split / f"{i:04d}_R.png", i, 1)


def fake_realblur(root: Path, paint, n=2, official=False):
    base = root / "RealBlur" / "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"
    for s in range(1, n + 1):
        for m in (1, 2):
            paint(base / f"scene{s:03d}" / "gt" / f"gt_{m}.png", s * 10 + m, 0)
            paint(base / f"scene{s:03d}" / "blur" / f"blur_{m}.png", s * 10 + m, 1)


FAKES = {
    "COIL100": fake_coil100, "ALOI": fake_aloi, "ALOT": fake_alot, "ExposureErrors": fake_exposure_errors,
    "DaLI": fake_dali, "Flickr1024": fake_flickr1024, "RealBlur": fake_realblur,
}
#: name -> (number of groups, views per group) of the default fakes above.
SHAPES = {
    "COIL100": (2, 72),
    "ALOI-viewpoint": (2, 72),
    "ALOI-illumination": (2 * 3, 8),
    "ALOI-temperature": (2, 12),
    "ALOT-viewpoint": (2 * 6, 16),
    "ALOT-illumination": (2 * 4 * 4, 6),
    "ALOT-temperature": (2 * 4, 2),
    "ExposureErrors": (3, 6),
    "DaLI": (2, 32),
    "Flickr1024": (4, 2),
    "RealBlur": (4, 2),
}


def test_registry_lists_the_eleven_datasets_and_every_one_has_a_fake():
    assert rw.NAMES == tuple(SHAPES)
    # After them, the built-in demo datasets (painted by sslinv; tests/test_demo_tasks.py).
    assert tuple(rw.REALWORLD.names()) == rw.NAMES + rw.DEMO_NAMES
    assert all(rw.get(n).builtin for n in rw.DEMO_NAMES) and not any(rw.get(n).builtin for n in rw.NAMES)
    assert {rw.get(n).dirname for n in rw.NAMES} == set(FAKES)
    assert {n: rw.get(n).k for n in rw.NAMES} == {n: k for n, (_, k) in SHAPES.items()}


@pytest.mark.parametrize("name", rw.NAMES)
def test_loader_reads_its_fake(tmp_path, name):
    entry = rw.get(name)
    FAKES[entry.dirname](tmp_path, Painter())
    ds = entry.load(tmp_path)
    n_groups, k = SHAPES[name]
    assert len(ds.groups) == n_groups
    assert {len(g) for g in ds.groups} == {k} == {ds.expected_views}
    assert len({g.name for g in ds.groups}) == n_groups
    files = [f for g in ds.groups for f in g.files]
    assert len(set(files)) == len(files) and all((ds.root / f).is_file() for f in files)
    ident = ds.identity()
    assert ident["num_images"] == n_groups * k and len(ident["fingerprint"]) == 16


@pytest.mark.parametrize("name", ["COIL100", "ALOI-viewpoint", "ALOI-illumination", "ALOI-temperature",
                                  "ALOT-viewpoint", "ALOT-illumination", "ALOT-temperature", "ExposureErrors"])
def test_loader_reads_the_official_archive_layout(tmp_path, name):
    entry = rw.get(name)
    FAKES[entry.dirname](tmp_path, Painter(), official=True)
    ds = entry.load(tmp_path)
    n_groups, k = SHAPES[name]
    if name == "ExposureErrors":
        n_groups *= 2  # training and validation; testing has no ground truth
    assert len(ds.groups) == n_groups and {len(g) for g in ds.groups} == {k}
    assert "official" in ds.layout


def test_group_rules(tmp_path):
    FAKES["ALOI"](tmp_path, Painter())
    FAKES["ALOT"](tmp_path, Painter())
    FAKES["ExposureErrors"](tmp_path, Painter())
    ill = rw.load("ALOI-illumination", tmp_path)
    assert ill.groups[0].name == "obj1/c1" and ill.groups[2].name == "obj1/c2"  # cameras first, as the reference
    assert all(re.search(rf"_l\dc{g.name[-1]}\.png$", f) for g in ill.groups for f in g.files)
    temp = rw.load("ALOT-temperature", tmp_path).groups[0]
    assert [Path(f).name for f in temp.files] == ["1_c1i.png", "1_c1l8.png"]
    illum = rw.load("ALOT-illumination", tmp_path).groups
    assert [Path(f).name for f in illum[0].files] == [f"1_c1l{x}.png" for x in (1, 2, 3, 4, 5, 8)]
    assert any(g.name == "mat2/c3/r120" for g in illum)
    view = rw.load("ALOT-viewpoint", tmp_path).groups
    assert len({g.name for g in view}) == 12  # 2 textures x 6 lights, all distinct
    assert all(re.search(r"_c\dl2(r\d+)?\.png$", f) for f in next(g for g in view if g.name == "mat1/l2").files)
    expo = rw.load("ExposureErrors", tmp_path).groups[0]
    assert Path(expo.files[0]).parent.name == "GT_IMAGES" and expo.name == "a0001"


def test_verify_counts(tmp_path):
    from sslinv.data import aloi, alot, causal3dident, coil100, dali, exposure_errors, flickr1024, realblur

    paint = Painter()
    for fake in FAKES.values():
        fake(tmp_path, paint)
    assert coil100.verify(tmp_path / coil100.DIRNAME) == {"images": 144, "groups": 2}
    assert aloi.verify(tmp_path / aloi.DIRNAME) == {"viewpoint": 144, "illumination": 48, "temperature": 24, "objects": 2}
    assert alot.verify(tmp_path / alot.DIRNAME) == {"images": 200, "textures": 2}
    assert exposure_errors.verify(tmp_path / exposure_errors.DIRNAME) == {"images": 18, "groups": 3}
    assert dali.verify(tmp_path / dali.DIRNAME) == {"images": 64, "groups": 2}
    assert flickr1024.verify(tmp_path / flickr1024.DIRNAME) == {"pairs": 4}
    assert realblur.verify(tmp_path / realblur.DIRNAME) == {"pairs": 4, "scenes": 2}
    for mod in (aloi, alot, causal3dident, coil100, dali, exposure_errors, flickr1024, realblur):
        with pytest.raises(DataNotFoundError, match=rf"{re.escape(str(tmp_path / 'none' / mod.DIRNAME))}.*sslinv fetch-data {mod.DIRNAME}"):
            mod.verify(tmp_path / "none" / mod.DIRNAME)


def test_incomplete_pairs_are_errors(tmp_path):
    paint = Painter()
    fake_flickr1024(tmp_path, paint)
    (tmp_path / "Flickr1024" / "Train" / "0002_R.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"incomplete.*0002_L\.png.*sslinv fetch-data Flickr1024"):
        rw.load("Flickr1024", tmp_path)
    fake_realblur(tmp_path, paint)
    (tmp_path / "RealBlur" / "RealBlur-J_ECC_IMCORR_centroid_itensity_ref" / "scene002" / "blur" / "blur_1.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"incomplete.*gt_1\.png"):
        rw.load("RealBlur", tmp_path)


def test_aloi_collections_are_independent(tmp_path):
    """Only the viewpoint tar unpacked: viewpoint loads, illumination names its archive."""
    paint = Painter()
    for a in range(0, 360, 5):
        paint(tmp_path / "ALOI" / "png4" / "7" / f"7_r{a}.png")
    assert [g.name for g in rw.load("ALOI-viewpoint", tmp_path).groups] == ["obj7"]
    with pytest.raises(DataNotFoundError, match=r"aloi_red4_ill\.tar.*sslinv fetch-data ALOI"):
        rw.load("ALOI-illumination", tmp_path)


# -------------------------------------------------------------------------- metrics


def test_group_metrics_against_numpy_pairs():
    rng = np.random.default_rng(0)
    for k in (2, 5, 12):
        z = rng.standard_normal((k, 7)) + 3.0
        cos = [z[i] @ z[j] / np.linalg.norm(z[i]) / np.linalg.norm(z[j]) for i in range(k) for j in range(k) if i != j]
        dist = [np.linalg.norm(z[i] - z[j]) for i in range(k) for j in range(i + 1, k)]
        s, d = group_metrics(torch.as_tensor(z))
        assert s == pytest.approx(np.mean(cos), rel=1e-12)
        assert d == pytest.approx(np.mean(dist), rel=1e-12)
        # The reference's number: mean over all k x k pairs, i == j included.
        full = np.mean([z[i] @ z[j] / np.linalg.norm(z[i]) / np.linalg.norm(z[j]) for i in range(k) for j in range(k)])
        assert reference_similarity(s, k) == pytest.approx(full, rel=1e-12)


def test_whitened_distance_is_mahalanobis():
    from scipy.spatial.distance import mahalanobis

    from sslinv.evaluate.stats import whitening_from_stats

    rng = np.random.default_rng(1)
    feats = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6))
    cov, mu = np.cov(feats, rowvar=False), feats.mean(0)
    w = whitening_from_stats(torch.as_tensor(mu), torch.as_tensor(cov), 200)
    f = rng.standard_normal((4, 6))
    _, d = group_metrics(w.whiten(torch.as_tensor(f)))
    inv = np.linalg.inv(cov)
    ref = np.mean([mahalanobis(f[i], f[j], inv) for i in range(4) for j in range(i + 1, 4)])
    assert d == pytest.approx(ref, rel=1e-9)


# ----------------------------------------------------------------------- end to end


@pytest.fixture
def coil_root(tmp_path) -> Path:
    root = tmp_path / "data"
    fake_coil100(root, Painter(varied=True), n=3)
    return root


def test_json_result_file_and_reuse(cache_dir, image_folder, coil_root):
    args = ("--model", "random-tiny", "--dataset", "coil100", "--data-root", str(coil_root),
            "--stats-data", str(image_folder), *FAST)
    out = run_json(*args)
    (r,) = out["results"]
    assert r["dataset"] == "COIL100" and r["num_groups"] == 3 and r["k"] == 72 and r["cached"] is False
    assert -1 < r["similarity"] < 1 and r["distance"] > 0
    assert r["similarity_reference"] == pytest.approx((1 + 71 * r["similarity"]) / 72)
    assert out["statistics"]["resize"] == 64 and out["statistics"]["crop"] == 56
    record = json.loads(Path(r["result_file"]).read_text())
    assert record["schema"] == "sslinv.result/1" and record["pipeline"] == {"resize": 32, "crop": 32}
    groups = record["metrics"]["groups"]
    assert [g["group"] for g in groups] == ["obj1", "obj2", "obj3"] and all(g["k"] == 72 for g in groups)
    assert np.mean([g["similarity"] for g in groups]) == pytest.approx(r["similarity"])
    assert np.mean([g["distance"] for g in groups]) == pytest.approx(r["distance"])
    assert "i != j" in record["metrics"]["convention"]
    again = run_json(*args)
    assert again["results"][0]["cached"] is True and again["results"][0]["similarity"] == r["similarity"]
    assert run_json(*args, "--force")["results"][0]["similarity"] == pytest.approx(r["similarity"], rel=1e-6)


def test_no_group_with_two_views_is_an_error_and_caches_nothing(cache_dir, image_folder, coil_root):
    """Every object keeps one view: nothing to measure, so no result (exit 3), not a
    cached record of nulls that a report would skip."""
    for f in (coil_root / "COIL100").glob("obj*__*.png"):
        if not f.name.endswith("__0.png"):
            f.unlink()
    res = invoke("--model", "random-tiny", "--dataset", "coil100", "--data-root", str(coil_root),
                 "--stats-data", str(image_folder), *FAST)
    assert res.exit_code == 3 and "two or more readable views" in res.stderr, res.stderr
    assert not list((cache_dir / "results").rglob("*.json"))


def test_parity_with_the_reference_formulas(cache_dir, tmp_path, coil_root):
    """The reference's computation, written out: np.cov statistics over the pool (its
    256/224 pipeline, here 64/56), inv + Cholesky whitening, k x k cosine loop including
    i == j, torch.pdist; compared after the i == j conversion."""
    from conftest import write_image_folder
    from PIL import Image
    from torchvision import transforms as T

    from sslinv.models import load_model

    pool = write_image_folder(tmp_path / "pool300", n_classes=4, per_class=60)
    out = run_json("--model", "random-tiny", "--feature-layer", "layer3", "--dataset", "COIL100",
                   "--data-root", str(coil_root), "--stats-data", str(pool), *FAST)
    (r,) = out["results"]
    assert out["statistics"]["regularisation"]["applied"] is False

    model, _ = load_model("random-tiny", cache_dir, layer="layer3")
    norm = T.Lambda(lambda x: x * 255)  # 0..255 floats: the model applies ImageNet's mean/std itself
    pool_tf = T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor(), norm])
    view_tf = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor(), norm])
    with torch.no_grad():
        feats = model(torch.stack([pool_tf(Image.open(p).convert("RGB")) for p in sorted(pool.rglob("*.jpg"))]))
        mean = feats.double().mean(0)
        inv = np.linalg.inv(np.cov(feats.double().numpy(), rowvar=False))
        chol = torch.linalg.cholesky(torch.from_numpy(inv))
        S, L = [], []
        for o in (1, 2, 3):
            views = [view_tf(Image.open(coil_root / "COIL100" / f"obj{o}__{a}.png").convert("RGB")) for a in range(0, 360, 5)]
            z = (mean - model(torch.stack(views)).double()) @ chol
            S.append(torch.nn.functional.cosine_similarity(z[:, None], z[None, :], dim=-1).mean().item())
            L.append(torch.pdist(z, p=2).mean().item())
    assert r["similarity_reference"] == pytest.approx(np.mean(S), rel=1e-4)
    assert r["distance"] == pytest.approx(np.mean(L), rel=1e-4)


def test_all_runs_every_present_dataset(cache_dir, image_folder, coil_root):
    fake_flickr1024(coil_root, Painter(varied=True), n=2)
    (coil_root / "ALOT").mkdir()  # there, but empty: skipped, and the reason said
    res = invoke("--model", "random-tiny", "--dataset", "all", "--data-root", str(coil_root),
                 "--stats-data", str(image_folder), *FAST, "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert [r["dataset"] for r in out["results"]] == ["COIL100", "Flickr1024"]
    assert [r["num_groups"] for r in out["results"]] == [3, 3]
    assert "Not present, skipped: ALOI-viewpoint" in res.stderr
    assert "ALOT-viewpoint is skipped:" in " ".join(res.stderr.split())


def test_imagenet_style_stats_root_uses_its_val_split(cache_dir, tmp_path, coil_root):
    from conftest import write_image_folder

    write_image_folder(tmp_path / "imagenet" / "val", n_classes=2, per_class=6)
    write_image_folder(tmp_path / "imagenet" / "train", n_classes=2, per_class=3, seed=1)
    out = run_json("--model", "random-tiny", "--dataset", "COIL100", "--data-root", str(coil_root),
                   "--stats-data", str(tmp_path / "imagenet"), *FAST)
    assert out["statistics"]["num_images"] == 12
    assert out["statistics"]["pool"]["root"] == str((tmp_path / "imagenet" / "val").resolve())


# --------------------------------------------------------------------------- errors


def test_missing_dataset_names_folder_and_fetch_command(cache_dir, image_folder, tmp_path):
    res = invoke("--model", "random-tiny", "--dataset", "ALOI-illumination", "--data-root", str(tmp_path / "d"),
                 "--stats-data", str(image_folder), *FAST)
    assert res.exit_code == 3 and res.stderr.startswith("error:") and "Traceback" not in res.stderr
    assert str(tmp_path / "d" / "ALOI") in res.stderr and "sslinv fetch-data ALOI" in res.stderr


def test_all_with_nothing_present(cache_dir, image_folder, tmp_path):
    res = invoke("--model", "random-tiny", "--dataset", "all", "--data-root", str(tmp_path / "d"),
                 "--stats-data", str(image_folder), *FAST)
    assert res.exit_code == 3 and "None of the real-world datasets" in res.stderr
    assert "sslinv fetch-data NAME" in res.stderr and str(tmp_path / "d" / "COIL100") in res.stderr


def test_unknown_dataset_did_you_mean(cache_dir, coil_root):
    res = invoke("--model", "random-tiny", "--dataset", "COIL10", "--data-root", str(coil_root), *FAST)
    assert res.exit_code == 2 and "Did you mean 'COIL100'" in res.stderr


def test_missing_default_pool_names_stats_data(cache_dir, coil_root):
    res = invoke("--model", "random-tiny", "--dataset", "COIL100", "--data-root", str(coil_root), *FAST)
    assert res.exit_code == 3
    assert str(coil_root / "imagenet" / "val") in res.stderr and "--stats-data" in res.stderr


def test_dataset_completion():
    from sslinv.cli.realworld import complete_dataset

    assert complete_dataset("ALOT-v") == ["ALOT-viewpoint"]
    assert complete_dataset("coil") == ["COIL100"]
    assert "all" in complete_dataset("")


def test_help_and_completion_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sslinv.cli.main import app\n"
        "for argv in (['realworld', '--help'], ['causal3dident', '--help']):\n"
        "    try:\n"
        "        app(argv, prog_name='sslinv')\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "from sslinv.cli.realworld import complete_dataset\n"
        "assert complete_dataset('Flick') == ['Flickr1024']\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_data_root_may_be_the_dataset_folder_itself(tmp_path):
    fake_coil100(tmp_path, Painter())
    ds = rw.get("COIL100").load(tmp_path / "COIL100", accept_root_itself=True)
    assert len(ds.groups) == 2 and ds.root == (tmp_path / "COIL100").resolve()
    with pytest.raises(DataNotFoundError, match=r"COIL100[/\\]COIL100"):
        rw.get("COIL100").load(tmp_path / "COIL100")
