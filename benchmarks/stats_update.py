"""Statistics update: RunningStats.update (in place) against the previous update.

The previous update (kept below as ``previous_update``, verbatim in effect) formed the
batch's scatter matrix, Chan's outer-product correction and their sum as three new
d x d float64 matrices per batch; the current one adds both into one preallocated
buffer (``addmm_``, ``addr_``). Both consume the same float32 feature batches; the
script prints the time per batch of each, the ratio (measured in this run) and the
largest difference of the covariances they produce.

    python benchmarks/stats_update.py                   # d = 2048, batch 64 (the issue's case)
    python benchmarks/stats_update.py --dim 512 --batches 50
    python benchmarks/stats_update.py --device cuda     # accumulate on the GPU
"""

from __future__ import annotations

import argparse
import time

import torch

try:  # the statistics module moves to sslinv.evaluate
    from sslinv.evaluate.stats import RunningStats
except ImportError:
    from sslinv.evaluate.stats import RunningStats


def previous_update(n: int, mean: torch.Tensor, m2: torch.Tensor, x: torch.Tensor):
    """The update as it was: three new d x d matrices per batch."""
    x = x.detach().to("cpu", torch.float64)
    b = x.shape[0]
    mean_b = x.mean(0)
    centred = x - mean_b
    m2_b = centred.T @ centred
    total = n + b
    delta = mean_b - mean
    mean = mean + delta * (b / total)
    m2 = m2 + m2_b + torch.outer(delta, delta) * (n * b / total)
    return total, mean, m2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: as under torchrun)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(args.dim, args.dim, generator=g) / args.dim**0.5
    batches = [torch.randn(args.batch, args.dim, generator=g) @ mix + 3.0 for _ in range(args.batches)]

    n, mean = 0, torch.zeros(args.dim, dtype=torch.float64)
    m2 = torch.zeros(args.dim, args.dim, dtype=torch.float64)
    n, mean, m2 = previous_update(n, mean, m2, batches[0])  # warm up
    t0 = time.perf_counter()
    for x in batches[1:]:
        n, mean, m2 = previous_update(n, mean, m2, x)
    t_old = (time.perf_counter() - t0) / (len(batches) - 1)

    rs = RunningStats(args.dim, device=args.device)
    rs.update(batches[0])
    sync = torch.cuda.synchronize if rs.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for x in batches[1:]:
        rs.update(x)
    sync()
    t_new = (time.perf_counter() - t0) / (len(batches) - 1)

    cov_old, cov_new = m2 / (n - 1), rs.covariance().cpu()
    rel = float((cov_old - cov_new).abs().max() / cov_old.abs().max())
    print(f"d={args.dim}, batch {args.batch}, {args.threads} thread(s), {args.batches} batches, RunningStats on {rs.device}")
    print(f"  previous update : {1000 * t_old:8.2f} ms/batch ({args.batch / t_old:8.0f} images/s)")
    print(f"  in place        : {1000 * t_new:8.2f} ms/batch ({args.batch / t_new:8.0f} images/s)")
    print(f"  ratio           : {t_old / t_new:8.2f}x faster")
    print(f"  covariance, largest difference relative to its largest entry: {rel:.2e}")


if __name__ == "__main__":
    main()
