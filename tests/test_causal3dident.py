"""`sslinv causal3dident` on a fake in the exact Causal3DIdent layout, whose images show
some latent columns (background hue, object hue, object position) and not the others."""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.data import causal3dident as c3d
from sslinv.errors import DataNotFoundError, UsageError
from sslinv.evaluate.causal3dident import parse_targets, subset_rows

FAST = ["--resize", "32", "--crop-size", "32", "--batch-size", "64", "--workers", "0", "--device", "cpu"]
VISIBLE = (0, 7, 9)  # pos_x, obj_hue, bg_hue are drawn; every other column is noise


def invoke(*args: str):
    return CliRunner().invoke(app, ["causal3dident", *args], prog_name="sslinv")


def run_json(*args: str) -> dict:
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


def _rgb(h: float, s: float = 0.8, v: float = 0.9) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255


def write_causal3dident(root: Path, per_class=(24, 10), classes=7, latents_name="latents", seed=0) -> Path:
    """``root/Causal3DIdent/{trainset,testset}/images_<i>/<idx>.png`` + ``<name>_<i>.npy``.

    Background colour = bg hue (col 9); a square of the object hue (col 7) at x = pos_x
    (col 0); the class sets the square's size; the other columns are pure noise.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = root / c3d.DIRNAME
    for split, n in zip(("trainset", "testset"), per_class):
        width = len(str(n - 1))
        for i in range(classes):
            lat = np.column_stack([rng.uniform(-1, 1, (n, 7)), rng.uniform(0, 1, (n, 3))])
            folder = base / split / f"images_{i}"
            folder.mkdir(parents=True)
            for j, z in enumerate(lat):
                img = np.zeros((32, 32, 3)) + _rgb(0.8 * z[9])
                size = 6 + 3 * i
                x = int(round((z[0] + 1) / 2 * (32 - size)))
                img[16 - size // 2 : 16 - size // 2 + size, x : x + size] = _rgb(0.8 * z[7], 1.0, 0.6)
                img += rng.normal(0, 3, img.shape)
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{j:0{width}d}.png")
            np.save(base / split / f"{latents_name}_{i}.npy", lat)
    return root


@pytest.fixture(scope="module")
def c3d_root(tmp_path_factory) -> Path:
    return write_causal3dident(tmp_path_factory.mktemp("c3d"))


# --------------------------------------------------------------------------- loader


def test_loader_reads_the_layout(c3d_root, tmp_path):
    train = c3d.load_split(c3d_root / c3d.DIRNAME, "train")
    assert len(train) == 7 * 24 and train.latents.shape == (168, 10) and train.latents_file == "latents"
    assert train.labels.tolist() == [i for i in range(7) for _ in range(24)]
    assert train.files[:3] == ("images_0/00.png", "images_0/01.png", "images_0/02.png")
    assert c3d.verify(c3d_root / c3d.DIRNAME) == {"train": 168, "test": 70, "classes": 7}
    # Rows follow the image number, not the string order, when names are not zero-padded.
    raw = write_causal3dident(tmp_path, per_class=(12, 3), classes=2, latents_name="raw_latents")
    for p in sorted((raw / c3d.DIRNAME / "trainset" / "images_1").iterdir()):
        p.rename(p.with_name(f"{int(p.stem)}.png"))
    split = c3d.load_split(raw / c3d.DIRNAME, "train")
    assert split.latents_file == "raw_latents"
    assert [Path(f).name for f in split.files[12:15]] == ["0.png", "1.png", "2.png"]
    assert Path(split.files[-1]).name == "11.png"
    np.testing.assert_array_equal(split.latents[12:], np.load(raw / c3d.DIRNAME / "trainset" / "raw_latents_1.npy"))


def test_loader_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match=rf"{re.escape(str(tmp_path / 'Causal3DIdent'))}.*sslinv fetch-data Causal3DIdent"):
        c3d.load_split(tmp_path / "Causal3DIdent", "train")
    root = write_causal3dident(tmp_path, per_class=(4, 2), classes=2)
    (root / c3d.DIRNAME / "trainset" / "images_1" / "3.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"images_1/ has 3 images but latents_1\.npy has shape \(4, 10\)"):
        c3d.load_split(root / c3d.DIRNAME, "train")
    (root / c3d.DIRNAME / "testset" / "latents_0.npy").unlink()
    with pytest.raises(DataNotFoundError, match=r"incomplete.*latents_0\.npy"):
        c3d.load_split(root / c3d.DIRNAME, "test")


def test_targets_and_subsets():
    assert parse_targets(["0", "bg_hue", "class"]) == [0, 9, "class"]
    assert parse_targets(["all", "3"]) == list(range(10))
    assert parse_targets(["rot_x", "spotlight"]) == [3, 6]
    with pytest.raises(UsageError, match=r"Did you mean 'obj_hue'"):
        parse_targets(["obj_hu"])
    with pytest.raises(UsageError, match=r"0\.\.9"):
        parse_targets(["10"])
    rows = subset_rows(100, 30, seed=0, stream=0)
    assert len(set(rows.tolist())) == 30 and list(rows) == sorted(rows)
    assert (rows == subset_rows(100, 30, 0, 0)).all() and not (rows == subset_rows(100, 30, 1, 0)).all()
    assert list(subset_rows(5, None, 0, 0)) == list(subset_rows(5, 50, 0, 0)) == [0, 1, 2, 3, 4]


def test_cli_latent_names_match_the_loader():
    from sslinv.cli.causal3dident import LATENT_NAMES, SOLVERS
    from sslinv.probes.krr import SOLVERS as KRR_SOLVERS

    assert LATENT_NAMES == c3d.LATENT_NAMES and SOLVERS == KRR_SOLVERS


# ----------------------------------------------------------------------- end to end


def test_all_targets_visible_high_noise_near_zero(cache_dir, c3d_root):
    out = run_json("--model", "random-tiny", "--target", "all", "--data-root", str(c3d_root), *FAST)
    by = {r["target"]: r for r in out["results"]}
    assert list(by) == list(range(10))
    for r in out["results"]:
        assert set(r) >= {"target", "r2", "name", "alpha", "gamma", "cv_r2"} and r["metric"] == "r2"
        assert r["num_train"] == 168 and r["num_test"] == 70 and r["cached"] is False
    assert by[9]["r2"] > 0.8, by[9]  # background colour
    assert by[7]["r2"] > 0.25, by[7]  # object colour (a small square on a varying background)
    assert by[0]["r2"] > 0.3, by[0]  # position, through global average pooling
    for t in set(range(10)) - set(VISIBLE):  # pure noise: about zero
        assert abs(by[t]["r2"]) < 0.25, by[t]
    assert out["features"]["train_cached"] is False
    rec = json.loads(Path(by[9]["result_file"]).read_text())
    assert rec["metrics"]["cv_grid"]["alphas"] == pytest.approx([1, 0.1, 0.01, 1e-3, 1e-4])
    assert len(rec["metrics"]["cv_grid"]["r2"]) == 5 and len(rec["metrics"]["cv_grid"]["r2"][0]) == 8

    # Another target reuses the cached features; a rerun reuses the finished result.
    cls = run_json("--model", "random-tiny", "--target", "class", "--target", "bg_hue",
                   "--data-root", str(c3d_root), *FAST)
    assert cls["features"]["train_cached"] is True and cls["features"]["test_cached"] is True
    c, bg = cls["results"]
    assert c["target"] == "class" and c["metric"] == "accuracy" and c["r2"] == c["accuracy"] > 0.35  # chance: 1/7
    rec = json.loads(Path(c["result_file"]).read_text())["metrics"]
    assert rec["solver"] == "torch-lbfgs" and rec["not_converged"] == 0 and rec["C"] in rec["cv_grid"]["Cs"]
    assert bg["cached"] is True and bg["r2"] == by[9]["r2"]


def test_seeded_subsets_and_folds_rerun_identically(cache_dir, c3d_root, tmp_path):
    args = ("--model", "random-tiny", "--target", "obj_hue", "--max-train", "100", "--max-test", "40",
            "--data-root", str(c3d_root), *FAST)
    first = run_json(*args)["results"][0]
    assert first["num_train"] == 100 and first["num_test"] == 40
    again = run_json(*args, "--force", "--cache-dir", str(tmp_path / "other"), "--solver", "eigh")["results"][0]
    assert again["cached"] is False
    assert again["r2"] == pytest.approx(first["r2"], abs=1e-8)
    assert (again["alpha"], again["gamma"]) == (first["alpha"], first["gamma"])


def test_changed_latents_are_a_new_result_from_the_same_features(cache_dir, tmp_path, monkeypatch):
    """The latents are read from their own files, which the image fingerprint does not
    cover: a changed latents file recomputes the result (not the features)."""
    root = write_causal3dident(tmp_path / "data")
    args = ("--model", "random-tiny", "--target", "pos_x", "--max-train", "60", "--max-test", "30",
            "--data-root", str(root), *FAST)
    first = run_json(*args)["results"][0]
    for f in (root / c3d.DIRNAME).glob("*set/latents_*.npy"):
        lat = np.load(f)
        lat[:, 0] = np.random.default_rng(1).uniform(-1, 1, len(lat))  # pos_x no longer what the images show
        np.save(f, lat)
    again = run_json(*args)
    assert again["results"][0]["cached"] is False and again["features"]["train_cached"] is True
    assert again["results"][0]["r2"] != first["r2"]


def test_fusion_reuses_member_features(cache_dir, c3d_root, monkeypatch):
    """Features are cached per member and fused after: a fusion of a cached model costs
    no forward pass, and mean-fusing a model with itself gives the model's numbers."""
    args = ("--target", "bg_hue", "--max-train", "40", "--max-test", "20", "--data-root", str(c3d_root), *FAST)
    alone = run_json("--model", "random-tiny", *args)

    from sslinv.evaluate.features import Extractor

    monkeypatch.setattr(Extractor, "__call__", lambda self, x: (_ for _ in ()).throw(AssertionError("forward")))
    cat = run_json("--model", "random-tiny+random-tiny", *args)
    assert cat["model_identity"]["dim"] == 256 and cat["features"]["dim"] == 256
    assert cat["features"]["train_cached"] is True and cat["results"][0]["cached"] is False
    mean = run_json("--model", "random-tiny+random-tiny", "--fuse", "mean", *args)
    assert mean["features"]["dim"] == 128
    assert mean["results"][0]["r2"] == pytest.approx(alone["results"][0]["r2"], abs=1e-9)


def test_class_probe_warns_about_fits_cut_off_by_max_iter(cache_dir, c3d_root, monkeypatch):
    import functools

    from sslinv.evaluate import causal3dident as mod

    monkeypatch.setattr(mod, "logistic_probe", functools.partial(mod.logistic_probe, max_iter=1))
    res = invoke("--model", "random-tiny", "--target", "class", "--max-train", "60", "--max-test", "20",
                 "--data-root", str(c3d_root), *FAST)
    assert res.exit_code == 0, res.stderr
    assert re.search(r"class probe: \d+ of 46 logistic problems stopped at max_iter 1 before tol 0.0001",
                     " ".join(res.stderr.split())), res.stderr


# --------------------------------------------------------------------------- errors


def test_missing_dataset_names_path_and_fetch(cache_dir, tmp_path):
    res = invoke("--model", "random-tiny", "--target", "0", "--data-root", str(tmp_path / "d"), *FAST)
    assert res.exit_code == 3 and res.stderr.startswith("error:") and "Traceback" not in res.stderr
    assert str(tmp_path / "d" / "Causal3DIdent") in res.stderr and "sslinv fetch-data Causal3DIdent" in res.stderr


@pytest.mark.parametrize("args, pattern", [
    (["--target", "bg_hu"], r"Unknown --target 'bg_hu'\. Did you mean 'bg_hue'"),
    (["--target", "0", "--max-train", "zero"], r"--max-train must be a positive integer or 'all'"),
    (["--target", "0", "--solver", "qr"], r"Unknown --solver 'qr'"),
])
def test_usage_errors(cache_dir, tmp_path, args, pattern):
    res = invoke("--model", "random-tiny", *args, "--data-root", str(tmp_path), *FAST)
    assert res.exit_code == 2 and re.search(pattern, res.stderr), res.stderr
