"""Feature extraction in item order and the feature cache."""


import pytest
import torch

from sslinv.data.folder import scan_pool
from sslinv.distributed import World
from sslinv.evaluate.features import (
    CleanImages,
    Extractor,
    cached_features,
    extract,
    features_key,
)
from sslinv.models import load_model


def test_extract_in_order_and_cache_hits(cache_dir, image_folder):
    pool = scan_pool(image_folder)
    files = [pool.path(i) for i in range(len(pool))]
    model, identity = load_model("random-tiny", cache_dir)
    ex = Extractor(model, torch.device("cpu"))
    ds = CleanImages(files, 48, 40, skip_bad=False)
    feats = extract(ex, ds, batch_size=5, workers=0, world=World())
    assert feats.shape == (len(files), 128)
    single = ex(ds[3][1][None])
    torch.testing.assert_close(feats[3:4], single, rtol=1e-4, atol=1e-5)

    key = features_key(identity, {"name": "pool", "split": "all", **pool.identity()}, {"resize": 48, "crop": 40})
    calls = []

    def compute():
        calls.append(1)
        return feats

    a, hit_a = cached_features(cache_dir, key, compute, World())
    b, hit_b = cached_features(cache_dir, key, compute, World())
    assert (hit_a, hit_b) == (False, True) and calls == [1]
    torch.testing.assert_close(a, b)
    other = {**key, "pipeline": {"resize": 64, "crop": 56}}
    _, hit_c = cached_features(cache_dir, other, compute, World())
    assert hit_c is False and calls == [1, 1]


OPENCV_AFTER_POOL = r"""
import cv2, numpy as np, torch
from torch.utils.data import Dataset
from sslinv.runtime import make_loader

img = np.random.rand(800, 800, 3).astype(np.float32)
for _ in range(3):  # starts OpenCV's thread pool in this (parent) process
    cv2.warpPerspective(img, np.eye(3), (800, 800))
assert cv2.getNumThreads() > 1, "OpenCV has no thread pool here: the test would prove nothing"

class Blurred(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        return torch.from_numpy(cv2.GaussianBlur(img[:64, :64], (5, 5), 1.0))

print(sum(float(b.sum()) > 0 for b in make_loader(Blurred(), workers=1, batch_size=2)))
"""


def test_loader_workers_survive_opencv_used_before_fork():
    """A worker forked after the parent ran OpenCV in threads used to hang in its first
    OpenCV call (seen when the demo painted its tasks and then extracted features)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", OPENCV_AFTER_POOL], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2"


# ------------------------------------------------- device-side extraction (issue 12)


def test_channels_last_features_equal_the_contiguous_layout(cache_dir):
    from featurefakes import Items, Net

    ds = Items(10)
    fast = Extractor(Net(), torch.device("cpu"), channels_last=True)
    plain = Extractor(Net(), torch.device("cpu"), channels_last=False)
    assert fast.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    a = extract(fast, ds, batch_size=4, workers=0, world=World())
    b = extract(plain, ds, batch_size=4, workers=0, world=World())
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a, extract(fast, ds, batch_size=3, workers=0, world=World()))  # any batch size


def test_finite_check_waits_once_per_window_and_names_the_first_bad_image():
    from featurefakes import Net

    from sslinv.errors import NonFiniteError
    from sslinv.evaluate.features import FiniteCheck

    ex = Extractor(Net(), torch.device("cpu"), name="net")
    watch = FiniteCheck(ex, every=3)
    ok = torch.ones(4, 2)
    watch.add(ok, lambda: ["a0", "a1", "a2", "a3"])
    bad = ok.clone()
    bad[2, 1], bad[3, 0] = float("nan"), float("inf")
    watch.add(bad, lambda: ["b0", "b1", "b2", "b3"])  # not checked yet: one wait per 3 batches
    with pytest.raises(NonFiniteError, match=r"net gave non-finite features \(NaN or Inf\) for 2 of 12 images, "
                                             r"the first b2; nothing was cached"):
        watch.add(ok, None)
    watch.done()  # the window was consumed: nothing pending


def test_non_finite_features_after_the_last_window_stop_extraction_and_cache_nothing(cache_dir):
    from featurefakes import Items, Net

    from sslinv.errors import NonFiniteError

    ds = Items(20)
    ex = Extractor(Net(bad=(17, 18)), torch.device("cpu"), name="net")
    key = features_key({"spec": "net"}, {"name": "items"}, {"crop": 8})

    def compute():
        # batch 3: 7 batches, fewer than CHECK_EVERY: only the final check sees them
        return extract(ex, ds, batch_size=3, workers=0, world=World())

    with pytest.raises(NonFiniteError, match="for 2 of 20 images, the first img17.png; nothing was cached"):
        cached_features(cache_dir, key, compute, World())
    from sslinv.evaluate.features import features_path

    path = features_path(cache_dir, key)
    assert not path.exists() and not path.with_name(path.name + ".json").exists()


def test_batch_size_defaults_by_device_and_is_recorded(cache_dir):
    from sslinv.evaluate.common import Runtime, start
    from sslinv.runtime import default_batch_size

    assert default_batch_size(torch.device("cuda", 0)) == 256
    assert default_batch_size(torch.device("cpu")) == 64
    rt = Runtime(model="random-tiny", cache_dir=cache_dir, data_root=cache_dir, device="cpu", workers=0)
    assert rt.batch_size is None
    start(rt)
    assert rt.batch_size == 64
    given = Runtime(model="random-tiny", cache_dir=cache_dir, data_root=cache_dir, device="cpu", batch_size=5)
    start(given)
    assert given.batch_size == 5
