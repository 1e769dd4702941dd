"""Training throughput of `sslinv pretrain` against the bare encoder on the same batch.

Three figures, measured in the same run on the same pre-made uint8 batch:

- bare: forward + backward of the query encoder alone (ResNet + MLP head, train mode,
  input normalised on the device as sslinv does; no optimiser) - the floor;
- step: one full MoCo training step (``sslinv.pretrain.loop.train_step``: query forward
  and backward, momentum update, key shuffle and key forward, logits against the queue,
  enqueue, SGD step) - what the training loop does per batch;
- run (``--end-to-end``): a whole training epoch through ``sslinv.pretrain.loop.run``
  on the demo pool (decoding and augmenting both views in DataLoader workers,
  checkpoint and log writing included);
- step + device augmentation (``--augment-on device``): a decoded batch of full-size
  images (random pixels, ImageNet's typical sizes) packed as the loader packs it, copied
  to the device, made into two views by ``GPUAugment`` and trained on - what a step costs
  when the workers only decode; ratio against the step alone.

``--augment`` instead compares the two ways of making views (``--augment-on``) for the
``default``, ``dorsal`` and ``ventral`` presets on painted ImageNet-sized JPEGs (or
``--data FOLDER``), in the same run: images/s of the augmentation alone on one core
(PIL on decoded images vs ``GPUAugment`` on the device), and through the training
loader with ``--workers`` workers (PIL views made in the workers vs workers that only
decode plus ``GPUAugment`` in the main process).

It prints images/s for each and the ratio step/bare (run/bare). MoCo does one extra
forward pass (the key encoder) on top of forward+backward, so a step costs about 4/3
of the bare pass: a ratio near 0.75 means no overhead beyond the method itself.

On a GPU, ``--reference`` measures ResNet-50 at 224 px with 32 images per GPU (the
reference's 256 over 8 GPUs), fp32 and bf16, and compares images/s per GPU with the
MoCo reference's published time: 200 epochs of ImageNet (1,281,167 images) in 53 hours
on 8 V100s, i.e. 168 images/s per V100.

    python benchmarks/pretrain_throughput.py                       # CPU: ResNet-18, 64 px, batch 32
    python benchmarks/pretrain_throughput.py --end-to-end          # plus one epoch on the demo pool
    python benchmarks/pretrain_throughput.py --device cuda --reference
    python benchmarks/pretrain_throughput.py --augment --workers 1 # PIL workers vs GPUAugment, 3 presets
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

IMAGENET_TRAIN = 1_281_167
REFERENCE_SECONDS = 53 * 3600  # facebookresearch/moco README: 200 epochs, 8 V100s
REFERENCE_PER_GPU = IMAGENET_TRAIN * 200 / REFERENCE_SECONDS / 8


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_pair(fa, fb, device, steps: int, warmup: int) -> tuple[float, float]:
    """Seconds per call of ``fa`` and ``fb`` (medians), timed alternately so that load
    from other processes on a shared machine weighs on both alike."""
    for _ in range(warmup):
        fa()
        fb()
    _sync(device)
    ta, tb = [], []
    for _ in range(steps):
        for fn, out in ((fa, ta), (fb, tb)):
            t = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - t)
    ta.sort()
    tb.sort()
    return ta[len(ta) // 2], tb[len(tb) // 2]


def moco_model(arch: str, batch: int, moco_k: int, bn_splits: int | None, device):
    """A seeded MoCo v2 model in training mode on ``device``, laid out as ``pretrain`` lays
    it out (channels-last on CUDA without split BN)."""
    import torch

    from sslinv.pretrain.moco import MoCo, default_bn_splits, head_dim

    splits = bn_splits or default_bn_splits(batch, 1)
    torch.manual_seed(0)
    model = MoCo(arch, dim=head_dim(arch), K=moco_k, bn_splits=splits,
                 channels_last=device.type == "cuda" and splits == 1)
    if model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device).train()


def measure(arch: str, image_size: int, batch: int, precision: str, device_name: str, steps: int, warmup: int,
            bn_splits: int | None, moco_k: int) -> dict:
    import torch

    from sslinv.distributed import World
    from sslinv.pretrain.loop import train_step
    from sslinv.runtime import autocast_dtype, resolve_device

    device = resolve_device(device_name, World())
    dtype = autocast_dtype(precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = moco_model(arch, batch, moco_k, bn_splits, device)
    gen = torch.Generator().manual_seed(0)
    im_q = torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8, generator=gen).to(device)
    im_k = torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8, generator=gen).to(device)

    def autocast():
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    encoder = model.encoder_q

    def bare():
        with autocast():
            out = encoder(model._prep(im_q))
        out.float().square().mean().backward()
        encoder.zero_grad(set_to_none=True)

    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)

    def step():
        train_step(model, optimizer, scaler, im_q, im_k, dtype)

    t_bare, t_step = _timed_pair(bare, step, device, steps, warmup)
    return {
        "arch": arch, "image_size": image_size, "batch": batch, "precision": precision, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "bn_splits": model.bn_splits, "bare_images_per_s": batch / t_bare, "step_images_per_s": batch / t_step,
        "ratio_step_to_bare": t_bare / t_step,
    }


def decoded_batch(batch: int, seed: int = 0) -> list:
    """``batch`` uint8 (H, W, 3) images of random pixels at ImageNet's typical sizes
    (sides 300-500), as the device-augmentation workers hand them over."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (int(torch.randint(300, 500, (1,), generator=g)),
                                   int(torch.randint(300, 500, (1,), generator=g)), 3), dtype=torch.uint8, generator=g)
            for _ in range(batch)]


def measure_device_augment(arch: str, image_size: int, batch: int, precision: str, device_name: str, steps: int,
                           warmup: int, bn_splits: int | None, moco_k: int, preset: str = "default") -> dict:
    """One training step on pre-made views against the same step preceded by the device
    path of ``--augment-on device``: packed decoded images (pinned on a GPU machine)
    copied to the device, unpacked, two views made by ``GPUAugment``."""
    import torch

    from sslinv.distributed import World
    from sslinv.pretrain import augment
    from sslinv.pretrain.data import DeviceViews, collate_decoded
    from sslinv.pretrain.loop import train_step
    from sslinv.runtime import autocast_dtype, resolve_device

    device = resolve_device(device_name, World())
    dtype = autocast_dtype(precision)
    model = moco_model(arch, batch, moco_k, bn_splits, device)
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    flat, sizes, _ = collate_decoded([(img, None) for img in decoded_batch(batch)])
    if device.type == "cuda":
        flat = flat.pin_memory()
    views = DeviceViews(augment.PRESETS[preset].augment, image_size, seed=0, rank=0)
    im_q, im_k = views(flat.to(device), sizes, 0, 0)
    count = iter(range(10**9))

    def step():
        train_step(model, optimizer, scaler, im_q, im_k, dtype)

    def augmented_step():
        q, k = views(flat.to(device, non_blocking=True), sizes, 0, next(count))
        train_step(model, optimizer, scaler, q, k, dtype)

    t_step, t_aug = _timed_pair(step, augmented_step, device, steps, warmup)
    return {"preset": preset, "step_images_per_s": batch / t_step, "augmented_step_images_per_s": batch / t_aug,
            "ratio_augmented_to_step": t_step / t_aug, "decoded_mib": flat.numel() / 2**20}


def paint_jpegs(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` textured JPEGs of ImageNet's typical sizes (sides 300-500) under ``root``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(300, 500, size=2))
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        f = rng.uniform(2, 12, size=3)
        img = np.stack([127 + 100 * np.sin(2 * np.pi * f[c] * (xx + (c + 1) * yy)) for c in range(3)], -1)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i:04d}.jpg", quality=90)
    return root


def _loader_seconds(pool, batch: int, workers: int, device, batches: int, dataset, views) -> float:
    """Seconds per batch of the training loader (first batch, worker start-up, excluded)."""
    from sslinv.distributed import World
    from sslinv.pretrain.data import RunBatches, make_train_loader

    epochs = 1 + (batches + 1) // max(len(pool) // batch, 1)
    loader = make_train_loader(dataset, RunBatches(len(pool), batch, World(), 0, 0, 0, epochs), workers, device, 0,
                               views)
    it = (b for e in range(epochs) for b in loader.epoch(e))
    next(it)
    _sync(device)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    _sync(device)
    return (time.perf_counter() - t) / batches


def _compare_one(preset: str, pool, pil_imgs: list, tensors: list, image_size: int, batch: int, device,
                 workers: int, batches: int) -> dict:
    from sslinv.pretrain import augment
    from sslinv.pretrain.data import Decoded, DeviceViews, TwoViews
    from sslinv.pretrain.gpu_augment import GPUAugment, batch_generator

    names = list(augment.PRESETS[preset].augment)
    pipeline = augment.build_pipeline(names, image_size)
    gpu = GPUAugment(names, image_size)
    seeds = iter(range(10**9))

    def pil():
        for img in pil_imgs:
            augment.two_views(pipeline, img, next(seeds))

    def dev():
        gpu.two_views(tensors, batch_generator(0, 0, next(seeds)))

    t_pil, t_dev = _timed_pair(pil, dev, device, 3, 1)
    l_pil = _loader_seconds(pool, batch, workers, device, batches, TwoViews(pool, pipeline, 0, False), None)
    l_dev = _loader_seconds(pool, batch, workers, device, batches, Decoded(pool, False),
                            DeviceViews(names, image_size, 0, 0))
    n = len(pil_imgs)
    return {"preset": preset, "image_size": image_size, "device": str(device), "workers": workers,
            "pil_core_images_per_s": n / t_pil, "device_images_per_s": n / t_dev, "ratio_core": t_pil / t_dev,
            "pil_loader_images_per_s": batch / l_pil, "device_loader_images_per_s": batch / l_dev,
            "ratio_loader": l_pil / l_dev}


def compare_augment(image_size: int, batch: int, device_name: str, workers: int, batches: int, data: str | None,
                    presets=("default", "dorsal", "ventral")) -> list[dict]:
    """PIL views against ``GPUAugment`` views per preset: the augmentation alone (PIL on
    one core; GPUAugment with one CPU thread, or on the GPU), and the training loader
    (``workers`` workers, decoding included)."""
    import torch

    from sslinv.data.folder import load_rgb, scan_pool
    from sslinv.distributed import World
    from sslinv.pretrain.data import Decoded
    from sslinv.runtime import resolve_device

    device = resolve_device(device_name, World())
    torch.set_num_threads(1)  # the "one core" figures; the loader's workers are processes
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(data) if data else paint_jpegs(Path(tmp) / "pool", max(2 * batch, 64))
        pool = scan_pool(root, name="bench")
        n = min(len(pool), batch)
        pil_imgs = [load_rgb(pool.path(i)) for i in range(n)]
        tensors = [Decoded(pool, False)[(0, i)][0].permute(2, 0, 1).to(device) for i in range(n)]
        return [_compare_one(preset, pool, pil_imgs, tensors, image_size, batch, device, workers, batches)
                for preset in presets]


def end_to_end(arch: str, image_size: int, batch: int, precision: str, device_name: str, workers: int | None) -> dict:
    from sslinv import paths
    from sslinv.data.demo import ensure_demo_pool
    from sslinv.pretrain import augment
    from sslinv.pretrain.config import PretrainConfig
    from sslinv.pretrain.loop import run
    from sslinv.pretrain.state import read_log

    pool = ensure_demo_pool(paths.cache_dir())  # the user's demo pool, painted once
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)  # checkpoints and log of this throw-away run
        cfg = PretrainConfig(
            name="bench", augment=list(augment.PRESETS["default"].augment), arch=arch, cache_dir=cache,
            data_root=cache / "data", preset="default", data=str(pool), epochs=2, batch_size=batch,
            moco_k=max(batch, 256 // batch * batch), image_size=image_size, workers=workers, device=device_name,
            precision=precision, log_every_steps=0,
        )
        result = run(cfg)
        epochs = [r for r in read_log(result.log) if r["event"] == "epoch"]
    # The second epoch: workers already running, no first-call overheads.
    return {"run_images_per_s": epochs[-1]["images_per_s"], "run_epoch_seconds": epochs[-1]["seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32, help="images per process")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--device", default=None)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--bn-splits", type=int, default=None)
    p.add_argument("--moco-k", type=int, default=65536)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--augment", action="store_true",
                   help="compare PIL views with GPUAugment views (default, dorsal, ventral) instead")
    p.add_argument("--data", default=None, help="--augment: an image folder instead of painted JPEGs")
    p.add_argument("--batches", type=int, default=6, help="--augment: loader batches timed per preset and mode")
    p.add_argument("--end-to-end", action="store_true", help="also time a training run on the demo pool")
    p.add_argument("--reference", action="store_true",
                   help="GPU: ResNet-50, 224 px, 32 images per GPU, fp32 and bf16, against MoCo's 53 h / 8 V100")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    if args.augment:
        workers = 1 if args.workers is None else args.workers
        rows = compare_augment(args.image_size, args.batch_size, args.device or "cpu", workers, args.batches, args.data)
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        r0 = rows[0]
        print(f"views of {r0['image_size']} px from ImageNet-sized images, batch {args.batch_size}, on {r0['device']}; "
              "images/s (two views each)")
        print(f"{'preset':8}  {'PIL 1 core':>10}  {'GPUAugment':>10}  {'ratio':>6}  |  "
              f"{'PIL loader':>10}  {'device loader':>13}  {'ratio':>6}  ({workers} worker(s))")
        for r in rows:
            print(f"{r['preset']:8}  {r['pil_core_images_per_s']:10.1f}  {r['device_images_per_s']:10.1f}  "
                  f"{r['ratio_core']:6.2f}  |  {r['pil_loader_images_per_s']:10.1f}  "
                  f"{r['device_loader_images_per_s']:13.1f}  {r['ratio_loader']:6.2f}")
        return

    rows = []
    if args.reference:
        for precision in ("fp32", "bf16"):
            r = measure("resnet50", 224, 32, precision, args.device or "cuda", args.steps, args.warmup, 1, 65536)
            r["vs_reference_per_v100"] = r["step_images_per_s"] / REFERENCE_PER_GPU
            r["hours_for_200_epochs_on_8"] = IMAGENET_TRAIN * 200 / (8 * r["step_images_per_s"]) / 3600
            rows.append(r)
    else:
        r = measure(args.arch, args.image_size, args.batch_size, args.precision, args.device, args.steps,
                    args.warmup, args.bn_splits, args.moco_k)
        d = measure_device_augment(args.arch, args.image_size, args.batch_size, args.precision, args.device,
                                   args.steps, args.warmup, args.bn_splits, args.moco_k)
        r.update({"device_augmented_step_images_per_s": d["augmented_step_images_per_s"],
                  "ratio_device_augmented_to_step": d["ratio_augmented_to_step"]})
        if args.end_to_end:
            r.update(end_to_end(args.arch, args.image_size, args.batch_size, args.precision, args.device, args.workers))
            r["ratio_run_to_bare"] = r["run_images_per_s"] / r["bare_images_per_s"]
        rows.append(r)

    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        where = r["gpu"] or r["device"]
        print(f"{r['arch']} {r['image_size']}px, batch {r['batch']}, {r['precision']}, BN groups {r['bn_splits']}, "
              f"on {where}")
        print(f"  bare encoder forward+backward : {r['bare_images_per_s']:9.1f} images/s")
        print(f"  MoCo training step            : {r['step_images_per_s']:9.1f} images/s   "
              f"ratio step/bare {r['ratio_step_to_bare']:.3f} (method's own cost: about 0.75)")
        if "device_augmented_step_images_per_s" in r:
            print(f"  step + device augmentation    : {r['device_augmented_step_images_per_s']:9.1f} images/s   "
                  f"ratio to the step {r['ratio_device_augmented_to_step']:.3f} (default preset, decoded "
                  "ImageNet-sized images copied in)")
        if "run_images_per_s" in r:
            print(f"  training run (data included)  : {r['run_images_per_s']:9.1f} images/s   "
                  f"ratio run/bare {r['ratio_run_to_bare']:.3f}")
        if "vs_reference_per_v100" in r:
            print(f"  MoCo reference: {REFERENCE_PER_GPU:.0f} images/s per V100 (53 h for 200 epochs on 8); "
                  f"this GPU: {r['vs_reference_per_v100']:.2f}x, 200 epochs on 8 such GPUs in about "
                  f"{r['hours_for_200_epochs_on_8']:.1f} h (model compute only; data loading not included)")


if __name__ == "__main__":
    main()
