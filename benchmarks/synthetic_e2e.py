"""End to end: a whole `sslinv synthetic` job on a fresh cache against bare forward passes.

The job, as a user starts it (a new process, so interpreter start and imports count):
a ResNet-18 checkpoint file, statistics over ``--images`` ImageNet-sized JPEGs
(500 x 375 and 375 x 500, about 90 KB each; ImageNet's validation images average about
110 KB), then ``--num-images`` sampled images x ``--k`` rotation views, at
``--resize 128 --crop-size 112``. The baseline, measured in the same run (each in a
fresh process, alternating with the jobs): bare forward passes of the same model over as
many pre-made uint8 images as the job embeds for its metrics (``images + num_images * k``:
the statistics pass and the views), through the same ``Extractor``. Target: ratio <= 1.2x
on the CPU.

The ``sslinv`` command tunes glibc's malloc for itself (freed blocks are reused, about
15% off a CPU forward pass); the plain baseline does not have it. ``--sslinv-malloc``
times the baseline with the same settings too, so the pipeline's own cost can be read.

The images and the checkpoint are made first (not timed). Run it on a quiet machine:

    python benchmarks/synthetic_e2e.py --repeat 3 --sslinv-malloc   # 1,000 + 200 x 17, ~4 min on 2 cores
    python benchmarks/synthetic_e2e.py --images 100 --num-images 20    # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_jpegs(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` photo-like JPEGs in ImageNet's folder layout: smooth colour fields, edges and
    grain, 4 in 5 landscape 500 x 375, the rest portrait."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = (500, 375) if i % 5 else (375, 500)
        low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC), dtype=np.float32)
        mid = rng.normal(0, 24, (h // 8, w // 8, 3)).astype(np.float32)
        img += np.asarray(Image.fromarray(np.clip(mid + 128, 0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                          dtype=np.float32) - 128
        img += rng.normal(0, 16, img.shape).astype(np.float32)
        d = folder / f"n{i % 10:08d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"ILSVRC2012_val_{i:08d}.JPEG", quality=90)


def write_checkpoint(path: Path) -> None:
    """A seeded ResNet-18 in torchvision's state-dict layout."""
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)


def job(args, ckpt: Path, pool: Path, cache: Path) -> tuple[float, dict]:
    """Seconds of one ``sslinv synthetic`` process on a fresh cache, and its JSON output."""
    exe = shutil.which("sslinv")
    cmd = [exe] if exe else [sys.executable, "-m", "sslinv"]
    cmd += ["synthetic", "--model", str(ckpt), "--data", str(pool), "--transform", args.transform,
            "--k", str(args.k), "--num-images", str(args.num_images), "--resize", str(args.resize),
            "--crop-size", str(args.crop), "--cache-dir", str(cache), "--device", "cpu", "--json"]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode:
        sys.exit(f"sslinv synthetic failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return seconds, json.loads(out.stdout)


def bare_forward(ckpt: Path, n: int, crop: int, batch_size: int) -> float:
    """Seconds of ``n`` forward passes of the checkpoint's model on pre-made uint8 batches."""
    import torch

    from sslinv.evaluate.features import Extractor
    from sslinv.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        model, _ = load_model(str(ckpt), Path(tmp))
    ex = Extractor(model, torch.device("cpu"))
    batch = torch.randint(0, 256, (batch_size, 3, crop, crop), dtype=torch.uint8)
    ex(batch[:2])  # warm-up
    t0 = time.perf_counter()
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        ex(batch[:b])
        done += b
    return time.perf_counter() - t0


def bare_forward_process(ckpt: Path, n: int, crop: int, batch_size: int, sslinv_malloc: bool) -> float:
    """``bare_forward`` in a fresh Python process: plain, or with the malloc settings the
    ``sslinv`` command applies to itself (``keep_freed_memory``)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        + ("from sslinv.cli.main import keep_freed_memory\nassert keep_freed_memory()\n" if sslinv_malloc else "")
        + "from synthetic_e2e import bare_forward\n"
        f"print(bare_forward(Path({str(ckpt)!r}), {n}, {crop}, {batch_size}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"bare forward failed: {out.stderr.strip()[-2000:]}")
    return float(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1000, help="statistics pool size")
    p.add_argument("--num-images", type=int, default=200, help="sampled images")
    p.add_argument("--k", type=int, default=17)
    p.add_argument("--transform", default="rotation")
    p.add_argument("--resize", type=int, default=128)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=64, help="of the bare baseline (sslinv's default on a CPU)")
    p.add_argument("--workers", type=int, default=None, help="passed to sslinv (default: its own)")
    p.add_argument("--sslinv-malloc", action="store_true",
                   help="also time the bare forward passes with the malloc settings sslinv gives itself")
    p.add_argument("--repeat", type=int, default=1,
                   help="jobs (each on a fresh cache) alternating with baselines; the best of each counts")
    args = p.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_jpegs(root / "pool", args.images)
        write_checkpoint(root / "resnet18.pth")
        size = sum(f.stat().st_size for f in (root / "pool").rglob("*.JPEG")) / args.images / 1024
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.images} JPEGs "
              f"(mean {size:.0f} KB) and a ResNet-18 checkpoint made in {time.perf_counter() - t0:.1f} s")

        # Jobs and baselines alternate, so that a slow spell of the machine hits them all.
        runs, bares, tuned = [], [], []
        for r in range(args.repeat):
            seconds, out = job(args, root / "resnet18.pth", root / "pool", root / f"cache{r}")
            runs.append(seconds)
            res = out["results"][0] if "results" in out else out
            k = int(res.get("k", args.k))
            n = args.images + args.num_images * k
            bares.append(bare_forward_process(root / "resnet18.pth", n, args.crop, args.batch_size, False))
            if args.sslinv_malloc:
                tuned.append(bare_forward_process(root / "resnet18.pth", n, args.crop, args.batch_size, True))

    def row(label: str, times: list[float]) -> str:
        return f"  {label:44s}: {min(times):7.2f} s   runs: " + ", ".join(f"{t:.2f}" for t in times)

    t_job, t_bare = min(runs), min(bares)
    print(f"resnet18 checkpoint, {args.transform}: statistics over {args.images} images, then "
          f"{args.num_images} images x {k} views at {args.resize}/{args.crop} -> {n} forward passes")
    print(row("sslinv synthetic (new process, fresh cache)", runs))
    print(row(f"bare forward passes ({n / t_bare:.0f} images/s)", bares))
    print(f"  {'ratio (best of each; median of pairs)':44s}: {t_job / t_bare:7.2f}x  "
          f"({statistics.median(j / b for j, b in zip(runs, bares)):.2f}x; target <= 1.2x)")
    if tuned:
        print(row("bare forward passes, sslinv's malloc settings", tuned))
        print(f"  {'ratio to those (the pipeline alone)':44s}: {t_job / min(tuned):7.2f}x")


if __name__ == "__main__":
    main()
