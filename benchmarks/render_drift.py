"""Drift of the device renderer (sslinv.transforms.device) from the PIL path, per family.

For every one of the 18 families, the same images and parameters are rendered both
ways (on the CPU here; the device path runs the same tensor code on a GPU) and compared:

- pixels: mean absolute difference (grey levels) and the share of pixels that differ;
- features: a tiny random ResNet (``random-tiny``) embeds both renderings; with the
  whitening estimated from the PIL views, each family's mean Mahalanobis distance and
  whitened cosine similarity to the clean view are computed both ways, and the absolute
  differences printed (the figures ``sslinv synthetic`` reports).

Prints a Markdown table (the one in docs/gpu.md).

    python benchmarks/render_drift.py                     # 8 images, k = 16, 128/112 px
    python benchmarks/render_drift.py --images 32 --k 32 --resize 256 --crop 224
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sslinv.models import load_model
from sslinv.transforms import FAMILIES, clean_view
from sslinv.transforms import device as D

try:  # the statistics module moves to sslinv.evaluate
    from sslinv.evaluate.stats import RunningStats, pair_metrics, whitening_from_stats
except ImportError:
    from sslinv.evaluate.stats import RunningStats, pair_metrics, whitening_from_stats


def images(n: int, seed: int):
    """Photo-sized test images of varied sizes: smooth colour waves, hard edges, noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(240, 400)), int(rng.integers(300, 520))
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        f = rng.uniform(1, 8, size=(3, 2))
        img = np.stack([127 + 90 * np.sin(2 * np.pi * (f[c, 0] * xx + f[c, 1] * yy) + c) for c in range(3)], -1)
        img += 25 * np.sign(np.sin(2 * np.pi * rng.uniform(3, 12) * (xx - yy)))[..., None]  # edges
        img += rng.normal(0, 8, (h, w, 3))
        out.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--resize", type=int, default=128)
    ap.add_argument("--crop", type=int, default=112)
    ap.add_argument("--device", default="cpu", help="where the device renderer runs")
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model, _ = load_model("random-tiny", Path(tmp))
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255

    @torch.inference_mode()
    def embed(x: torch.Tensor) -> torch.Tensor:
        return model((x.float().cpu() - mean) / std).double()

    imgs = images(args.images, 0)
    tensors = [D.image_tensor(im).to(args.device) for im in imgs]
    clean = embed(torch.stack([clean_view(im, args.resize, args.crop) for im in imgs]))
    rows, pil_feats, dev_feats = [], {}, {}
    stats = RunningStats(clean.shape[1])
    stats.update(clean)
    for name, fam in FAMILIES.items():
        params = fam.grid(args.k, args.resize, args.crop).params
        t_pil = t_dev = 0.0
        pix, share, fp, fd = [], [], [], []
        for i, (im, t) in enumerate(zip(imgs, tensors)):
            t0 = time.process_time()
            a = fam.views(im, params, args.resize, args.crop, seed=i)
            t_pil += time.process_time() - t0
            t0 = time.process_time()
            b = D.render_views(name, t, params, args.resize, args.crop, seed=i).cpu()
            t_dev += time.process_time() - t0
            diff = (a.int() - b.int()).abs().float()
            pix.append(float(diff.mean()))
            share.append(float((diff > 0).float().mean()))
            fp.append(embed(a))
            fd.append(embed(b))
        pil_feats[name], dev_feats[name] = fp, fd
        for f in fp:
            stats.update(f)
        rows.append([name, len(params), np.mean(pix), np.mean(share), 1000 * t_pil / (len(imgs) * len(params)),
                     1000 * t_dev / (len(imgs) * len(params))])
    white = whitening_from_stats(stats.mean, stats.covariance(), stats.n)
    z_clean = white.whiten(clean)
    print(f"{args.images} images, k={args.k}, {args.resize}/{args.crop} px, random-tiny features "
          f"(d={clean.shape[1]}), device renderer on {args.device}\n")
    print("| family | views | mean abs pixel diff | pixels differing | distance (PIL) | |Δ distance| "
          "| similarity (PIL) | |Δ similarity| | PIL ms/view | device ms/view |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, k, pix, share, ms_pil, ms_dev in rows:
        dp, sp, dd, sd = [], [], [], []
        for i in range(len(imgs)):
            za = z_clean[i : i + 1].expand(k, -1)
            d1, s1 = pair_metrics(za, white.whiten(pil_feats[name][i]))
            d2, s2 = pair_metrics(za, white.whiten(dev_feats[name][i]))
            dp.append(float(d1.mean()))
            sp.append(float(s1.mean()))
            dd.append(float((d1 - d2).abs().mean()))
            sd.append(float((s1 - s2).abs().mean()))
        print(f"| {name} | {k} | {pix:.4f} | {100 * share:.3f} % | {np.mean(dp):.3f} | {np.mean(dd):.2e} "
              f"| {np.mean(sp):.4f} | {np.mean(sd):.2e} | {ms_pil:.2f} | {ms_dev:.2f} |")


if __name__ == "__main__":
    main()
