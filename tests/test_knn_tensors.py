"""k-NN takes tensors as well as arrays: tensors are moved with .to, never through numpy
(np.asarray fails on CUDA, bfloat16 and grad-tracking tensors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslinv.probes.knn import knn_predict


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16)) * 4
    y = rng.integers(0, 3, 120)
    x = centres[y] + rng.normal(size=(120, 16))
    return x[:90].astype(np.float32), y[:90], x[90:].astype(np.float32), y[90:]


@pytest.mark.parametrize("kind", ["float32", "bfloat16", "grad"])
def test_tensor_inputs_give_the_array_answer(kind):
    xtr, ytr, xte, yte = blobs()
    want = knn_predict(xtr, ytr, xte, num_classes=3, k=5)
    assert (want == yte).mean() > 0.9
    ttr, tte = torch.from_numpy(xtr), torch.from_numpy(xte)
    if kind == "bfloat16":
        ttr, tte = ttr.bfloat16(), tte.bfloat16()
        with pytest.raises(TypeError):
            np.asarray(ttr)  # what the probe used to do
    if kind == "grad":
        ttr = ttr.clone().requires_grad_(True)
        with pytest.raises(RuntimeError):
            np.asarray(ttr)
    got = knn_predict(ttr, torch.from_numpy(ytr), tte, num_classes=3, k=5)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    if kind == "bfloat16":  # a few nearest neighbours may swap at bfloat16 resolution
        assert (got == want).mean() > 0.9
    else:
        assert got.tolist() == want.tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_tensors():  # pragma: no cover - no GPU in CI
    xtr, ytr, xte, _ = blobs()
    want = knn_predict(xtr, ytr, xte, num_classes=3, k=5)
    got = knn_predict(torch.from_numpy(xtr).cuda(), torch.from_numpy(ytr).cuda(), torch.from_numpy(xte).cuda(),
                      num_classes=3, k=5, device="cuda")
    assert got.tolist() == want.tolist()
