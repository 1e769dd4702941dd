"""The runtime layer: loader workers under every start method, datasets that pickle."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from sslinv.errors import UsageError

EVALUATIONS = ("synthetic", "realworld", "causal3dident", "downstream")


def _datasets(image_folder) -> dict[str, Dataset]:
    """One instance of every Dataset class the evaluations hand to a DataLoader, built as
    the commands build them."""
    from sslinv.data.downstream import Split
    from sslinv.data.folder import scan_pool
    from sslinv.evaluate.device_views import DecodedImages
    from sslinv.evaluate.downstream import SplitImages
    from sslinv.evaluate.features import CleanImages, FamilyView, ViewChunks
    from sslinv.transforms import get_family

    pool = scan_pool(image_folder)
    files = [pool.path(i) for i in range(3)]
    fam = get_family("rotation")
    grid = fam.grid(4, 40, 32)
    tasks = [(r, p) for r in range(2) for p in range(grid.k)]
    split = Split("fake", "test", np.zeros(2, dtype=np.int64), files=tuple(files[:2]),
                  boxes=np.array([[0, 0, 30, 30], [5, 5, 40, 40]], dtype=np.float64))
    return {
        "CleanImages": CleanImages(files, 40, 32, skip_bad=True),
        "ViewChunks": ViewChunks(pool, [0, 1], tasks, FamilyView(fam, grid.params, 40, 32), 3, 0),
        "SplitImages": SplitImages(split, 40, 32),
        "DecodedImages": DecodedImages(files, skip_bad=True),
    }


def _dataset_classes() -> set[str]:
    for name in EVALUATIONS:
        importlib.import_module(f"sslinv.evaluate.{name}")
    found, todo = set(), list(Dataset.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("sslinv.evaluate."):
            found.add(cls.__name__)
    return found


def test_every_evaluation_dataset_is_covered(image_folder):
    """A new Dataset class in sslinv.evaluate needs a case in _datasets (and so a pickle test)."""
    assert _dataset_classes() <= set(_datasets(image_folder))


@pytest.mark.parametrize("name", ["CleanImages", "ViewChunks", "SplitImages", "DecodedImages"])
def test_datasets_pickle_for_spawn_and_forkserver(image_folder, name):
    """Workers started by spawn or forkserver receive the dataset pickled (no closures)."""
    ds = _datasets(image_folder)[name]
    copy = pickle.loads(pickle.dumps(ds))
    assert len(copy) == len(ds)
    for a, b in zip(ds[1], copy[1]):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        else:
            assert a == b


def test_start_method_from_the_environment(monkeypatch):
    from sslinv import runtime

    monkeypatch.delenv("SSLINV_START_METHOD", raising=False)
    assert runtime.start_method() is None
    monkeypatch.setenv("SSLINV_START_METHOD", "Forkserver")
    assert runtime.start_method() == "forkserver"
    monkeypatch.setenv("SSLINV_START_METHOD", "thread")
    with pytest.raises(UsageError, match=r"SSLINV_START_METHOD='thread' is not a start method\. Use one of: fork"):
        runtime.start_method()


def test_synthetic_runs_with_a_worker_under_forkserver(cache_dir, image_folder, monkeypatch):
    """Python 3.14's default start method on Linux: the datasets reach the worker pickled
    (the synthetic views used to hold a local closure, which cannot be pickled)."""
    from typer.testing import CliRunner

    from sslinv.cli.main import app

    monkeypatch.setenv("SSLINV_START_METHOD", "forkserver")
    args = ["synthetic", "--model", "random-tiny", "--data", str(image_folder), "-t", "rotation", "--k", "2",
            "--num-images", "2", "--resize", "40", "--crop-size", "32", "--batch-size", "8", "--workers", "1",
            "--device", "cpu", "--json"]
    res = CliRunner().invoke(app, args, prog_name="sslinv")
    assert res.exit_code == 0, res.stderr + res.stdout
    out = json.loads(res.stdout)
    assert [(r["transform"], r["k"]) for r in out["results"]] == [("rotation", 2)]
    assert out["results"][0]["curves"]["similarity"][0] == pytest.approx(1)


def test_loader_workers_run_opencv_on_one_thread_without_importing_it():
    """``init_worker`` does not import OpenCV (most families never use it), yet an OpenCV
    imported later in the worker, or inherited from the parent, runs one thread."""
    code = (
        "import sys\n"
        "from sslinv.runtime import init_worker\n"
        "init_worker(0)\n"
        "print('cv2' in sys.modules)\n"
        "import cv2\n"
        "print(cv2.getNumThreads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FOR_THREADS_NUM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["False", "1"]


class _Squares(Dataset):
    """Item i: (i, a small tensor); item ``bad`` raises ValueError."""

    def __init__(self, n: int, bad: int | None = None):
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if i == self.bad:
            raise ValueError(f"item {i} is unreadable")
        return i, torch.full((2,), float(i * i))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [None, 1, 4, 7])
def test_threaded_loader_gives_the_dataloaders_batches_in_order(threads, batch_size):
    from torch.utils.data import DataLoader

    from sslinv.runtime import ThreadedLoader

    ds = _Squares(10)
    got = list(ThreadedLoader(ds, batch_size, threads=threads))
    want = list(DataLoader(ds, batch_size=batch_size, shuffle=False))
    assert len(got) == len(want) == len(ThreadedLoader(ds, batch_size, threads=threads))
    for a, b in zip(got, want):
        assert torch.equal(torch.as_tensor(a[0]), torch.as_tensor(b[0])) and torch.equal(a[1], b[1])


def test_threaded_loader_raises_the_items_error():
    from sslinv.runtime import ThreadedLoader

    with pytest.raises(ValueError, match="item 5 is unreadable"):
        list(ThreadedLoader(_Squares(10, bad=5), 2, threads=2))


def test_no_workers_on_the_cpu_means_threads(monkeypatch):
    """``make_loader`` with no workers and a CPU model loads in threads of this process,
    one per CPU of the rank; with workers, or for a GPU model, it is a DataLoader."""
    from torch.utils.data import DataLoader

    from sslinv import cpus, runtime

    monkeypatch.setattr(cpus, "cpus_per_rank", lambda *a, **k: 3)
    loader = runtime.make_loader(_Squares(4), 0, 2, device=torch.device("cpu"))
    assert isinstance(loader, runtime.ThreadedLoader) and loader.threads == 3
    assert isinstance(runtime.make_loader(_Squares(4), 1, 2, device=torch.device("cpu")), DataLoader)
    assert isinstance(runtime.make_loader(_Squares(4), 0, 2), DataLoader)  # no device named
    assert runtime.default_workers(torch.device("cpu")) == 0


def test_forkserver_workers_start_with_the_modules_named(monkeypatch):
    """``preload_for_workers`` imports here (for forked workers) and names the modules to
    the forkserver, after the dataset's own module."""
    import multiprocessing.forkserver as fs

    from sslinv import runtime

    monkeypatch.setenv("SSLINV_START_METHOD", "forkserver")
    monkeypatch.setattr(runtime, "_WORKER_IMPORTS", set())
    runtime.preload_for_workers(["json", "colorsys"])
    assert "colorsys" in sys.modules
    runtime._worker_context(_Squares(2))
    assert fs._forkserver._preload_modules == [__name__, "colorsys", "json"]
