"""`sslinv pretrain`: MoCo v2 with the paper's augmentation presets, one process per GPU."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from sslinv.cli import options as o
from sslinv.cli.output import RichReporter, error, handle_errors, is_main_rank, print_json, stdout

#: Torch-free copies for completion and help; tests/test_pretrain.py checks them against
#: sslinv.pretrain.augment.
PRESET_NAMES = ("default", "ventral", "dorsal", "default_w3")
ARCH_NAMES = ("resnet18", "resnet50", "resnet50w3")
TRAIN = "Training"


class AugmentOn(str, Enum):
    """Where the two views are made (torch-free copy of sslinv.pretrain.config.AUGMENT_ON)."""

    workers = "workers"
    device = "device"


def complete_preset(incomplete: str) -> list[str]:
    return [n for n in PRESET_NAMES if n.startswith(incomplete)]


def complete_arch(incomplete: str) -> list[str]:
    return [n for n in ARCH_NAMES if n.startswith(incomplete)]


def complete_augment(incomplete: str) -> list[str]:
    from sslinv.pretrain.augment import AUGMENTATIONS

    head, sep, last = incomplete.rpartition(",")
    done = set(head.split(",")) if head else set()
    return [head + sep + n for n in AUGMENTATIONS if n.startswith(last) and n not in done]


@handle_errors()
def pretrain(
    model: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="Augmentation preset: default, ventral (spatial only), dorsal "
                     "(appearance only) or default_w3 (default on ResNet-50 3x wide).",
                     show_default=False, autocompletion=complete_preset, rich_help_panel=o.RUN),
    ] = None,
    augment: Annotated[
        Optional[str],
        typer.Option("--augment", help="A custom comma-separated augmentation list instead of a preset, "
                     "applied in order: resized_crop, h_flip, v_flip, color_jitter, grayscale, blur "
                     "(needs --name).", show_default=False, autocompletion=complete_augment, rich_help_panel=o.RUN),
    ] = None,
    name: Annotated[
        Optional[str],
        typer.Option("--name", help="The name the trained model is registered under (--model NAME in the "
                     "other commands) \\[default: the preset].", show_default=False, rich_help_panel=o.RUN),
    ] = None,
    arch: Annotated[
        Optional[str],
        typer.Option("--arch", help="Encoder: resnet18, resnet50 or resnet50w3 \\[default: the preset's, "
                     "resnet50 (resnet50w3 for default_w3)].", show_default=False,
                     autocompletion=complete_arch, rich_help_panel=TRAIN),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.", rich_help_panel=TRAIN)] = 200,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Global batch size, split over all processes.", rich_help_panel=TRAIN)
    ] = 256,
    lr: Annotated[
        float, typer.Option("--lr", min=0.0, help="Learning rate for a batch of 256; scaled linearly with --batch-size.",
                            rich_help_panel=TRAIN)
    ] = 0.03,
    moco_dim: Annotated[
        Optional[int], typer.Option("--moco-dim", min=1, help="Output size of the MLP head \\[default: 128, 384 for "
                                    "resnet50w3].", show_default=False, rich_help_panel=TRAIN)
    ] = None,
    moco_k: Annotated[int, typer.Option("--moco-k", min=1, help="Queue length (negatives); keep it below the "
                                        "number of training images.", rich_help_panel=TRAIN)] = 65536,
    moco_m: Annotated[float, typer.Option("--moco-m", help="Momentum of the key encoder.", rich_help_panel=TRAIN)] = 0.999,
    moco_t: Annotated[float, typer.Option("--moco-t", help="Softmax temperature.", rich_help_panel=TRAIN)] = 0.2,
    cos: Annotated[
        bool, typer.Option("--cos/--no-cos", help="Cosine learning-rate schedule (--no-cos: x0.1 at 60% and 80% of "
                           "the epochs).", rich_help_panel=TRAIN)
    ] = True,
    bn_splits: Annotated[
        Optional[int], typer.Option("--bn-splits", min=1, help="Batch-norm groups per process \\[default: 1 with "
                                    "several processes (keys shuffled across them); on one process, one group per "
                                    "32 images, at least 2, emulating shuffled BN].", show_default=False,
                                    rich_help_panel=TRAIN)
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of initial weights, image order and augmentations.",
                                      rich_help_panel=TRAIN)] = 0,
    image_size: Annotated[
        int, typer.Option("--image-size", min=8, help="Side of the training crops (224 as the paper; 64 for a quick "
                          "CPU run).", rich_help_panel=TRAIN)
    ] = 224,
    resume: Annotated[
        bool, typer.Option("--resume", help="Require a checkpoint to continue from (rerunning the same command "
                           "resumes anyway).", rich_help_panel=TRAIN)
    ] = False,
    save_every_steps: Annotated[
        int, typer.Option("--save-every-steps", min=0, help="Also checkpoint every N steps within an epoch "
                          "(0: at epoch ends only).", rich_help_panel=TRAIN)
    ] = 0,
    log_every_steps: Annotated[
        int, typer.Option("--log-every-steps", min=0, help="Write a step record to the JSON-lines log every N "
                          "steps (0: epoch records only).", rich_help_panel=TRAIN)
    ] = 50,
    data: Annotated[
        Optional[str],
        typer.Option("--data", help="Training images: an image folder (class/*.jpg or flat; labels unused), or "
                     "'demo' for the built-in pool \\[default: <data-root>/imagenet/train].",
                     show_default=False, autocompletion=o.complete_data, rich_help_panel=o.DATA),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Start over: delete this name's checkpoint, log and exported model.",
                           rich_help_panel=o.RUN)
    ] = False,
    json_: o.Json = False,
    verbose: o.Verbose = False,
    cache_dir: o.CacheDir = None,
    data_root: o.DataRoot = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Replace unreadable images by the next readable one instead of stopping.",
                           rich_help_panel=o.DATA)
    ] = False,
    device: o.Device = None,
    precision: Annotated[
        o.Precision, typer.Option("--precision", help="Mixed precision of forward and backward: bf16 or fp16 (with "
                                  "loss scaling) on GPUs; fp32 is the reference's (TF32 off), tf32 allows TF32 on GPUs.",
                                  rich_help_panel=o.COMPUTE)
    ] = o.Precision.fp32,
    workers: o.Workers = None,
    augment_on: Annotated[
        AugmentOn, typer.Option("--augment-on", help="Where the two views of each image are made: workers (PIL in the "
                                "loader workers, the reference's pipeline) or device (the workers only decode; the "
                                "views of a whole batch are made on the training device, for GPUs the CPUs cannot "
                                "keep fed; the same augmentations, slightly different resampling and blur). Part of "
                                "the recipe: a run resumes only with the same choice.", rich_help_panel=o.COMPUTE)
    ] = AugmentOn.workers,
    nproc_per_node: Annotated[
        Optional[int], typer.Option("--nproc-per-node", min=1, help="Processes per node, one per GPU; > 1 relaunches "
                                    "under torchrun \\[default: the visible GPUs, 1 on CPU].", show_default=False,
                                    rich_help_panel=o.DIST)
    ] = None,
    nnodes: o.Nnodes = 1,
    node_rank: o.NodeRank = 0,
    rdzv_endpoint: o.RdzvEndpoint = None,
) -> None:
    """Train a MoCo v2 model with an augmentation preset, then evaluate it by name.

    Training stays MoCo v2 on ResNets (resnet18, resnet50, resnet50w3), as in the paper; the evaluation commands also take ViTs and other timm models (--model PATH or timm:NAME). Presets are the paper's (protocol section 6): default (MoCo v2's augmentations), ventral (crop and flip), dorsal (colour jitter, grey-scale, blur) and default_w3. One process per GPU through torchrun; checkpoints every epoch, so rerunning the same command resumes. The final encoder is exported to <cache>/checkpoints/<name>.pth.tar.

    Example: sslinv pretrain --model ventral --data /data/imagenet/train

    Quick CPU try (a few minutes): sslinv pretrain --model default --arch resnet18 --image-size 64 --data demo --batch-size 64 --moco-k 256 --lr 0.12 --moco-m 0.99 --epochs 20 --name demo-r18
    """
    from sslinv.errors import UsageError
    from sslinv.launch import LaunchOptions, relaunch

    if nproc_per_node is None:
        nproc_per_node = _visible_gpus(device)
    launch = LaunchOptions(nproc_per_node, nnodes, node_rank, rdzv_endpoint)
    if launch.wants_relaunch:
        raise typer.Exit(relaunch(launch))

    # -- config -------------------------------------------------------------------------
    from sslinv import paths
    from sslinv.pretrain import augment as aug
    from sslinv.pretrain.config import PretrainConfig
    from sslinv.pretrain.loop import run

    if model is not None and augment is not None:
        raise UsageError("Give either --model PRESET or --augment LIST, not both.")
    if model is None and augment is None:
        raise UsageError(
            f"Say what to train: --model {'|'.join(PRESET_NAMES)}, or --augment LIST --name NAME for your "
            "own augmentations."
        )
    if model is not None:
        preset = aug.get_preset(model)
        augmentations, default_arch = list(preset.augment), preset.arch
    else:
        preset = None
        augmentations, default_arch = aug.parse_augment(augment), "resnet50"
        if name is None:
            raise UsageError("--augment needs --name: the name to register the trained model under.")
    cache = o.cache_root(cache_dir)
    cfg = PretrainConfig(
        name=name or model,
        augment=augmentations,
        arch=arch or default_arch,
        cache_dir=cache,
        data_root=paths.data_root(data_root, cache),
        preset=preset.name if preset else None,
        data=data,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        moco_dim=moco_dim,
        moco_k=moco_k,
        moco_m=moco_m,
        moco_t=moco_t,
        cos=cos,
        bn_splits=bn_splits,
        seed=seed,
        image_size=image_size,
        augment_on=augment_on.value,
        workers=workers,
        device=device,
        precision=precision.value,
        save_every_steps=save_every_steps,
        log_every_steps=log_every_steps,
        skip_bad=skip_bad,
        resume=resume,
        force=force,
    )

    # -- run ----------------------------------------------------------------------------
    from sslinv import distributed

    reporter = RichReporter(enabled=is_main_rank())
    try:
        result = run(cfg, reporter)
    except KeyboardInterrupt:
        reporter.close()
        if is_main_rank():
            error(f"interrupted; rerun the same command to resume {cfg.name!r} from its last checkpoint.")
        raise typer.Exit(130) from None
    finally:
        reporter.close()
        distributed.shutdown(distributed.world_from_env())

    # -- render ---------------------------------------------------------------------------
    if result is None:  # ranks other than 0
        return
    if json_:
        print_json({"command": "pretrain", **result.summary()})
        return
    render_summary(result)


def _visible_gpus(device: str | None) -> int:
    """Default --nproc-per-node: every visible GPU when training on CUDA, else 1."""
    if device is not None and (device == "cpu" or ":" in device):
        return 1
    import torch

    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


def render_summary(result) -> None:
    f = result.final or {}
    how = "already finished" if result.finished_before else (
        f"resumed at epoch {result.start_epoch + 1}" if result.resumed else "trained")
    stdout.print(
        f"[bold]{result.name}[/] ({result.arch}, {', '.join(result.augment)}"
        + (", views made on the device" if result.augment_on == "device" else "")
        + f"): {result.epochs} epochs, {how}"
        + (f"; last epoch loss {f['loss']:.4f}, contrastive acc@1 {f['acc1']:.1f}%" if f else "")
        + ".",
        highlight=False,
    )
    stdout.print(f"model: {result.checkpoint}", highlight=False)
    stdout.print(f"log:   {result.log}", highlight=False)
    stdout.print(f"[dim]Evaluate it: sslinv synthetic --model {result.name} --transform all[/]", highlight=False)
