"""Option aliases shared by the commands, the evaluations' shared block, and completions.

Nothing here imports torch: ``sslinv --help`` and tab completion must answer at once.
Name lists come from the registries themselves, which import no torch either
(``sslinv.transforms``, ``sslinv.models.zoo``; tests/test_cli.py checks both).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from sslinv.models.zoo import LAYERS
from sslinv.transforms.families import FAMILIES

#: The synthetic families in protocol order.
TRANSFORM_NAMES = tuple(FAMILIES.names())
#: ViT taps besides 'backbone' (blocks.N is completed for N = 0..11; see models.zoo.VIT_LAYERS).
VIT_LAYERS = ("patch-mean", *(f"blocks.{i}" for i in range(12)))

RUN = "Run"
DATA = "Data and cache"
COMPUTE = "Compute"
DIST = "Multi-GPU / multi-node (torchrun)"


class Fuse(str, Enum):
    cat = "cat"
    add = "add"
    mean = "mean"


class Render(str, Enum):
    pil = "pil"
    device = "device"


class Precision(str, Enum):
    fp32 = "fp32"
    tf32 = "tf32"
    bf16 = "bf16"
    fp16 = "fp16"


def parse_count(value: str, option: str) -> int | None:
    """A positive integer, or ``all`` (None), as typed after ``option``."""
    from sslinv.errors import UsageError

    if value.lower() == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"{option} must be a positive integer or 'all', not {value!r}.")
    return n


def complete_model(incomplete: str) -> list[str]:
    from sslinv.models.zoo import model_names

    # `a+b+c` fuses models: complete the member after the last '+'.
    head, sep, last = incomplete.rpartition("+")
    prefix = head + sep
    return [prefix + n for n in model_names() if n.startswith(last)]


def complete_transform(incomplete: str) -> list[str]:
    return [n for n in ("all", *TRANSFORM_NAMES) if n.startswith(incomplete)]


def complete_layer(incomplete: str) -> list[str]:
    # Torch-free, so the names of every family: ResNet stages and ViT taps.
    return [n for n in (*LAYERS, *VIT_LAYERS) if n.startswith(incomplete)]


def complete_device(incomplete: str) -> list[str]:
    return [n for n in ("auto", "cpu", "cuda", "cuda:0", "cuda:1") if n.startswith(incomplete)]


def complete_data(incomplete: str) -> list[str]:
    return ["demo"] if "demo".startswith(incomplete) else []


Model = Annotated[
    str,
    typer.Option(
        "--model", "-m",
        help="A model name (random, supervised, default, ventral, dorsal, default_w3, "
        "random-resnet18, random-tiny, or a checkpoint in <cache>/checkpoints), a path to a "
        "checkpoint file (ResNet or ViT: DINO, DINOv2, MAE, DeiT, MoCo v3, iBOT), "
        "timm:NAME[.TAG] for a timm model from the Hugging Face hub, or several joined by '+' to fuse them.",
        autocompletion=complete_model, rich_help_panel=RUN,
    ),
]
FuseOpt = Annotated[
    Fuse, typer.Option("--fuse", help="How a fused model 'a+b' combines features.", rich_help_panel=RUN)
]
Layer = Annotated[
    str,
    typer.Option(
        "--feature-layer",
        help="Features: 'backbone' (ResNet: pooled last stage; ViT: final-norm CLS token), "
        "ResNet layer1..layer4 (globally average-pooled), ViT blocks.N (CLS token of block N "
        "through the final norm) or patch-mean (mean of the final-norm patch tokens).",
        autocompletion=complete_layer, rich_help_panel=RUN,
    ),
]
ArchOpt = Annotated[
    Optional[str],
    typer.Option(
        "--arch", help="Architecture of the checkpoint files given by path, instead of the one read "
        "from their tensors: a ResNet (resnet50, ...) or a timm ViT name (e.g. vit_small_patch16_224), "
        "for the head count the tensors cannot tell \\[default: from the file].",
        show_default=False, rich_help_panel=RUN,
    ),
]
Force = Annotated[
    bool, typer.Option("--force", help="Recompute even if a finished result with identical inputs exists.", rich_help_panel=RUN)
]
RefreshCache = Annotated[
    bool,
    typer.Option(
        "--refresh-cache", help="Recompute the cached statistics and features this run uses, and "
        "the results (implies --force, which alone reuses them). An unreadable cache entry is "
        "recomputed anyway.", rich_help_panel=RUN,
    ),
]
Json = Annotated[
    bool, typer.Option("--json", help="Print results as JSON on stdout (for scripts) instead of a table.", rich_help_panel=RUN)
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks on errors.", rich_help_panel=RUN)]

CacheDir = Annotated[
    Optional[Path],
    typer.Option(
        "--cache-dir", help="Cache root for checkpoints, statistics and results "
        "\\[default: $SSLINV_CACHE_DIR, else the user cache dir].",
        show_default=False, rich_help_panel=DATA,
    ),
]
DataRoot = Annotated[
    Optional[Path],
    typer.Option(
        "--data-root", help="Where datasets live \\[default: $SSLINV_DATA_ROOT, else <cache>/data].",
        show_default=False, rich_help_panel=DATA,
    ),
]
SkipBad = Annotated[
    bool, typer.Option("--skip-bad", help="Skip (and count) unreadable images instead of stopping.", rich_help_panel=DATA)
]

Device = Annotated[
    Optional[str],
    typer.Option(
        "--device", help="cpu, cuda or cuda:N \\[default: cuda when available, else cpu].",
        show_default=False, autocompletion=complete_device, rich_help_panel=COMPUTE,
    ),
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option("--precision", help="Precision of the forward pass: fp32 (the reference's; true fp32, TF32 off), tf32 (TF32 matmuls and convolutions on GPUs), or bf16/fp16 autocast.", rich_help_panel=COMPUTE),
]
RenderOpt = Annotated[
    Render,
    typer.Option(
        "--render", help="How synthetic views are made: pil (the paper's path: PIL in the decoding workers) or "
        "device (batched tensor operations on the model's device, the CPU only decodes; differs from PIL in the "
        "last bits, see docs/gpu.md). The statistics always use PIL's clean views.", rich_help_panel=COMPUTE,
    ),
]
BatchSize = Annotated[
    Optional[int],
    typer.Option(
        "--batch-size", min=1, help="Images per forward pass \\[default: 256 on a GPU, 64 on the CPU].",
        show_default=False, rich_help_panel=COMPUTE,
    ),
]
Workers = Annotated[
    Optional[int],
    typer.Option(
        "--workers", min=0,
        help="DataLoader worker processes for decoding \\[default: up to 8 with a GPU; none on the CPU, "
        "where threads of the main process load the images between forward passes].",
        show_default=False, rich_help_panel=COMPUTE,
    ),
]

NprocPerNode = Annotated[
    int, typer.Option("--nproc-per-node", min=1, help="Processes (GPUs) per node; > 1 relaunches under torchrun.", rich_help_panel=DIST)
]
Nnodes = Annotated[int, typer.Option("--nnodes", min=1, help="Number of nodes.", rich_help_panel=DIST)]
NodeRank = Annotated[int, typer.Option("--node-rank", min=0, help="This node's rank.", rich_help_panel=DIST)]
RdzvEndpoint = Annotated[
    Optional[str], typer.Option("--rdzv-endpoint", help="HOST:PORT of the rendezvous (multi-node).", rich_help_panel=DIST)
]


def cache_root(option: Path | None) -> Path:
    """The cache root of ``--cache-dir`` (or its defaults), checked to be writable before
    any work starts (one line and exit 1 naming the path otherwise)."""
    from sslinv import cache, paths

    return cache.require_writable(paths.cache_dir(option), "--cache-dir (or set SSLINV_CACHE_DIR)")


def shared_options(
    model: Model,
    feature_layer: Layer = "backbone",
    arch: ArchOpt = None,
    fuse: FuseOpt = Fuse.cat,
    force: Force = False,
    refresh_cache: RefreshCache = False,
    json_: Json = False,
    verbose: Verbose = False,
    cache_dir: CacheDir = None,
    data_root: DataRoot = None,
    skip_bad: SkipBad = False,
    device: Device = None,
    precision: PrecisionOpt = Precision.fp32,
    batch_size: BatchSize = None,
    workers: Workers = None,
    nproc_per_node: NprocPerNode = 1,
    nnodes: Nnodes = 1,
    node_rank: NodeRank = 0,
    rdzv_endpoint: RdzvEndpoint = None,
) -> None:
    """The options every evaluation command shares, in their order in ``--help``: a
    signature only (``sslinv.cli.common.evaluation_command`` reads it); ``--model`` comes
    first, the command's own options after it."""
