"""`sslinv synthetic` end to end on a tiny backbone and a small image folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.evaluate.synthetic import sample_images

FAST = ["--resize", "64", "--crop-size", "56", "--batch-size", "16", "--workers", "0", "--device", "cpu"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["synthetic", *args], prog_name="sslinv")


def run_json(*args: str) -> dict:
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


@pytest.fixture
def moco_ckpt(tmp_path):
    """A ResNet-18 checkpoint in the MoCo layout, named misleadingly."""
    from sslinv.models.checkpoints import save_moco_checkpoint
    from sslinv.models.load import random_backbone

    sd = random_backbone("resnet18", seed=3).state_dict()
    path = tmp_path / "resnet50w3_default.pth.tar"
    save_moco_checkpoint(path, {k: v for k, v in sd.items() if not k.startswith("fc.")}, "resnet18")
    return path


def test_json_output_curves_and_result_file(cache_dir, image_folder):
    out = run_json("--model", "random-tiny", "--data", str(image_folder), "-t", "grayscale", "-t", "rotation",
                   "--k", "4", "--num-images", "5", *FAST)
    assert [r["transform"] for r in out["results"]] == ["grayscale", "rotation"]
    for r in out["results"]:
        assert set(r) >= {"transform", "distance", "similarity", "curves", "values", "k"}
        assert len(r["curves"]["distance"]) == len(r["curves"]["similarity"]) == r["k"] == len(r["values"])
        assert r["distance"] == pytest.approx(np.mean(r["curves"]["distance"]))
        assert r["similarity"] == pytest.approx(np.mean(r["curves"]["similarity"]))
        assert -1 <= r["similarity"] <= 1 and r["distance"] > 0
        assert r["cached"] is False
    gray, rot = out["results"]
    # The identity parameter: the clean view itself.
    assert gray["curves"]["distance"][0] == pytest.approx(0, abs=1e-6)
    assert gray["curves"]["similarity"][0] == pytest.approx(1)
    assert rot["values"] == [0.0, 90.0, 180.0, 270.0]
    assert rot["curves"]["similarity"][0] == pytest.approx(1)
    record = json.loads(open(gray["result_file"]).read())
    assert record["schema"] == "sslinv.result/1"
    assert record["config"]["num_images"] == 5 and record["config"]["resize"] == 64
    assert record["model"]["members"][0]["arch"] == "resnet_tiny"
    assert record["dataset"]["num_images"] == 24
    assert record["environment"]["world_size"] == 1 and record["environment"]["torch"]
    assert record["statistics"]["num_images"] == 24


def test_rerun_reuses_finished_results_and_force_recomputes(cache_dir, image_folder):
    args = ("--model", "random-tiny", "--data", str(image_folder), "-t", "h_flip", "--num-images", "4", *FAST)
    first = run_json(*args)
    again = run_json(*args)
    assert again["results"][0]["cached"] is True
    assert again["results"][0]["similarity"] == first["results"][0]["similarity"]
    forced = run_json(*args, "--force")
    assert forced["results"][0]["cached"] is False
    assert forced["results"][0]["similarity"] == pytest.approx(first["results"][0]["similarity"], rel=1e-6)
    # A changed input (seed of the sample) is a different result.
    other = run_json(*args, "--seed", "1")
    assert other["results"][0]["cached"] is False


def test_changed_pool_recomputes_statistics(cache_dir, image_folder):
    from PIL import Image

    args = ("--model", "random-tiny", "--data", str(image_folder), "-t", "invert", "--num-images", "3", *FAST)
    first = run_json(*args)
    assert first["statistics"]["cached"] is False
    assert run_json(*args, "--force")["statistics"]["cached"] is True
    Image.new("RGB", (70, 80), (10, 200, 30)).save(image_folder / "class0" / "new.jpg")
    changed = run_json(*args)
    assert changed["statistics"]["cached"] is False and changed["statistics"]["num_images"] == 25
    assert changed["results"][0]["cached"] is False


def test_moco_checkpoint_path_and_fusion(cache_dir, image_folder, moco_ckpt):
    out = run_json("--model", str(moco_ckpt), "--data", str(image_folder), "-t", "grayscale", "--num-images", "3", *FAST)
    assert out["model_identity"]["members"][0]["arch"] == "resnet18"
    assert out["model_identity"]["dim"] == 512
    fused = run_json("--model", f"random-tiny+{moco_ckpt}", "--data", str(image_folder), "-t", "grayscale",
                     "--num-images", "3", *FAST)
    assert fused["model_identity"]["dim"] == 128 + 512


def test_num_images_all_uses_every_image_once():
    assert list(sample_images(7, None, 0)) == list(range(7))
    assert list(sample_images(7, 50, 0)) == list(range(7))
    s = sample_images(100, 10, 0)
    assert len(set(s.tolist())) == 10 and list(s) == sorted(s)
    assert list(s) == list(sample_images(100, 10, 0))


def test_peak_memory_view_chunks_are_bounded(image_folder):
    """Views are rendered in chunks of at most batch-size, whatever k is."""
    from sslinv.data.folder import scan_pool
    from sslinv.evaluate.features import ViewChunks
    from sslinv.transforms import get_family

    pool = scan_pool(image_folder)
    fam = get_family("rotation")
    grid = fam.grid(256, 64, 56)
    tasks = [(r, p) for r in range(2) for p in range(grid.k)]
    ds = ViewChunks(pool, [0, 1], tasks, lambda img, p, s: fam.view(img, grid.params[p], 64, 56, s), 16, 0)
    sizes = {ds[c][2].shape[0] for c in range(len(ds))}
    assert max(sizes) <= 16 and len(ds) == 2 * 256 // 16


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, code, pattern",
    [
        (["--model", "ventrl", "-t", "grayscale"], 2, r"Unknown model 'ventrl'\. Did you mean 'ventral'"),
        (["--model", "random-tiny", "-t", "rotaton"], 2, r"Unknown transform 'rotaton'\. Did you mean 'rotation'"),
        (["--model", "ventral", "-t", "grayscale"], 4, r"sslinv pretrain --model ventral"),
        (["--model", "random-tiny", "-t", "grayscale", "--num-images", "zero"], 2, r"--num-images must be"),
        (["--model", "random-tiny", "-t", "grayscale", "--device", "cuda"], 5, r"no CUDA GPU"),
    ],
)
def test_errors_are_one_line_with_exit_codes(cache_dir, image_folder, args, code, pattern):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cmd = [a for a in FAST if a not in ("--device", "cpu")] if "--device" in args else FAST
    res = invoke(*args, "--data", str(image_folder), *cmd)
    assert res.exit_code == code, res.stderr
    import re

    assert re.search(pattern, res.stderr), res.stderr
    assert "Traceback" not in res.stderr and res.stderr.startswith("error:")


def test_missing_imagenet_pool_names_path_and_fix(cache_dir, tmp_path):
    res = invoke("--model", "random-tiny", "-t", "grayscale", "--data-root", str(tmp_path / "nodata"), *FAST)
    assert res.exit_code == 3
    assert str(tmp_path / "nodata" / "imagenet" / "val") in res.stderr
    assert "--data demo" in res.stderr and "sslinv fetch-data imagenet" in res.stderr


def test_empty_folder(cache_dir, tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    res = invoke("--model", "random-tiny", "-t", "grayscale", "--data", str(tmp_path / "empty"), *FAST)
    assert res.exit_code == 3 and "No images under" in res.stderr


def test_corrupt_image_named_and_skip_bad_counts_it(cache_dir, image_folder):
    bad = image_folder / "class1" / "img_000.jpg"
    bad.write_bytes(b"not a jpeg")
    args = ("--model", "random-tiny", "-t", "grayscale", "--data", str(image_folder), "--num-images", "all", *FAST)
    res = invoke(*args)
    assert res.exit_code == 3 and str(bad) in res.stderr and "--skip-bad" in res.stderr
    out = run_json(*args, "--skip-bad")
    assert out["statistics"]["skipped"] == ["class1/img_000.jpg"]
    assert out["statistics"]["num_images"] == 23
    assert out["results"][0]["num_images"] == 23


def test_wrong_checkpoint_layout_lists_keys(cache_dir, image_folder, tmp_path):
    path = tmp_path / "weird.pth"
    torch.save({"foo.weight": torch.zeros(2), "bar.bias": torch.zeros(2)}, path)
    res = invoke("--model", str(path), "-t", "grayscale", "--data", str(image_folder), *FAST)
    assert res.exit_code == 4
    assert "foo.weight" in res.stderr and "moco" in res.stderr.lower()


def test_verbose_shows_traceback(cache_dir, image_folder):
    res = invoke("--model", "ventrl", "-t", "grayscale", "--data", str(image_folder), "--verbose", *FAST)
    assert res.exit_code == 2 and "Traceback" in res.stderr


# ---------------------------------------------------------------------- distributed


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "sslinv", "synthetic", *args], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("views", [["-t", "rotation", "-t", "deform"], ["-t", "deform", "--render", "device"]],
                         ids=["pil", "device"])
def test_two_gloo_processes_match_one(cache_dir, image_folder, tmp_path, views):
    """Rows are sharded across ranks and gathered by index, whichever renderer makes the views."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLINV_CACHE_DIR": str(cache_dir)}
    common = ["--model", "random-tiny", "--data", str(image_folder), *views, "--k", "4",
              "--num-images", "7", "--json", *FAST]
    one = _cli(common, env)
    assert one.returncode == 0, one.stderr
    env2 = {**env, "SSLINV_CACHE_DIR": str(tmp_path / "cache2")}
    two = _cli([*common, "--nproc-per-node", "2"], env2)
    assert two.returncode == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # only rank 0 printed
    assert a["statistics"]["num_images"] == b["statistics"]["num_images"] == 24
    for ra, rb in zip(a["results"], b["results"]):
        np.testing.assert_allclose(ra["curves"]["distance"], rb["curves"]["distance"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ra["curves"]["similarity"], rb["curves"]["similarity"], rtol=1e-5, atol=1e-6)
    rec = json.loads(open(b["results"][0]["result_file"]).read())
    assert rec["environment"]["world_size"] == 2
