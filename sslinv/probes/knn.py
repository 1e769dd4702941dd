"""Weighted k-nearest-neighbour classification on frozen features, as in DINO (Caron et
al. 2021, ``eval_knn.py``): a cheap second protocol that papers report next to the
linear probe.

Features are L2-normalised; each test sample takes its ``k`` most cosine-similar
training samples (k = 20) and every neighbour votes for its class with weight
``exp(similarity / T)`` (T = 0.07); the class with the largest total wins. No
hyper-parameter search, no training: one similarity matrix, computed in chunks of test
rows so memory stays bounded, on the GPU when there is one.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07


def _on(x, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Arrays or tensors (on any device, any dtype, with or without grad) on ``device``.

    Tensors are moved with ``.to`` (``np.asarray`` would fail on CUDA, bfloat16 or
    grad-tracking tensors and copy through the host).
    """
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def knn_predict(
    train,
    train_labels,
    test,
    num_classes: int,
    k: int = DEFAULT_K,
    temperature: float = DEFAULT_TEMPERATURE,
    device: str | torch.device = "cpu",
    chunk: int = 1024,
) -> np.ndarray:
    """Predicted class of every test row (int64 numpy array).

    ``train``, ``test`` and ``train_labels`` may be numpy arrays or torch tensors on any
    device (they are moved to ``device``).
    """
    dev = torch.device(device)
    tr = torch.nn.functional.normalize(_on(train, torch.float32, dev), dim=1)
    te = torch.nn.functional.normalize(_on(test, torch.float32, dev), dim=1)
    labels = _on(train_labels, torch.long, dev)
    k = min(k, tr.shape[0])
    out = []
    for start in range(0, te.shape[0], chunk):
        sims = te[start : start + chunk] @ tr.T
        top_sim, top_idx = sims.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sims.shape[0], num_classes, dtype=weights.dtype, device=dev)
        votes.scatter_add_(1, labels[top_idx], weights)
        out.append(votes.argmax(1))
    if not out:
        return np.zeros(0, dtype=np.int64)
    return torch.cat(out).cpu().numpy()
