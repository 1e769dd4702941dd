"""Feature extraction in item order and the feature cache."""


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
