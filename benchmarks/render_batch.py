"""CPU seconds per view of the geometric families: one view per call against batched
rendering, measured in the same run on the same images and parameters.

Three ways to render the views of one image for one family:

- per call: ``Family.view`` once per parameter (what a loader doing one view per item
  would pay);
- ``Family.views``: all views of the image in one call, PIL path (the default renderer;
  its outputs are identical to the per-call ones, checked here): only the source window
  the centre crop reads is warped and resampled, ``translation`` resizes once, flips
  share the resize, ``resized_crop`` shares horizontal and vertical passes
  (``sslinv.transforms.pil_fast``);
- device renderer (``sslinv.transforms.device.render_views``) run on the CPU with one
  thread: batched tensor operations (warps bit-identical to Pillow's, the resize within
  one grey level on a few pixels). On a GPU this work leaves the CPU altogether.

CPU time is ``time.process_time`` (all threads of this process), so the figures are CPU
seconds, not wall time. Prints ms per view and the ratios against per call.

    python benchmarks/render_batch.py                      # 4 images 500 x 375, k = 16, 256/224
    python benchmarks/render_batch.py --resize 128 --crop 112 --k 64
    python benchmarks/render_batch.py --size 375x500 --no-device   # portrait, PIL columns only
    python benchmarks/render_batch.py --clean --families ""        # clean views only

``--clean`` adds a row for the clean view (no transformation) of each image, as the
statistics pass renders it: ``pipeline.finish`` (full resize, then centre crop)
against ``pil_fast.clean_window`` (only the window the crop reads, once the size has
recurred), per view, with the same bytes (checked).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from sslinv.transforms import device as device_render
from sslinv.transforms import get_family

GEOMETRIC = ("rotation", "translation", "scale", "shear", "resized_crop", "h_flip", "v_flip")


def photo(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    f = rng.uniform(1, 8, size=(3, 2))
    img = np.stack([127 + 90 * np.sin(2 * np.pi * (f[c, 0] * xx + f[c, 1] * yy) + c) for c in range(3)], -1)
    return Image.fromarray(np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8))


def cpu_seconds(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def clean_row(imgs: list[Image.Image], resize: int, crop: int, repeat: int, rounds: int = 25) -> str:
    """The clean-view row: ms per view, plain against windowed, and the ratio."""
    from sslinv.transforms import pil_fast
    from sslinv.transforms.pipeline import finish

    for im in imgs:  # past the first CLEAN_AFTER calls with this size
        for _ in range(pil_fast.CLEAN_AFTER):
            pil_fast.clean_window(im, resize, crop)
        window = pil_fast.clean_window(im, resize, crop)
        assert window is not None and torch.equal(window, finish(im, resize, crop))

    def plain():  # the full resize, then the centre crop (what clean_view does for a new size)
        return [finish(im, resize, crop) for _ in range(rounds) for im in imgs]

    def windowed():
        return [pil_fast.clean_window(im, resize, crop) for _ in range(rounds) for im in imgs]

    n = rounds * len(imgs)
    t_plain, t_window = cpu_seconds(plain, repeat), cpu_seconds(windowed, repeat)
    return f"{'clean view':14s} {1000 * t_plain / n:9.3f} {1000 * t_window / n:9.3f} {t_plain / t_window:5.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings")
    ap.add_argument("--size", default="500x375", help="image width x height")
    ap.add_argument("--families", default=",".join(GEOMETRIC), help="comma-separated family names")
    ap.add_argument("--no-device", action="store_true", help="skip the (slow on a CPU) device renderer")
    ap.add_argument(
        "--clean",
        action="store_true",
        help="add a row for the clean view: pipeline.clean_view against pil_fast.clean_window",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    width, height = (int(v) for v in args.size.lower().split("x"))
    imgs = [photo(height, width, i) for i in range(args.images)]
    tensors = [device_render.image_tensor(im) for im in imgs]
    print(f"{args.images} images {width} x {height}, k={args.k}, {args.resize}/{args.crop} px, 1 thread; "
          "CPU ms per view")
    print(f"{'family':14s} {'per call':>9s} {'views()':>9s} {'ratio':>6s}" + ("" if args.no_device else
          f" {'device':>9s} {'ratio':>6s}"))
    for name in filter(None, args.families.split(",")):
        fam = get_family(name)
        params = fam.grid(args.k, args.resize, args.crop).params
        n = len(imgs) * len(params)

        def per_call(fam=fam, params=params):
            return [torch.stack([fam.view(im, p, args.resize, args.crop, seed=i) for p in params])
                    for i, im in enumerate(imgs)]

        def batched(fam=fam, params=params):
            return [fam.views(im, params, args.resize, args.crop, seed=i) for i, im in enumerate(imgs)]

        def device(name=name, params=params):
            return [device_render.render_views(name, t, params, args.resize, args.crop, seed=i)
                    for i, t in enumerate(tensors)]

        assert all(torch.equal(a, b) for a, b in zip(per_call(), batched())), name  # identical outputs
        t_one, t_views = cpu_seconds(per_call, args.repeat), cpu_seconds(batched, args.repeat)
        line = f"{name:14s} {1000 * t_one / n:9.3f} {1000 * t_views / n:9.3f} {t_one / t_views:5.2f}x"
        if not args.no_device:
            t_dev = cpu_seconds(device, args.repeat)
            line += f" {1000 * t_dev / n:9.3f} {t_one / t_dev:5.2f}x"
        print(line)
    if args.clean:
        print(f"{'':14s} {'plain':>9s} {'window':>9s}")
        print(clean_row(imgs, args.resize, args.crop, args.repeat))


if __name__ == "__main__":
    main()
