"""Speed and memory of `sslinv synthetic` against bare forward passes of the same model.

Timing: one run of the synthetic job (statistics already cached, so the run is the clean
pass plus every transformed view: decoding, transforming, forward, metrics, gather,
result file) against bare forward passes of the same model over the same number of
images (pre-made uint8 batches, normalised on the device, as sslinv feeds the model).
Target: ratio <= 1.3 on the CPU.

Memory: peak resident memory of a whole run in a fresh process at k = 16 and k = 256
(views are rendered in chunks of --batch-size, so the peak should not grow with k; the
reference stacks all k views of an image: 3.3 GB at k = 256).

    python benchmarks/synthetic_speed.py            # ResNet-18, rotation k=32, 32 images
    python benchmarks/synthetic_speed.py --model random --k 16 --num-images 16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_synthetic(cache: Path, args, k: int, num_images: int, force: bool, workers: int | None):
    from sslinv.evaluate.common import Runtime
    from sslinv.evaluate.synthetic import SyntheticConfig, run

    rt = Runtime(model=args.model, cache_dir=cache, data_root=cache / "data", batch_size=args.batch_size,
                 workers=workers, device=args.device, force=force)
    cfg = SyntheticConfig(runtime=rt, transforms=[args.transform], data="demo", k=k, num_images=num_images,
                          resize=args.resize, crop=args.crop)
    return run(cfg)


def bare_forward(args, n_images: int) -> float:
    import torch

    from sslinv.distributed import World
    from sslinv.evaluate.features import Extractor
    from sslinv.models import load_model
    from sslinv.runtime import resolve_device

    with tempfile.TemporaryDirectory() as tmp:
        model, _ = load_model(args.model, Path(tmp))
    device = resolve_device(args.device, World())
    ex = Extractor(model, device)
    batch = torch.randint(0, 256, (args.batch_size, 3, args.crop, args.crop), dtype=torch.uint8)
    ex(batch[:2])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    done = 0
    while done < n_images:
        b = min(args.batch_size, n_images - done)
        ex(batch[:b])
        done += b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def peak_memory_child(cache: str, model: str, k: int) -> None:
    """Run one job in this (fresh) process and print its peak RSS in MiB."""
    import resource

    from sslinv.evaluate.common import Runtime
    from sslinv.evaluate.synthetic import SyntheticConfig, run

    rt = Runtime(model=model, cache_dir=Path(cache), data_root=Path(cache), batch_size=32, workers=0, device="cpu",
                 force=True)
    cfg = SyntheticConfig(runtime=rt, transforms=["rotation"], data="demo", k=k, num_images=2)
    run(cfg)
    print(json.dumps({"k": k, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="random-resnet18")
    p.add_argument("--transform", default="rotation")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--num-images", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-child", nargs=3, metavar=("CACHE", "MODEL", "K"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child[0], args.memory_child[1], int(args.memory_child[2]))
        return

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        # Warm-up (not timed): demo pool, statistics, one tiny run.
        run_synthetic(cache, args, k=2, num_images=2, force=True, workers=args.workers)
        t0 = time.perf_counter()
        results = run_synthetic(cache, args, args.k, args.num_images, force=True, workers=args.workers)
        t_sslinv = time.perf_counter() - t0
        k = results[0].k
        n_forward = args.num_images * (k + 1)  # every view plus the clean view
        t_bare = bare_forward(args, n_forward)
        print(f"{args.model}, {args.transform} k={k}, {args.num_images} images: {n_forward} forward passes")
        print(f"  sslinv synthetic : {t_sslinv:8.2f} s  ({n_forward / t_sslinv:7.1f} views/s)")
        print(f"  bare forward     : {t_bare:8.2f} s  ({n_forward / t_bare:7.1f} views/s)")
        print(f"  ratio            : {t_sslinv / t_bare:8.2f}x  (target <= 1.3x)")

        if not args.skip_memory:
            peaks = []
            for kk in (16, 256):
                out = subprocess.run(
                    [sys.executable, __file__, "--memory-child", str(cache), args.model, str(kk)],
                    capture_output=True, text=True, check=True,
                )
                peaks.append(json.loads(out.stdout.strip().splitlines()[-1]))
            for rec in peaks:
                print(f"  peak memory, k={rec['k']:3d}: {rec['peak_mib']:7.1f} MiB")
            print(f"  memory ratio k=256 / k=16: {peaks[1]['peak_mib'] / peaks[0]['peak_mib']:.2f}x")


if __name__ == "__main__":
    main()
