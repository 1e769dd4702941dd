"""The first-GPU check: every CUDA path of sslinv once, one table, in at most ~8 minutes.

Each row is measured in this run against a baseline measured in the same run:

1. synthetic (ResNet-50, rotation; fp32 and bf16): a whole ``sslinv synthetic`` job
   (statistics cached) against bare forward passes of the same number of views, once
   with PIL views (the default) and once with ``--render device``;
2. the same views rendered by PIL in this process (``Family.views``) and by the device
   renderer (``sslinv.transforms.device``) on the model's device, each followed by the
   forward pass, against the bare forward;
3. the statistics pass (the first, cold run of the job) in images/s;
4. a MoCo pretraining step (bf16) against a bare forward+backward of the encoder, and
   the same step with device augmentation in front (``--augment-on device``: decoded
   ImageNet-sized images copied to the device, two ``default`` views made there)
   against the step alone;
5. kernel ridge at 20,480 training images (time; peak memory against the estimate that
   guards it);
6. the logistic probe (batched L-BFGS) on the device;
7. two NCCL processes against one (the same numbers, to float32 rounding), when two GPUs
   are visible (two gloo processes with ``--device cpu``).

A failing row prints its one-line error and the script carries on; the exit status is 1
if any row failed. ``--device cpu --quick`` runs the same code on tiny sizes in about a
minute (the test suite does that).

    python benchmarks/gpu_check.py                        # on a GPU machine: cuda
    python benchmarks/gpu_check.py --device cpu --quick   # the smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

# --- sslinv imports, in one place (modules may move between releases) ----------------
import numpy as np
import torch

from sslinv.data.folder import load_rgb
from sslinv.data.pool import resolve_pool
from sslinv.distributed import World
from sslinv.evaluate.common import Runtime
from sslinv.evaluate.features import Extractor
from sslinv.evaluate.synthetic import SyntheticConfig
from sslinv.evaluate.synthetic import run as run_synthetic
from sslinv.models import load_model
from sslinv.probes import krr, linear, logistic
from sslinv.probes.cv import kfold_splits
from sslinv.runtime import resolve_device
from sslinv.transforms import device as device_render
from sslinv.transforms import get_family

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_throughput import measure as pretrain_measure
from pretrain_throughput import measure_device_augment as pretrain_measure_device_augment


@dataclass
class Size:
    model: str
    resize: int
    crop: int
    num_images: int
    k: int
    batch: int
    pretrain_arch: str
    pretrain_size: int
    pretrain_batch: int
    krr_n: int
    krr_dim: int
    logistic_n: int
    logistic_dim: int
    precisions: tuple[str, ...]  # synthetic's precisions (bf16 autocast on a CPU only measures slowness)
    pretrain_precision: str
    pool_images: int  # 0: the demo pool (512 images); else a folder of this many small images


FULL = Size("random", 256, 224, 64, 32, 256, "resnet50", 224, 128, 20480, 2048, 20000, 2048, ("fp32", "bf16"), "bf16", 0)
QUICK = Size("random-tiny", 64, 56, 3, 4, 16, "resnet_tiny", 32, 8, 300, 16, 300, 16, ("fp32",), "fp32", 16)


def make_pool(size: Size, cache: Path) -> str:
    """The statistics pool and image source: the demo pool (painted now, so that no
    timed run paints it), or a few painted images."""
    if not size.pool_images:
        from sslinv.data.demo import DEMO_NAME, ensure_demo_pool

        ensure_demo_pool(cache)
        return DEMO_NAME
    from PIL import Image

    root = cache / "pool"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(size.pool_images):
        h, w = int(rng.integers(72, 100)), int(rng.integers(80, 120))
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        f = rng.uniform(1, 8, size=3)
        img = np.stack([127 + 100 * np.sin(2 * np.pi * f[c] * (xx + c * yy)) for c in range(3)], -1)
        Image.fromarray(np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)).save(root / f"{i:03d}.png")
    return str(root)


@dataclass
class Row:
    check: str
    result: str
    baseline: str = ""
    ratio: str = ""
    note: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bare_forward(ex: Extractor, batch: torch.Tensor, n: int) -> None:
    """Forward passes of ``n`` pre-made uint8 views already on the device, results left
    there: no copy, no wait per batch (``_timed`` waits once at the end)."""
    done = 0
    while done < n:
        b = min(len(batch), n - done)
        ex.forward(batch[:b])
        done += b


def loader_workers(size: Size, device: torch.device) -> tuple[int, str]:
    """Decoding workers for the jobs: sslinv's default, fewer where ``/dev/shm`` (64 MiB
    in a default Docker container) cannot hold their batches in flight, with a note."""
    from sslinv.cpus import shm_free
    from sslinv.runtime import PREFETCH, default_workers

    workers = default_workers(device)
    free = shm_free()
    per_worker = PREFETCH * size.batch * 3 * size.crop * size.crop
    if free is None or workers * per_worker <= free:
        return workers, ""
    fits = int(free // per_worker)
    return fits, f"; {fits} workers (/dev/shm has {free / 2**20:.0f} MiB)"


# ------------------------------------------------------------------------------ checks


def synthetic_rows(size: Size, device: torch.device, cache: Path) -> list[Row]:
    rows = []
    data = make_pool(size, cache)
    workers, shm_note = loader_workers(size, device)
    for precision in size.precisions:
        rt = Runtime(model=size.model, cache_dir=cache, data_root=cache / "data", batch_size=size.batch,
                     device=str(device), precision=precision, force=True, workers=workers)
        cfg = SyntheticConfig(runtime=rt, transforms=["rotation"], data=data, k=size.k, num_images=size.num_images,
                              resize=size.resize, crop=size.crop)
        t_cold = time.perf_counter()
        res = run_synthetic(cfg)
        t_cold = time.perf_counter() - t_cold
        t_job = _timed(partial(run_synthetic, cfg), device)  # statistics cached now
        k = res[0].k
        n_views = size.num_images * (k + 1)
        stats_images = int(res[0].record.get("statistics", {}).get("num_images", 0) or 0)
        model, _ = load_model(size.model, cache)
        ex = Extractor(model, device, precision)
        batch = torch.randint(0, 256, (size.batch, 3, size.crop, size.crop), dtype=torch.uint8).to(device)
        ex(batch[:2])
        t_bare = _timed(partial(bare_forward, ex, batch, n_views), device)
        rows.append(Row(f"synthetic {size.model} {precision}, PIL views (job)", f"{n_views / t_job:.0f} views/s",
                        f"{n_views / t_bare:.0f} views/s bare", f"{t_job / t_bare:.2f}x",
                        f"rotation k={k}, {size.num_images} images{shm_note}"))
        # The same job with --render device (statistics cached: they are PIL's in both modes).
        cfg_dev = replace(cfg, render="device")
        dev = run_synthetic(cfg_dev)  # warm-up, as the PIL job's cold run
        t_dev = _timed(partial(run_synthetic, cfg_dev), device)
        drift = abs(dev[0].similarity - res[0].similarity)
        rows.append(Row(f"synthetic {size.model} {precision}, device views (job)", f"{n_views / t_dev:.0f} views/s",
                        f"{n_views / t_bare:.0f} views/s bare", f"{t_dev / t_bare:.2f}x",
                        f"PIL job/device job {t_job / t_dev:.2f}x; similarity {drift:.1e} from PIL's"))
        if stats_images:
            t_stats = max(t_cold - t_job, 1e-9)
            rows.append(Row(f"statistics pass {precision}", f"{stats_images / t_stats:.0f} images/s", "", "",
                            f"{stats_images} pool images (cold run minus warm run)"))
        rows.extend(render_rows(size, device, cache, data, ex, precision, t_bare, n_views))
    return rows


def render_rows(size: Size, device: torch.device, cache: Path, data: str, ex: Extractor, precision: str,
                t_bare: float, n_views: int) -> list[Row]:
    """PIL views vs device views of the same images, each with the forward pass."""
    pool = resolve_pool(data, cache, cache / "data", World(), None)
    fam = get_family("rotation")
    params = fam.grid(size.k, size.resize, size.crop).params
    files = [pool.path(i) for i in range(size.num_images)]

    def pil():
        for i, f in enumerate(files):
            views = fam.views(load_rgb(f), params, size.resize, size.crop, seed=i)
            ex.forward(views)

    def dev():
        for i, f in enumerate(files):
            img = device_render.image_tensor(load_rgb(f)).to(device, non_blocking=True)
            views = device_render.render_views("rotation", img, params, size.resize, size.crop, seed=i)
            ex.forward(views)

    pil()  # warm-up
    dev()
    n = len(files) * len(params)
    t_pil, t_dev = _timed(pil, device), _timed(dev, device)
    t_ref = t_bare * n / n_views
    return [
        Row(f"render+forward {precision}, PIL in-process", f"{n / t_pil:.0f} views/s", f"{n / t_ref:.0f} views/s bare",
            f"{t_pil / t_ref:.2f}x", "one process, no workers"),
        Row(f"render+forward {precision}, device renderer", f"{n / t_dev:.0f} views/s",
            f"{n / t_ref:.0f} views/s bare", f"{t_dev / t_ref:.2f}x", f"PIL/device {t_pil / t_dev:.2f}x"),
    ]


def pretrain_rows(size: Size, device: torch.device) -> list[Row]:
    precision = size.pretrain_precision
    r = pretrain_measure(size.pretrain_arch, size.pretrain_size, size.pretrain_batch, precision, str(device),
                         steps=3, warmup=1, bn_splits=None, moco_k=max(size.pretrain_batch * 4, 256))
    d = pretrain_measure_device_augment(size.pretrain_arch, size.pretrain_size, size.pretrain_batch, precision,
                                        str(device), steps=3, warmup=1, bn_splits=None,
                                        moco_k=max(size.pretrain_batch * 4, 256))
    return [Row(f"pretrain step {size.pretrain_arch} {precision}", f"{r['step_images_per_s']:.0f} images/s",
                f"{r['bare_images_per_s']:.0f} images/s fwd+bwd", f"{r['ratio_step_to_bare']:.2f}",
                "step/bare; MoCo's key forward alone makes ~0.75"),
            Row(f"pretrain step + device augment {size.pretrain_arch} {precision}",
                f"{d['augmented_step_images_per_s']:.0f} images/s", f"{d['step_images_per_s']:.0f} images/s step",
                f"{d['ratio_augmented_to_step']:.2f}",
                f"default preset, {d['decoded_mib']:.0f} MiB of decoded images copied in per batch")]


def krr_rows(size: Size, device: torch.device) -> list[Row]:
    rng = np.random.default_rng(0)
    n, d, m = size.krr_n, size.krr_dim, size.krr_n // 2
    z = rng.uniform(-1, 1, (n + m, 10))
    X = np.maximum(z @ rng.standard_normal((10, d)), 0).astype(np.float32) + 0.1 * rng.standard_normal((n + m, d)).astype(np.float32)
    Y = np.sin(2 * z[:, :2])
    estimate = krr.peak_bytes(n, m, d, 2)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    res = krr.evaluate(X[:n], Y[:n], X[n:], Y[n:], device=device)
    t = time.perf_counter() - t
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
        what = "peak allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        what = "peak RSS growth (0 if below an earlier peak)"
    return [Row(f"kernel ridge n={n} d={d}", f"{t:.1f} s", f"estimate {estimate / 2**30:.2f} GiB",
                f"{peak / max(estimate, 1):.2f}", f"{what} {peak / 2**30:.2f} GiB; test R2 {res.test_r2.round(3).tolist()}")]


def logistic_rows(size: Size, device: torch.device) -> list[Row]:
    rng = np.random.default_rng(1)
    n, d, c = size.logistic_n, size.logistic_dim, 10
    centres = rng.standard_normal((c, d))
    y = rng.integers(0, c, n + n // 4)
    x = (centres[y] + 2 * rng.standard_normal((len(y), d))).astype(np.float32)
    folds = kfold_splits(n, 5, 0)
    grid = linear.wd_grid(0)[:: 5 if size.logistic_n >= 10_000 else 15]
    t = time.perf_counter()
    res = logistic.logistic_cv(x[:n], y[:n], x[n:], y[n:], c, grid, folds, device=device)
    t = time.perf_counter() - t
    return [Row(f"logistic probe n={n} d={d}", f"{t:.1f} s", "", "",
                f"{len(grid)} weight decays x 5 folds + refit; test accuracy {res.test_score:.3f}")]


def _metrics(out: dict) -> dict[str, np.ndarray]:
    """The numbers of a ``synthetic --json`` output, per transform (not its paths, nor
    whether the statistics were cached)."""
    return {r["transform"]: np.array([r["distance"], r["similarity"], *r["curves"]["distance"],
                                      *r["curves"]["similarity"]], dtype=np.float64) for r in out["results"]}


def nccl_rows(size: Size, device: torch.device, cache: Path) -> list[Row]:
    """Two processes against one; NCCL on two GPUs, gloo with ``--device cpu`` (the smoke
    test runs this same code)."""
    backend = "NCCL" if device.type == "cuda" else "gloo"
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return [Row("NCCL: 2 processes vs 1", "skipped", "", "", "needs two visible GPUs")]
    workers, shm_note = loader_workers(size, device)
    outs = []
    for nproc in (1, 2):
        cmd = [sys.executable, "-m", "sslinv", "synthetic", "--model", size.model, "--transform", "rotation",
               "--data", make_pool(size, cache), "--k", str(size.k), "--num-images", str(size.num_images), "--resize", str(size.resize),
               "--crop-size", str(size.crop), "--cache-dir", str(cache), "--device", device.type, "--force", "--json",
               "--nproc-per-node", str(nproc), "--workers", str(workers // nproc)]  # /dev/shm is the node's
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        outs.append((time.perf_counter() - t, _metrics(json.loads(out.stdout))))
    (t1, r1), (t2, r2) = outs
    # Each rank extracts its own shard in batches of its own make-up, and cuDNN picks its
    # kernels by batch shape: the numbers agree to float32 rounding, not bit for bit.
    same = r1.keys() == r2.keys() and all(np.allclose(r1[t], r2[t], rtol=1e-5, atol=1e-6) for t in r1)
    worst = max((float(np.max(np.abs(r1[t] - r2[t]) / np.maximum(np.abs(r1[t]), 1e-12))) for t in r1 if t in r2),
                default=float("nan"))
    return [Row(f"{backend}: 2 processes vs 1 (synthetic)", "same numbers" if same else "DIFFERENT",
                f"{t1:.1f} s (1 proc)", f"{t1 / t2:.2f}x",
                f"{t2:.1f} s with 2 processes, process start included; largest relative difference "
                f"{worst:.1e}{shm_note}")]


# ---------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the same code in about a minute")
    ap.add_argument("--only", nargs="*", default=None,
                    help="run only these checks: synthetic pretrain krr logistic nccl")
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    device = resolve_device(args.device, World())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    checks = {
        "synthetic": lambda cache: synthetic_rows(size, device, cache),
        "pretrain": lambda cache: pretrain_rows(size, device),
        "krr": lambda cache: krr_rows(size, device),
        "logistic": lambda cache: logistic_rows(size, device),
        "nccl": lambda cache: nccl_rows(size, device, cache),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"sslinv GPU check on {device} ({name}), torch {torch.__version__}, {'quick' if args.quick else 'full'} sizes")
    rows: list[Row] = []
    failed = 0
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for key, fn in checks.items():
            if args.only and key not in args.only:
                continue
            t0 = time.perf_counter()
            try:
                rows.extend(fn(Path(tmp)))
            except Exception as exc:  # noqa: BLE001 - report and carry on: one table with every path
                failed += 1
                rows.append(Row(key, "FAILED", "", "", f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"))
                traceback.print_exc(file=sys.stderr)
            print(f"  {key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print()
    print("| check | result | baseline (same run) | ratio | note |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.check} | {r.result} | {r.baseline} | {r.ratio} | {r.note} |")
    print(f"\n{len(rows)} rows, {failed} failed, {time.perf_counter() - t_all:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
