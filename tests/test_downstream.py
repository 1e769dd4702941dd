"""`sslinv downstream` end to end on tiny fakes in the real on-disk layouts."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch
from test_downstream_data import write_300w, write_cifar10, write_flowers
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.models.fusion import fuse, member_specs

FAST = ["--resize", "32", "--crop-size", "32", "--batch-size", "32", "--workers", "0", "--device", "cpu"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems: one thread avoids OpenMP spin-waiting on busy CPUs."""
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("downstream-root")
    write_cifar10(root, per_batch=30, n_test=60)
    write_300w(root, per_folder=12)
    return root


@pytest.fixture(scope="module")
def moco_ckpt(tmp_path_factory):
    """A ResNet-18 in the MoCo training-checkpoint layout."""
    from sslinv.models.checkpoints import save_moco_checkpoint
    from sslinv.models.load import random_backbone

    sd = random_backbone("resnet18", seed=3).state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "moco_r18.pth.tar"
    save_moco_checkpoint(path, {k: v for k, v in sd.items() if not k.startswith("fc.")}, "resnet18")
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, ["downstream", *args], prog_name="sslinv")


def run_json(*args: str) -> dict:
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


def test_all_present_json_result_files_and_cv_curve(cache_dir, data_root):
    out = run_json("--model", "random-tiny", "--dataset", "all", "--data-root", str(data_root), *FAST)
    by = {r["dataset"]: r for r in out["results"]}
    assert sorted(by) == ["300w", "cifar10"]  # the fakes present; the other four skipped
    cif, faces = by["cifar10"], by["300w"]
    assert cif["metric"] == "accuracy" and 0 <= cif["score"] <= 1
    assert faces["metric"] == "r2" and faces["score"] <= 1
    for r in (cif, faces):
        assert set(r) >= {"dataset", "metric", "score", "wd", "cv"}
        assert len(r["cv"]["wd"]) == len(r["cv"]["score"]) == 45
        assert r["cv"]["wd"][0] == pytest.approx(1e-6) and r["cv"]["wd"][-1] == pytest.approx(1e5)
        assert r["wd"] in r["cv"]["wd"] and r["cached"] is False
        scores = np.array([np.nan if s is None else s for s in r["cv"]["score"]])
        assert r["cv"]["score"][r["cv"]["wd"].index(r["wd"])] == pytest.approx(np.nanmax(scores))
    assert (cif["n_trainval"], cif["n_test"]) == (150, 60)
    assert (faces["n_trainval"], faces["n_test"]) == (14, 10)
    rec = json.loads(open(cif["result_file"]).read())
    assert rec["schema"] == "sslinv.result/1" and rec["command"] == "downstream"
    assert rec["metrics"]["solver"] == "logistic-lbfgs" and rec["metrics"]["C"] == pytest.approx(1 / cif["wd"])
    assert len(rec["metrics"]["cv"]["fold_scores"]) == 45 and len(rec["metrics"]["cv"]["fold_scores"][0]) == 5
    assert rec["probe"]["folds"] == 5 and rec["probe"]["wd_shift"] == 0
    assert rec["dataset"]["trainval"]["num_images"] == 150 and rec["environment"]["torch"]
    rec = json.loads(open(faces["result_file"]).read())
    assert rec["metrics"]["solver"] == "ridge-eigh" and rec["metrics"]["alpha"] == pytest.approx(faces["wd"])


def test_table_output(cache_dir, data_root):
    res = invoke("--model", "random-tiny", "-d", "CIFAR10", "--data-root", str(data_root), *FAST)
    assert res.exit_code == 0, res.stderr
    assert "cifar10" in res.stdout and "accuracy" in res.stdout and "test score" in res.stdout


def test_rerun_reuses_result_and_force_reuses_features(cache_dir, data_root, monkeypatch):
    args = ("--model", "random-tiny", "-d", "300w", "--data-root", str(data_root), *FAST)
    first = run_json(*args)["results"][0]
    again = run_json(*args)["results"][0]
    assert again["cached"] is True and again["score"] == first["score"]

    from sslinv.evaluate.features import Extractor

    def no_forward(self, images):
        raise AssertionError("a forward pass ran although the features are cached")

    monkeypatch.setattr(Extractor, "__call__", no_forward)
    forced = run_json(*args, "--force")["results"][0]
    assert forced["cached"] is False and forced["score"] == pytest.approx(first["score"], rel=1e-9)
    rec = json.loads(open(forced["result_file"]).read())
    assert all(m["trainval"]["cached"] and m["test"]["cached"] for m in rec["features"]["members"])
    # Another probe seed is a new result from the same features.
    other = run_json(*args, "--seed", "1")["results"][0]
    assert other["cached"] is False


def test_changed_labels_are_a_new_result_from_the_same_features(cache_dir, tmp_path):
    """Flowers' labels live in imagelabels.mat, which the images' fingerprint does not
    cover: a changed label file recomputes the result (the features are reused)."""
    from scipy.io import loadmat, savemat

    root = write_flowers(tmp_path / "data", n=60)
    args = ("--model", "random-tiny", "-d", "flowers", "--probe", "knn", "--data-root", str(tmp_path / "data"), *FAST)
    first = run_json(*args)["results"][0]
    labels = loadmat(root / "imagelabels.mat")["labels"]
    savemat(root / "imagelabels.mat", {"labels": np.ones_like(labels)})  # one class everywhere
    again = run_json(*args)["results"][0]
    assert again["cached"] is False and again["score"] == 1.0 != first["score"]
    member = json.loads(open(again["result_file"]).read())["features"]["members"][0]
    assert member["trainval"]["cached"] is True


def test_fusion_reuses_member_features(cache_dir, data_root, moco_ckpt, monkeypatch):
    base = ("-d", "cifar10", "--data-root", str(data_root), *FAST)
    run_json("--model", "random-tiny", *base)
    run_json("--model", str(moco_ckpt), *base)

    from sslinv.evaluate.features import Extractor

    monkeypatch.setattr(Extractor, "__call__", lambda self, x: (_ for _ in ()).throw(AssertionError("forward")))
    fused = run_json("--model", f"random-tiny+{moco_ckpt}", *base)
    r = fused["results"][0]
    assert fused["model_identity"]["dim"] == 128 + 512
    assert [m["arch"] for m in fused["model_identity"]["members"]] == ["resnet_tiny", "resnet18"]
    # One '+': the weight-decay grid moves up by two decades.
    assert r["cv"]["wd"][0] == pytest.approx(1e-4) and r["cv"]["wd"][-1] == pytest.approx(1e7)
    res = invoke("--model", f"random-tiny+{moco_ckpt}", "--fuse", "add", *base)
    assert res.exit_code == 2 and "dimensions differ (128, 512)" in res.stderr


def test_fuse_modes_and_member_specs(tmp_path):
    a, b = torch.arange(6.0).view(2, 3), torch.ones(2, 3)
    assert fuse([a], "add") is a
    torch.testing.assert_close(fuse([a, b], "cat"), torch.cat([a, b], 1))
    torch.testing.assert_close(fuse([a, b], "add"), a + b)
    torch.testing.assert_close(fuse([a, b], "mean"), (a + b) / 2)
    assert member_specs("default+ventral+dorsal", tmp_path) == ["default", "ventral", "dorsal"]
    odd = tmp_path / "a+b.pth"
    odd.write_bytes(b"")
    assert member_specs(str(odd), tmp_path) == [str(odd)]


def test_mean_fusion_of_a_model_with_itself_equals_the_model(cache_dir, data_root):
    base = ("-d", "300w", "--data-root", str(data_root), *FAST)
    alone = run_json("--model", "random-tiny", *base)["results"][0]
    mean = run_json("--model", "random-tiny+random-tiny", "--fuse", "mean", "--wd-shift", "0", *base)["results"][0]
    assert mean["score"] == pytest.approx(alone["score"], rel=1e-9) and mean["wd"] == alone["wd"]


def test_moco_resnet18_checkpoint_json(cache_dir, data_root, moco_ckpt):
    """The held-out check's command line: --model PATH --data-root PATH --device cpu --json."""
    out = run_json("--model", str(moco_ckpt), "-d", "cifar10", "--data-root", str(data_root), *FAST)
    r = out["results"][0]
    assert out["model_identity"]["members"][0]["arch"] == "resnet18"
    assert out["model_identity"]["members"][0]["layout"].startswith("moco")
    assert {"dataset": "cifar10", "metric": "accuracy"}.items() <= r.items() and 0.2 < r["score"] <= 1


@pytest.mark.slow
def test_moco_resnet18_checkpoint_matches_sklearn(cache_dir, tmp_path, moco_ckpt):
    """The held-out check's shape (--model PATH --data-root PATH --device cpu --json) on a
    CIFAR-10 fake with more images than feature dimensions (n > d: a well-posed problem at
    every weight decay). On the same cached features and folds, the CV scores are those
    of separate sklearn LogisticRegression(C=1/wd) fits per fold (the reference's
    procedure) and the test score is sklearn's refit at the chosen weight decay, both
    solved to convergence (with max_iter=100 sklearn stops short on raw features)."""
    from sklearn.linear_model import LogisticRegression

    from sslinv.data.downstream import get_dataset
    from sslinv.probes.cv import kfold_splits

    root = tmp_path / "data"
    write_cifar10(root, per_batch=150, n_test=300)
    out = run_json("--model", str(moco_ckpt), "-d", "cifar10", "--data-root", str(root), *FAST)
    r = out["results"][0]
    assert out["model_identity"]["members"][0]["arch"] == "resnet18" and 0.2 < r["score"] < 1
    rec = json.loads(open(r["result_file"]).read())
    feats = {s: torch.load(rec["features"]["members"][0][s]["path"], weights_only=True).numpy()
             for s in ("trainval", "test")}
    ds = get_dataset("cifar10")
    y_tv, y_te = ds.load(root, "trainval").targets, ds.load(root, "test").targets
    folds = kfold_splits(len(y_tv), 5, 0)
    wds = r["cv"]["wd"]
    best = wds.index(r["wd"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in sorted({max(best - 4, 0), best, min(best + 4, 44)}):
            ref = [LogisticRegression(C=1 / wds[a], max_iter=5000, tol=1e-8).fit(feats["trainval"][tr], y_tv[tr])
                   .score(feats["trainval"][va], y_tv[va]) for tr, va in folds]
            assert r["cv"]["score"][a] == pytest.approx(np.mean(ref), abs=0.01)
        ref = LogisticRegression(C=1 / r["wd"], max_iter=5000, tol=1e-8).fit(feats["trainval"], y_tv)
        ref = ref.score(feats["test"], y_te)
    assert abs(r["score"] - ref) <= 0.01 + 1e-9


def test_knn_probe(cache_dir, data_root):
    out = run_json("--model", "random-tiny", "-d", "cifar10", "--probe", "knn", "--data-root", str(data_root), *FAST)
    r = out["results"][0]
    assert r["probe"] == "knn" and r["wd"] is None and r["cv"] is None and 0 <= r["score"] <= 1
    rec = json.loads(open(r["result_file"]).read())
    assert rec["probe"] == {"kind": "knn", "k": 20, "temperature": 0.07, "features": "l2-normalised"}
    res = invoke("--model", "random-tiny", "-d", "300w", "--probe", "knn", "--data-root", str(data_root), *FAST)
    assert res.exit_code == 2 and "--probe knn classifies; 300w is a regression task" in res.stderr


@pytest.mark.parametrize(
    "args, code, pattern",
    [
        (["--model", "random-tiny", "-d", "flowers"], 3,
         r"Dataset Flowers not found under .*Flowers .*Run: sslinv fetch-data Flowers"),
        (["--model", "random-tiny", "-d", "cifar100"], 2, r"Unknown downstream dataset 'cifar100'\. Did you mean 'cifar10'"),
        (["--model", "ventrl", "-d", "cifar10"], 2, r"Unknown model 'ventrl'\. Did you mean 'ventral'"),
        (["--model", "random-tiny", "-d", "cifar10", "--split-dir", "."], 2, r"--split-dir applies to caltech101 only"),
        (["--model", "random-tiny+", "-d", "cifar10"], 2, r"empty member"),
        (["--model", "random-tiny", "-d", "cifar10", "--resize", "16"], 2, r"--crop-size \(32\) cannot exceed"),
    ],
)
def test_errors_are_one_line_with_exit_codes(cache_dir, data_root, args, code, pattern):
    fast = FAST[2:] if "--resize" in args else FAST
    res = invoke(*args, "--data-root", str(data_root), *fast)
    assert res.exit_code == code, res.stderr
    assert re.search(pattern, res.stderr), res.stderr
    assert "Traceback" not in res.stderr and res.stderr.startswith("error:")


def test_missing_everything_names_the_data_root(cache_dir, tmp_path):
    res = invoke("--model", "random-tiny", "-d", "all", "--data-root", str(tmp_path / "none"), *FAST)
    assert res.exit_code == 3
    assert str(tmp_path / "none") in res.stderr and "sslinv fetch-data" in res.stderr
    res = invoke("--model", "random-tiny", "-d", "cifar10", "--data-root", str(tmp_path / "none"), *FAST)
    assert res.exit_code == 3
    assert str(tmp_path / "none" / "CIFAR10") in res.stderr and "sslinv fetch-data CIFAR10" in res.stderr
