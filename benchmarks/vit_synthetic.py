"""`sslinv synthetic` on a ViT-S/16 against bare forward passes of the same views.

A ViT-S/16 with random weights (timm's ``vit_small_patch16_224`` initialisation) is saved
in the DINO release layout and given by path, as a user would. Timing: one synthetic run
(statistics already cached: the clean pass plus every transformed view, i.e. decoding,
transforming, the model's own normalisation, forward, whitening, metrics, result file)
against bare forward passes of the same model over the same number of 224 x 224 views
(pre-made uint8 batches), in the same process. Target: ratio <= 1.3 on the CPU.

    python benchmarks/vit_synthetic.py                 # rotation k=16, 16 images, CPU
    python benchmarks/vit_synthetic.py --k 8 --num-images 8 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def write_pool(root: Path, n: int) -> Path:
    """``n`` textured, non-square JPEGs (the statistics pool and the sampled images)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = int(rng.integers(240, 320)), int(rng.integers(240, 320))
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        f = rng.uniform(2, 12, size=2)
        img = np.stack([rng.uniform() + 0.4 * np.sin(2 * np.pi * (f[0] * xx + f[1] * yy + c / 3)) for c in range(3)], -1)
        img += rng.normal(0, 0.05, size=img.shape)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / f"img_{i:04d}.jpg", quality=90)
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--transform", default="rotation")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--num-images", type=int, default=16)
    p.add_argument("--pool", type=int, default=32, help="statistics pool size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    # benchmarks/ is on sys.path when this file is run as a script.
    import timm
    import torch
    from synthetic_speed import bare_forward

    from sslinv.evaluate.common import Runtime
    from sslinv.evaluate.synthetic import SyntheticConfig, run
    from sslinv.models import load_model

    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        net = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
        ckpt = tmp / "vit_small_random.pth"
        torch.save(net.state_dict(), ckpt)  # the DINO ViT-S/16 release layout
        pool = write_pool(tmp / "pool", args.pool)

        def synthetic(k: int, n: int):
            rt = Runtime(model=str(ckpt), cache_dir=tmp / "cache", data_root=tmp, batch_size=args.batch_size,
                         workers=args.workers, device=args.device, force=True)
            cfg = SyntheticConfig(runtime=rt, transforms=[args.transform], data=str(pool), k=k, num_images=n)
            return run(cfg)

        synthetic(2, 2)  # warm-up, not timed: statistics of the pool are cached here
        t0 = time.perf_counter()
        results = synthetic(args.k, args.num_images)
        t_sslinv = time.perf_counter() - t0
        n_forward = args.num_images * (results[0].k + 1)  # every view plus the clean view

        # The same model, file and batches of pre-made uint8 views, as synthetic_speed.py does.
        t_bare = bare_forward(argparse.Namespace(model=str(ckpt), device=args.device,
                                                 batch_size=args.batch_size, crop=224), n_forward)
        _, identity = load_model(str(ckpt), tmp / "cache")

    member = identity["members"][0]
    print(f"{member['arch']} ({member['layout']} layout), {args.transform} k={results[0].k}, "
          f"{args.num_images} images: {n_forward} forward passes of 224 x 224 views")
    print(f"  sslinv synthetic : {t_sslinv:8.2f} s  ({n_forward / t_sslinv:7.1f} views/s)")
    print(f"  bare forward     : {t_bare:8.2f} s  ({n_forward / t_bare:7.1f} views/s)")
    print(f"  ratio            : {t_sslinv / t_bare:8.2f}x  (target <= 1.3x)")
    reg = results[0].record["statistics"]["regularisation"]
    print(f"  whitening        : {reg['method']}, {reg['num_dropped']} of {reg['dim']} directions dropped")


if __name__ == "__main__":
    main()
