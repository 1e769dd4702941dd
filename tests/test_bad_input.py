"""Bad input, faults and odd files (issue 14): each case builds the input, runs the
command through the CLI, and checks the exit code, the one-line message (no traceback)
and what the cache holds afterwards."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sslinv import cache
from sslinv.cli.main import app

FAST = ["--resize", "40", "--crop-size", "32", "--batch-size", "16", "--workers", "0", "--device", "cpu"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), prog_name="sslinv")


def synthetic_json(*args: str) -> dict:
    res = invoke("synthetic", *args, "--json")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


def one_line_error(res, code: int) -> str:
    """The command failed with ``code`` and one ``error:`` line on stderr, no traceback."""
    assert res.exit_code == code, (res.exit_code, res.stderr, res.stdout)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr  # progress lines may come first
    return errors[0]


def entries(root: Path, sub: str) -> list[Path]:
    folder = root / sub
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def synth_args(pool: Path, *extra: str) -> list[str]:
    return ["--model", "random-tiny", "--data", str(pool), "-t", "grayscale", "--num-images", "all", *FAST, *extra]


# ------------------------------------------------------- 1: NaN or Inf in the weights


def _checkpoint(path: Path, damage) -> Path:
    from sslinv.models.load import random_backbone

    sd = random_backbone("resnet_tiny", 0).state_dict()
    damage(sd)
    torch.save({"arch": "resnet_tiny", "state_dict": sd}, path)
    return path


def _nothing_cached(cache_dir: Path) -> None:
    for sub in ("stats", "features", "results"):
        assert not [p for p in entries(cache_dir, sub) if not p.name.endswith(".lock")], sub


def test_nan_weights_stop_the_run_naming_the_first_bad_tensor(cache_dir, image_folder, tmp_path):
    def damage(sd):
        sd["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
        sd["layer3.0.bn1.running_var"][1] = float("inf")

    ckpt = _checkpoint(tmp_path / "diverged.pth", damage)
    line = one_line_error(invoke("synthetic", *synth_args(image_folder)[2:], "--model", str(ckpt)), 4)
    assert str(ckpt) in line and "'layer2.0.conv1.weight'" in line and "NaN or Inf" in line
    assert "layer3" not in line
    _nothing_cached(cache_dir)


def _overflowing(sd):  # finite weights whose activations overflow float32
    sd["conv1.weight"] *= 1e30
    sd["layer1.0.conv1.weight"] *= 1e30


def test_non_finite_features_stop_the_run_and_cache_nothing(cache_dir, image_folder, tmp_path):
    ckpt = _checkpoint(tmp_path / "huge.pth", _overflowing)
    line = one_line_error(invoke("synthetic", *synth_args(image_folder)[2:], "--model", str(ckpt)), 1)
    assert "non-finite features" in line and "nothing was cached" in line
    assert ".jpg" in line  # names an image of the batch
    _nothing_cached(cache_dir)


def test_non_finite_cached_features_path_caches_nothing(cache_dir, tmp_path):
    from test_causal3dident import write_causal3dident

    root = write_causal3dident(tmp_path / "c3d", per_class=(6, 3), classes=7)
    ckpt = _checkpoint(tmp_path / "huge.pth", _overflowing)
    res = invoke("causal3dident", "--model", str(ckpt), "--target", "0", "--data-root", str(root),
                 "--resize", "32", "--crop-size", "32", "--workers", "0", "--device", "cpu")
    line = one_line_error(res, 1)
    assert "non-finite features" in line and ".png" in line
    _nothing_cached(cache_dir)


# ------------------------------------------------------------- 2: 16-bit greyscale PNGs


def test_16bit_greyscale_pngs_are_scaled_not_clipped(cache_dir, tmp_path):
    from PIL import Image

    from sslinv.data.folder import load_rgb

    rng = np.random.default_rng(0)
    deep, flat = tmp_path / "deep", tmp_path / "flat"
    for i in range(6):
        wide = (rng.integers(0, 256, (40, 48)) * 257).astype(np.uint16)  # exact 8-bit values
        for folder, arr in ((deep, wide), (flat, (wide // 257).astype(np.uint8))):
            folder.mkdir(exist_ok=True)
            Image.fromarray(arr).save(folder / f"img{i}.png")
    assert Image.open(deep / "img0.png").mode.startswith("I")
    got = np.asarray(load_rgb(deep / "img0.png"))
    assert got.dtype == np.uint8 and got.shape == (40, 48, 3)
    np.testing.assert_array_equal(got, np.asarray(load_rgb(flat / "img0.png")))
    assert (got == 255).mean() < 0.05  # PIL's convert("RGB") made about all of it 255

    a = synthetic_json(*synth_args(deep))
    b = synthetic_json(*synth_args(flat))
    assert a["statistics"]["num_images"] == b["statistics"]["num_images"] == 6
    assert a["results"][0]["curves"] == b["results"][0]["curves"]  # the same pictures


# ---------------------------------------------------------------- 3: symlink loops


def test_symlink_loop_under_data_visits_each_file_once(cache_dir, image_folder):
    (image_folder / "class0" / "loop").symlink_to("..", target_is_directory=True)
    (image_folder / "again").symlink_to("class1", target_is_directory=True)  # a second way in
    os.symlink(image_folder / "class2" / "img_000.jpg", image_folder / "class2" / "zz_link.jpg")
    out = synthetic_json(*synth_args(image_folder))
    assert out["statistics"]["num_images"] == 24  # 3 classes x 8 real files


# ----------------------------------------------------------------- 5, 18: --k grids


@pytest.mark.parametrize("k", ["1", "0"])
def test_k_below_two_is_one_line_usage_error(cache_dir, image_folder, k):
    res = invoke("synthetic", *synth_args(image_folder, "--k", k))
    line = one_line_error(res, 2)
    assert "--k" in line and "2" in line and "sslinv synthetic --help" in line
    assert not cache_dir.exists() or not entries(cache_dir, "results")


def test_smallest_grids_measure_a_change_and_toggles_stay_at_two():
    from sslinv.cli.options import TRANSFORM_NAMES
    from sslinv.transforms.families import MIN_K, get_family

    for name in TRANSFORM_NAMES:
        grid = get_family(name).grid(MIN_K, 256, 224)
        if get_family(name).max_k == 2:
            assert grid.values == [False, True], name
        # at least one view that is not the identity
        assert grid.k >= 1 and (grid.identity is None or grid.k > 1 or grid.values[0] not in (0, 0.0, False)), name


def test_option_errors_are_one_line(cache_dir):
    line = one_line_error(invoke("synthetic", "--model", "random-tiny", "-t", "rotation", "--bogus"), 2)
    assert "--bogus" in line
    line = one_line_error(invoke("synthetic", "--model", "random-tiny"), 2)
    assert "--transform" in line
    line = one_line_error(invoke("nosuchcommand"), 2)
    assert "nosuchcommand" in line and "sslinv --help" in line


# --------------------------------------------------- 7: unreadable cache entries


def _stats_path(out: dict) -> Path:
    return Path(out["statistics"]["path"])


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_unreadable_statistics_are_a_miss_moved_aside(cache_dir, image_folder, damage):
    args = synth_args(image_folder)
    first = synthetic_json(*args)
    path = _stats_path(first)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 3], "garbage": b"not a tensor file" * 10, "empty": b""}[damage])
    with pytest.warns(cache.CacheWarning) as caught:
        res = invoke("synthetic", *args, "--force", "--json")
    assert res.exit_code == 0, res.stderr
    assert "Traceback" not in res.stderr
    (warning,) = [str(w.message) for w in caught if issubclass(w.category, cache.CacheWarning)]
    assert str(path) in warning and "computing it again" in warning and ".corrupt" in warning
    out = json.loads(res.stdout)
    assert out["statistics"]["cached"] is False
    assert Path(str(path) + ".corrupt").is_file()
    torch.load(path, weights_only=True)  # rewritten whole
    assert cache.is_fresh(path, cache.read_json(cache.sidecar(path))["key"])
    assert out["results"][0]["curves"] == first["results"][0]["curves"]


@pytest.mark.parametrize("sidecar", ["[]", '"text"', "{"])
def test_unreadable_sidecar_is_a_miss(cache_dir, image_folder, sidecar):
    args = synth_args(image_folder)
    path = _stats_path(synthetic_json(*args))
    cache.sidecar(path).write_text(sidecar)
    res = invoke("synthetic", *args, "--force", "--json")
    assert res.exit_code == 0 and "Traceback" not in res.stderr, res.stderr
    assert json.loads(res.stdout)["statistics"]["cached"] is False
    assert cache.read_json(cache.sidecar(path))["key"]


def test_unreadable_cached_features_are_a_miss(cache_dir, tmp_path):
    from test_causal3dident import write_causal3dident

    root = write_causal3dident(tmp_path / "c3d", per_class=(6, 3), classes=7)
    args = ["causal3dident", "--model", "random-tiny", "--target", "9", "--data-root", str(root),
            "--resize", "32", "--crop-size", "32", "--workers", "0", "--device", "cpu", "--json"]
    res = invoke(*args)
    assert res.exit_code == 0, res.stderr
    feats = [p for p in entries(cache_dir, "features") if p.suffix == ".pt"]
    assert len(feats) == 2
    for p in feats:
        p.write_bytes(p.read_bytes()[:50])
    with pytest.warns(cache.CacheWarning) as caught:
        res = invoke(*args, "--force")
    assert res.exit_code == 0 and "Traceback" not in res.stderr, res.stderr
    assert sum("cannot be read" in str(w.message) for w in caught) == 2
    assert all(Path(str(p) + ".corrupt").is_file() for p in feats)
    assert json.loads(res.stdout)["features"]["train_cached"] is False


def test_warnings_print_as_one_line_outside_recorders(cache_dir, image_folder):
    """Run as a user runs it (no warning recorder): the cache warning is one line."""
    import subprocess
    import sys

    path = _stats_path(synthetic_json(*synth_args(image_folder)))
    path.write_bytes(b"garbage")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "SSLINV_CACHE_DIR": str(cache_dir)}
    res = subprocess.run([sys.executable, "-m", "sslinv", "synthetic", *synth_args(image_folder), "--force"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if "Cache entry" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: Cache entry") and str(path) in lines[0]
    assert "Traceback" not in res.stderr and "CacheWarning" not in res.stderr


def test_refresh_cache_recomputes_statistics(cache_dir, image_folder):
    args = synth_args(image_folder)
    synthetic_json(*args)
    assert synthetic_json(*args, "--force")["statistics"]["cached"] is True  # --force: the result only
    out = synthetic_json(*args, "--refresh-cache")
    assert out["statistics"]["cached"] is False and out["results"][0]["cached"] is False


# ------------------------------------------ 6: images measured and skipped images


def test_skip_bad_reports_the_images_measured(cache_dir, image_folder):
    bad = [image_folder / "class0" / "img_002.jpg", image_folder / "class2" / "img_005.jpg"]
    for p in bad:
        p.write_bytes(b"not a jpeg")
    args = synth_args(image_folder, "--skip-bad")
    out = synthetic_json(*args)
    assert out["num_images"] == out["results"][0]["num_images"] == 22 and out["num_sampled"] == 24
    assert out["skipped_images"] == out["results"][0]["skipped_images"] == ["class0/img_002.jpg", "class2/img_005.jpg"]
    record = json.loads(Path(out["results"][0]["result_file"]).read_text())
    assert record["metrics"]["num_images"] == 22 and len(record["metrics"]["skipped_images"]) == 2
    res = invoke("synthetic", *args)  # the table, from the cached result
    assert res.exit_code == 0, res.stderr
    assert "(22 images, 2 unreadable skipped," in res.stdout and "24 images" not in res.stdout


def test_realworld_skip_bad_reports_the_images_measured(cache_dir, image_folder, tmp_path):
    from test_realworld import Painter, fake_coil100

    root = tmp_path / "data"
    fake_coil100(root, Painter(varied=True), n=2)
    (root / "COIL100" / "obj2__10.png").write_bytes(b"not a png")
    args = ["realworld", "--model", "random-tiny", "--dataset", "coil100", "--data-root", str(root),
            "--stats-data", str(image_folder), "--resize", "32", "--crop-size", "32", "--stats-resize", "40",
            "--stats-crop-size", "32", "--workers", "0", "--device", "cpu", "--skip-bad"]
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.stderr
    (r,) = json.loads(res.stdout)["results"]
    assert r["num_images"] == 143 and r["skipped_images"] == ["obj2__10.png"]
    res = invoke(*args)
    assert res.exit_code == 0 and "143 (1 skipped)" in res.stdout, res.stdout


# --------------------------------------------- 8: errors raised in loader workers


@pytest.mark.parametrize("workers", ["0", "2"])
def test_unreadable_image_in_a_worker_is_one_line(cache_dir, image_folder, workers):
    bad = image_folder / "class1" / "img_003.jpg"
    bad.write_bytes(b"not a jpeg")
    args = synth_args(image_folder)
    args[args.index("--workers") + 1] = workers
    line = one_line_error(invoke("synthetic", *args), 3)
    assert str(bad) in line and "--skip-bad" in line
    assert "DataLoader" not in line and "Caught" not in line
    _nothing_cached(cache_dir)


def test_decompression_bomb_is_a_bad_image(tmp_path, monkeypatch):
    """An image over Pillow's pixel limit is a bad image (exit 3, --skip-bad skips it),
    not a traceback."""
    from PIL import Image

    from sslinv.data.folder import load_rgb
    from sslinv.errors import BadImageError

    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 > 2 x 1000: a "bomb"
    with pytest.raises(BadImageError, match="big.png"):
        load_rgb(path)


def test_from_worker_keeps_other_errors_as_they_are():
    from sslinv.errors import BadImageError, DataNotFoundError, from_worker

    plain = BadImageError("Cannot read image x.jpg")
    assert from_worker(plain) is plain
    wrapped = DataNotFoundError(
        "Caught DataNotFoundError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
        '  File "w.py", line 3, in f\n    raise DataNotFoundError(msg)\n'
        "sslinv.errors.DataNotFoundError: No images under /data: add some\n"
    )
    got = from_worker(wrapped)
    assert type(got) is DataNotFoundError and str(got) == "No images under /data: add some"


# ------------------------------------------- 12: result files that do not validate


def _spoil(record: dict, how: str):
    if how == "non-numeric":
        record["metrics"]["distance"] = "n/a"
        return record
    if how == "nan":
        record["metrics"]["distance"] = float("nan")  # json.dumps writes NaN, json.loads reads it
        return record
    if how == "no-metrics":
        del record["metrics"]
        return record
    if how == "metrics-list":
        record["metrics"] = []
        return record
    return {"array": [], "null": None, "string": "done"}[how]


@pytest.mark.parametrize("how", ["array", "null", "string", "non-numeric", "nan", "no-metrics", "metrics-list"])
def test_result_file_that_does_not_validate_is_recomputed(cache_dir, image_folder, how):
    args = synth_args(image_folder)
    first = synthetic_json(*args)
    path = Path(first["results"][0]["result_file"])
    path.write_text(json.dumps(_spoil(json.loads(path.read_text()), how)))
    with pytest.warns(cache.CacheWarning) as caught:
        res = invoke("synthetic", *args, "--json")
    assert res.exit_code == 0 and "Traceback" not in res.stderr, res.stderr
    (warning,) = [str(w.message) for w in caught if issubclass(w.category, cache.CacheWarning)]
    assert str(path) in warning and "computing it again" in warning
    out = json.loads(res.stdout)["results"][0]
    assert out["cached"] is False and out["distance"] == first["results"][0]["distance"]
    assert json.loads(path.read_text())["metrics"]["distance"] == first["results"][0]["distance"]  # rewritten
    assert synthetic_json(*args)["results"][0]["cached"] is True


def test_json_output_and_result_files_are_strict_json(cache_dir, image_folder):
    """A singular covariance (fewer images than feature dimensions) has an infinite
    condition number: --json and the result file say null, never Infinity (not JSON)."""
    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))

    res = invoke("synthetic", *synth_args(image_folder), "--json")
    assert res.exit_code == 0, res.stderr
    out = strict(res.stdout)
    rec = strict(Path(out["results"][0]["result_file"]).read_text())
    assert rec["statistics"]["regularisation"]["condition_number"] is None


# -------------------------------------------------- 9: cache that cannot be written


def test_cache_path_that_is_a_file(tmp_path, image_folder, monkeypatch):
    monkeypatch.delenv("SSLINV_CACHE_DIR", raising=False)
    blocker = tmp_path / "cachefile"
    blocker.write_text("not a folder")
    for target in (blocker, blocker / "sub"):
        res = invoke("synthetic", *synth_args(image_folder), "--cache-dir", str(target))
        line = one_line_error(res, 1)
        assert str(target) in line and "--cache-dir" in line and "a file, not a folder" in line
    assert blocker.read_text() == "not a folder"


def test_unwritable_cache_fails_before_any_work(tmp_path, image_folder, monkeypatch):
    import tempfile

    from sslinv.evaluate import synthetic as synth

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    real = tempfile.mkstemp

    def refuse(*a, dir=None, **kw):  # root ignores the mode bits: refuse as the OS would
        if dir is not None and Path(dir) == ro:
            raise PermissionError(13, "Permission denied")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(synth, "run", lambda *a, **k: pytest.fail("work started"))
    line = one_line_error(invoke("synthetic", *synth_args(image_folder), "--cache-dir", str(ro)), 1)
    assert str(ro) in line and "Permission denied" in line and "--cache-dir" in line
    assert list(ro.iterdir()) == []


def test_fetch_data_checks_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLINV_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "dataroot").write_text("x")
    line = one_line_error(invoke("fetch-data", "COIL100", "--data-root", str(tmp_path / "dataroot")), 1)
    assert "data root" in line and "--data-root" in line and str(tmp_path / "dataroot") in line


# ---------------------------------------------------- 11: truncated latents files


def test_byte_truncated_latents_exit_3(cache_dir, tmp_path):
    from test_causal3dident import write_causal3dident

    root = write_causal3dident(tmp_path / "c3d", per_class=(6, 3), classes=7)
    lat = root / "Causal3DIdent" / "trainset" / "latents_3.npy"
    lat.write_bytes(lat.read_bytes()[:-17])
    res = invoke("causal3dident", "--model", "random-tiny", "--target", "0", "--data-root", str(root),
                 "--workers", "0", "--device", "cpu")
    line = one_line_error(res, 3)
    assert str(lat) in line and "truncated" in line
    assert not entries(cache_dir, "results") and not entries(cache_dir, "features")


def test_nan_latents_exit_3_naming_the_file_and_row(cache_dir, tmp_path):
    from test_causal3dident import write_causal3dident

    root = write_causal3dident(tmp_path / "c3d", per_class=(6, 3), classes=7)
    lat = root / "Causal3DIdent" / "testset" / "latents_2.npy"
    values = np.load(lat)
    values[1, 4] = np.nan
    np.save(lat, values)
    res = invoke("causal3dident", "--model", "random-tiny", "--target", "0", "--data-root", str(root),
                 "--workers", "0", "--device", "cpu")
    line = one_line_error(res, 3)
    assert str(lat) in line and "NaN or Inf" in line and "row 1" in line
    assert not entries(cache_dir, "results")


# ---------------------------------------------------------- 13, 14, 18b: checkpoints


@pytest.mark.parametrize("spec", ["./missing.pth.tar", "runs/ckpt_ep10.pth", "model.pt", "x.ckpt"])
def test_missing_checkpoint_path_is_exit_4(cache_dir, image_folder, spec):
    line = one_line_error(invoke("synthetic", *synth_args(image_folder)[2:], "--model", spec), 4)
    assert "No such checkpoint file" in line and Path(spec).name in line
    assert not entries(cache_dir, "stats")


def test_unknown_plain_name_stays_exit_2(cache_dir, image_folder):
    line = one_line_error(invoke("synthetic", *synth_args(image_folder)[2:], "--model", "ventrl"), 2)
    assert "Unknown model 'ventrl'" in line


def test_checkpoint_with_python_objects_never_suggests_weights_only_false(cache_dir, image_folder, tmp_path):
    import datetime

    from sslinv.models.load import random_backbone

    path = tmp_path / "odd.pth"
    torch.save({"state_dict": random_backbone("resnet18", 0).state_dict(), "when": datetime.date(2021, 1, 1)}, path)
    line = one_line_error(invoke("synthetic", *synth_args(image_folder)[2:], "--model", str(path)), 4)
    assert "datetime.date" in line and "weights_only=True" in line and "state dict" in line
    assert "False" not in line and "will likely succeed" not in line
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x02garbage" * 20)
    line = one_line_error(invoke("synthetic", *synth_args(image_folder)[2:], "--model", str(garbage)), 4)
    assert "not a loadable PyTorch checkpoint" in line and "False" not in line
    assert not entries(cache_dir, "stats")


@pytest.mark.parametrize("name, says", [
    ("default", "published as the zoo model 'moco-v2-200ep'"),
    ("ventral", "no public release; the closest public model is 'moco-v2-200ep'"),
    ("dorsal", "no public release; the closest public model is 'moco-v2-200ep'"),
    ("default_w3", "no public release; the closest public model is 'moco-v2-200ep'"),
])
def test_paper_model_without_checkpoint_points_at_the_public_release(cache_dir, image_folder, name, says):
    res = invoke("synthetic", "--model", name, "--data", str(image_folder), "-t", "grayscale", *FAST)
    line = one_line_error(res, 4)
    assert says in line and "--model moco-v2-200ep" in line and f"sslinv pretrain --model {name}" in line


# ------------------------------------------------------------------- 15: the umask


def test_cache_and_result_files_respect_the_umask(cache_dir, image_folder):
    old = os.umask(0o022)
    try:
        out = synthetic_json(*synth_args(image_folder))
    finally:
        os.umask(old)
    files = [_stats_path(out), cache.sidecar(_stats_path(out)), Path(out["results"][0]["result_file"])]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, (f, oct(f.stat().st_mode))
    old = os.umask(0o077)
    try:
        with cache.atomic_path(cache_dir / "private.json") as tmp:
            tmp.write_text("{}")
        built = cache.build_dir(cache_dir / "made", lambda tmp: (tmp / "a").write_text("a"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((cache_dir / "private.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(built.stat().st_mode) == 0o700


# ------------------------------------------------- 16: temporaries of dead writers


def test_stale_temporaries_of_killed_writers_are_cleaned(cache_dir, image_folder):
    args = synth_args(image_folder)
    path = _stats_path(synthetic_json(*args))
    stale_file = path.with_name(f".{path.name}.k1ll3d_x.tmp")
    stale_file.write_bytes(b"half a tensor")
    other = path.with_name(f".{path.name}x.abcdefgh.tmp")  # another entry's name: kept
    other.write_bytes(b"")
    synthetic_json(*args, "--refresh-cache")
    assert not stale_file.exists() and other.exists()

    final = cache_dir / "demo" / "v1-n8-s0"
    stale_dir = final.with_name(".v1-n8-s0.ab12cd34.tmp")  # a pool folder left by SIGKILL
    (stale_dir / "0").mkdir(parents=True)
    (stale_dir / "0" / "img.jpg").write_bytes(b"partial")
    cache.build_dir(final, lambda tmp: (tmp / "done").write_text("ok"))
    assert not stale_dir.exists() and (final / "done").is_file()
    assert [p.name for p in final.parent.iterdir() if p.name.endswith(".tmp")] == []


# --------------------------------------------------------- 17: local mirrors


def test_local_mirror_folder_and_file_url(tmp_path, monkeypatch):
    from sslinv.fetch.manifest import mirror_url
    from sslinv.fetch.records import DATASETS

    url = DATASETS.get("COIL100").resources[0].urls[0]
    mirror = tmp_path / "mirror"
    target = mirror / "CAVE/databases/SLAM_coil-20_coil-100/coil-100/coil-100.zip"
    assert mirror_url(url, str(mirror)) == target.as_uri()
    assert mirror_url(url, mirror.as_uri() + "/") == target.as_uri()
    assert mirror_url(url, "file://localhost" + str(mirror)) == target.as_uri()

    monkeypatch.setenv("SSLINV_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    # Not there: one line, every URL named, no retries with back-off for a local file.
    for given in (str(mirror), mirror.as_uri()):
        line = one_line_error(invoke("fetch-data", "COIL100", "--mirror", given, "--data-root", str(data)), 6)
        assert target.as_uri() in line and "cannot read the local file" in line
    target.parent.mkdir(parents=True)
    target.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # not the published file: the checksum says so
    line = one_line_error(invoke("fetch-data", "COIL100", "--mirror", str(mirror), "--data-root", str(data)), 7)
    assert "checksum" in line and not (data / "COIL100").exists()
    line = one_line_error(invoke("fetch-data", "COIL100", "--mirror", "mirror.lab", "--data-root", str(data)), 2)
    assert "not a URL or a local folder" in line


def test_manifest_error_has_no_literal_backslash_n(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLINV_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "m.toml"
    bad.write_text("[COIL100\nurl = 1\n")
    line = one_line_error(invoke("fetch-data", "COIL100", "--manifest", str(bad), "--data-root",
                                 str(tmp_path / "data")), 2)
    assert "\\n" not in line and "[COIL100]" in line


# ------------------------------------------------------ 19: Caltech101 split files


def test_caltech101_reads_split_files_by_default_and_says_when_it_draws(tmp_path):
    from test_downstream_data import write_caltech101

    from sslinv.data import caltech101

    root = write_caltech101(tmp_path)
    with pytest.warns(UserWarning, match=r"seeded draw \(seed 0, 30 per class\).*sslinv fetch-data Caltech101"):
        drawn = caltech101.load(root, "trainval")
    assert drawn.source.startswith("seeded split") and len(drawn) == 102 * 30
    _classes, files, labels = caltech101.scan(root)
    (root / "train.txt").write_text("".join(f"{files[i]} {labels[i]}\n" for i in range(0, 300, 3)))
    (root / "test.txt").write_text("".join(f"{files[i]} {labels[i]}\n" for i in range(1, 300, 3)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tv, te = caltech101.load(root, "trainval"), caltech101.load(root, "test")
    assert len(tv) == len(te) == 100 and tv.source == f"split files {root.resolve()}"
    assert tv.identity()["source"] != drawn.identity()["source"]  # a different feature-cache key
