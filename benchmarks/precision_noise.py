"""The noise floor of each precision after whitening, against fp32 in the same run.

A ResNet-18 (``random-resnet18``: random weights, no download) embeds the same clean
views at fp32 and at each other precision; with the whitening of the fp32 features,
the Mahalanobis distance and whitened cosine similarity between an image's fp32 and
low-precision features (the noise floor) are printed next to those between different
images at fp32 (the signal). ``sslinv synthetic`` reports these metrics between an
image's clean view and its transformed views, so an invariance difference smaller than
a precision's floor is not resolved at that precision.

    python benchmarks/precision_noise.py                    # CPU: fp32 vs bf16
    python benchmarks/precision_noise.py --device cuda      # also tf32 and fp16
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from sslinv.evaluate.stats import RunningStats, pair_metrics, whitening_from_stats
from sslinv.models import load_model
from sslinv.runtime import autocast_dtype, set_precision


def views(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 images: smooth colour waves, hard edges and noise (photo-like statistics)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for i in range(n):
        f = rng.uniform(1, 8, size=(3, 2))
        img = np.stack([127 + 90 * np.sin(2 * np.pi * (f[c, 0] * xx + f[c, 1] * yy) + c) for c in range(3)])
        img += 25 * np.sign(np.sin(2 * np.pi * rng.uniform(3, 12) * (xx - yy)))[None]
        img += rng.normal(0, 8, img.shape)
        out[i] = np.clip(img, 0, 255)
    return torch.from_numpy(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = load_model("random-resnet18", Path(tmp))
    model = model.to(device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255
    x = views(args.images, args.size)

    @torch.inference_mode()
    def embed(precision: str) -> torch.Tensor:
        set_precision(precision)
        dtype, parts = autocast_dtype(precision), []
        for b in x.split(args.batch_size):
            b = (b.to(device).float() - mean) / std
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                parts.append(model(b).float().double().cpu())
        return torch.cat(parts)

    precisions = ["fp32", "bf16"] + (["tf32", "fp16"] if device.type == "cuda" else [])
    feats = {p: embed(p) for p in precisions}
    ref = feats["fp32"]
    stats = RunningStats(ref.shape[1])
    stats.update(ref)
    white = whitening_from_stats(stats.mean, stats.covariance(), stats.n)
    z = {p: white.whiten(f) for p, f in feats.items()}
    other = torch.roll(z["fp32"], 1, 0)  # each image against another image
    d_sig, s_sig = pair_metrics(z["fp32"], other)
    print(f"{args.images} images, {args.size} px, random-resnet18 (d={ref.shape[1]}), {device}\n")
    print("| precision | distance to fp32 (same image) | similarity to fp32 | ratio to distance between images |")
    print("|---|---:|---:|---:|")
    for p in precisions[1:]:
        d, s = pair_metrics(z["fp32"], z[p])
        print(f"| {p} | {float(d.mean()):.3f} | {float(s.mean()):.5f} | {float(d.mean() / d_sig.mean()):.4f} |")
    print(f"| (different images, fp32) | {float(d_sig.mean()):.3f} | {float(s_sig.mean()):.5f} | 1 |")


if __name__ == "__main__":
    main()
