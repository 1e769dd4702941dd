"""`sslinv pretrain --augment-on device`: workers decode, the views are made on the device.

The tiny runs of tests/test_pretrain.py: the test backbone on 32 x 32 crops of a
24-image folder, batches of 8 (3 steps per epoch), on the CPU device.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_pretrain import (
    TINY,
    assert_same_curve,
    assert_same_weights,
    curve,
    exported_query,
    invoke,
    run_json,
    stop_at,
    tiny_cfg,
)

from sslinv.data.folder import scan_pool
from sslinv.distributed import World
from sslinv.errors import UsageError
from sslinv.pretrain import augment, state
from sslinv.pretrain.data import (
    Decoded,
    DeviceViews,
    RunBatches,
    TwoViews,
    collate_decoded,
    make_train_loader,
    prefetch_factor,
    rank_seed,
    train_batch_bytes,
    unpack_decoded,
)
from sslinv.pretrain.gpu_augment import GPUAugment, batch_generator
from sslinv.pretrain.loop import run
from sslinv.pretrain.state import read_log

DEFAULT = list(augment.PRESETS["default"].augment)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def device_cfg(cache_dir, folder, name="dev", **kw):
    return tiny_cfg(cache_dir, folder, name, augment_on="device", **kw)


def first_batch(pool, seed=0, workers=0, names=DEFAULT, epoch=0):
    """The first batch of ``epoch`` (views on the CPU device) of a one-process run."""
    batches = RunBatches(len(pool), 8, World(), seed, epoch, 0, epoch + 1)
    views = DeviceViews(names, 32, seed, 0)
    loader = make_train_loader(Decoded(pool, False), batches, workers, torch.device("cpu"), 0, views)
    return next(iter(loader.epoch(epoch)))


# ------------------------------------------------------------------------------ pieces


def test_packed_batches_unpack_to_the_decoded_images(image_folder):
    pool = scan_pool(image_folder, name="pool")
    ds = Decoded(pool, skip_bad=False)
    items = [ds[(0, i)] for i in (0, 5, 17)]
    flat, sizes, error = collate_decoded(items)
    assert error is None and flat.dtype == torch.uint8 and flat.ndim == 1
    imgs = unpack_decoded(flat, sizes)
    for img, (hwc, _) in zip(imgs, items):
        assert img.shape == (3, *hwc.shape[:2]) and torch.equal(img, hwc.permute(2, 0, 1))
    assert len({tuple(i.shape) for i in imgs}) > 1  # the images' own sizes, not resized
    # The views of a packed batch are GPUAugment's views of the images themselves.
    q, k = DeviceViews(DEFAULT, 32, 7, 0)(flat, sizes, 2, 5)
    want_q, want_k = GPUAugment(DEFAULT, 32).two_views(
        [hwc.permute(2, 0, 1).contiguous() for hwc, _ in items], batch_generator(7, 2, 5))
    assert torch.equal(q, want_q) and torch.equal(k, want_k)
    assert q.shape == (3, 3, 32, 32) and not torch.equal(q, k)


def test_unreadable_image_is_reported_or_skipped(image_folder):
    bad = image_folder / "class0" / "img_000.jpg"
    bad.write_bytes(b"not a jpeg")
    pool = scan_pool(image_folder, name="pool")
    i = pool.files.index("class0/img_000.jpg")
    assert collate_decoded([Decoded(pool, False)[(0, i)]])[2].startswith(f"Cannot read image {bad}")
    with pytest.warns(UserWarning, match="skipped unreadable image"):
        img, error = Decoded(pool, True)[(0, i)]
    assert error is None and img.dtype == torch.uint8 and img.shape[2] == 3


@pytest.mark.parametrize("preset", sorted(augment.PRESETS))
def test_same_seed_same_first_batch_whatever_the_workers(image_folder, preset):
    pool = scan_pool(image_folder, name="pool")
    names = list(augment.PRESETS[preset].augment)
    q0, k0 = first_batch(pool, names=names)
    assert q0.shape == (8, 3, 32, 32) and q0.dtype == torch.uint8 and not torch.equal(q0, k0)
    q1, k1 = first_batch(pool, workers=1, names=names)
    assert torch.equal(q0, q1) and torch.equal(k0, k1)
    q2, _ = first_batch(pool, seed=1, names=names)
    assert not torch.equal(q0, q2)


def test_ranks_draw_other_views_deterministically(image_folder):
    assert rank_seed(5, 0) == 5
    assert len({rank_seed(s, r) for s in range(4) for r in range(8)}) == 32
    pool = scan_pool(image_folder, name="pool")
    ds = Decoded(pool, False)
    flat, sizes, _ = collate_decoded([ds[(0, i)] for i in range(4)])
    r0, r1 = DeviceViews(DEFAULT, 32, 0, 0), DeviceViews(DEFAULT, 32, 0, 1)
    q0, _ = r0(flat, sizes, 0, 0)
    q1, _ = r1(flat, sizes, 0, 0)
    assert not torch.equal(q0, q1)  # the same images on two ranks: other views
    assert torch.equal(q1, DeviceViews(DEFAULT, 32, 0, 1)(flat, sizes, 0, 0)[0])  # deterministic
    assert not torch.equal(q0, r0(flat, sizes, 0, 1)[0])  # the next step draws anew


def test_datasets_pickle_and_load_under_forkserver(image_folder, monkeypatch):
    pool = scan_pool(image_folder, name="pool")
    ds = pickle.loads(pickle.dumps(Decoded(pool, False)))
    assert torch.equal(ds[(0, 3)][0], Decoded(pool, False)[(0, 3)][0])
    pickle.dumps(TwoViews(pool, augment.build_pipeline(DEFAULT, 32), 0, False))
    assert pickle.loads(pickle.dumps(collate_decoded)) is collate_decoded
    monkeypatch.setenv("SSLINV_START_METHOD", "forkserver")
    q, k = first_batch(pool, workers=1)
    monkeypatch.delenv("SSLINV_START_METHOD")
    q0, k0 = first_batch(pool)
    assert torch.equal(q, q0) and torch.equal(k, k0)


def test_batch_bytes_and_prefetch(image_folder):
    from PIL import Image

    pool = scan_pool(image_folder, name="pool")
    pixels = [Image.open(pool.path(i)).size for i in range(len(pool))]
    mean = sum(3 * w * h for w, h in pixels) / len(pixels)
    assert train_batch_bytes(pool, 8, 32, "device") == 8 * int(mean)
    assert train_batch_bytes(pool, 8, 32, "workers") == 2 * 8 * 3 * 32 * 32
    assert prefetch_factor("device") == 2 and prefetch_factor("workers") == 4


def test_old_checkpoints_meant_workers():
    assert state._recipe({"seed": 0})["augment_on"] == "workers"
    assert state._describe_diff({"seed": 0}, {"seed": 0, "augment_on": "workers"}) == ""
    assert "--augment-on 'workers' there, 'device' now" in state._describe_diff({"seed": 0}, {"seed": 0,
                                                                                              "augment_on": "device"})


# ------------------------------------------------------------------------------ runs


def test_device_run_trains_and_records_the_mode(cache_dir, image_folder):
    out = run_json("--model", "ventral", "--name", "dv", "--data", str(image_folder), "--epochs", "1",
                   "--augment-on", "device", *TINY)
    assert out["augment_on"] == "device" and out["final"]["images"] == 24 and np.isfinite(out["final"]["loss"])
    assert out["final"]["augment_on"] == "device"
    ckpt = torch.load(cache_dir / "pretrain" / "dv" / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    assert ckpt["config"]["augment_on"] == "device" and ckpt["epoch"] == 1
    assert json.loads((cache_dir / "pretrain" / "dv" / "config.json").read_text())["augment_on"] == "device"
    sidecar = json.loads((cache_dir / "checkpoints" / "dv.pth.tar.json").read_text())
    assert sidecar["augment_on"] == "device"
    assert [r["augment_on"] for r in read_log(out["log"]) if r["event"] == "epoch"] == ["device"]
    # The default stays the PIL workers.
    pil = run_json("--model", "ventral", "--name", "pil", "--data", str(image_folder), "--epochs", "1", *TINY)
    assert pil["augment_on"] == "workers" and pil["final"]["loss"] != out["final"]["loss"]


def test_device_runs_resume_to_the_uninterrupted_result(cache_dir, image_folder):
    full = run(device_cfg(cache_dir, image_folder, "full"))
    ref = curve(full.log)
    assert len(ref) == 6
    again = run(device_cfg(cache_dir, image_folder, "again"))  # same seed: the same numbers
    assert_same_curve(curve(again.log), ref)
    # Stopped after step 1 of epoch 1, resumed with a worker: the same views, loss and weights.
    with pytest.raises(KeyboardInterrupt):
        run(device_cfg(cache_dir, image_folder, "cut", save_every_steps=1), on_checkpoint=stop_at(0, 1))
    resumed = run(device_cfg(cache_dir, image_folder, "cut", save_every_steps=1, workers=1))
    assert resumed.resumed and resumed.start_epoch == 0 and resumed.augment_on == "device"
    assert_same_curve(curve(resumed.log), ref)
    assert_same_weights(exported_query(resumed.checkpoint), exported_query(full.checkpoint))
    other = run(device_cfg(cache_dir, image_folder, "seed1", seed=1))
    assert curve(other.log)[0][2] != ref[0][2]


def test_resuming_with_the_other_mode_is_refused(cache_dir, image_folder):
    run(device_cfg(cache_dir, image_folder, "m", epochs=1))
    with pytest.raises(UsageError, match=r"--augment-on 'device' there, 'workers' now.*--force"):
        run(tiny_cfg(cache_dir, image_folder, "m", epochs=2))
    res = invoke("--model", "default", "--name", "m", "--data", str(image_folder), "--epochs", "2", *TINY)
    assert res.exit_code == 2 and "--augment-on 'device' there, 'workers' now" in res.stderr
    assert res.stderr.startswith("error:") and "Traceback" not in res.stderr
    more = run(device_cfg(cache_dir, image_folder, "m", epochs=2))  # the same mode continues it
    assert more.resumed and more.start_epoch == 1


@pytest.mark.parametrize("mode", ["workers", "device"])
def test_small_dev_shm_stops_the_run_before_it_starts(cache_dir, image_folder, monkeypatch, mode):
    import sslinv.cpus

    monkeypatch.setattr(sslinv.cpus, "shm_free", lambda path=sslinv.cpus.SHM: 2**16)
    args = ["--model", "default", "--name", "s", "--data", str(image_folder), "--epochs", "1", *TINY,
            "--workers", "2", "--augment-on", mode]
    res = invoke(*args)
    assert res.exit_code == 2, res.stderr + res.stdout
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error:") and "Traceback" not in line
    assert "--workers" in line and "--ipc=host" in line and "--shm-size" in line and "/dev/shm" in line
    assert "2 workers x " + str(prefetch_factor(mode)) + " batches" in line
    assert not (cache_dir / "pretrain" / "s").exists()  # nothing written
    # Without workers nothing is in flight: the run goes ahead.
    out = run_json(*args[:-4], "--workers", "0", "--augment-on", mode)
    assert out["final"]["images"] == 24


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_gloo_processes_make_their_own_device_views(cache_dir, image_folder):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLINV_CACHE_DIR": str(cache_dir)}
    args = ["--model", "default", "--name", "two", "--data", str(image_folder), "--nproc-per-node", "2", "--epochs",
            "1", "--augment-on", "device", "--json", *TINY]
    out = subprocess.run([sys.executable, "-m", "sslinv", "pretrain", *args], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)  # only rank 0 printed
    assert res["world_size"] == 2 and res["augment_on"] == "device" and res["final"]["images"] == 24
    assert np.isfinite(res["final"]["loss"])
