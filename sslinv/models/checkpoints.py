"""Checkpoint formats: read any known ResNet checkpoint layout into backbone weights.

A checkpoint's architecture comes from its own ``arch`` string when it has a known one,
else from its tensor shapes (block type, blocks per stage, channel widths), never from
its file name. Only the backbone keys of a torchvision ResNet are kept (``conv1``,
``bn1``, ``layer1``..``layer4``); heads, queues and key encoders are dropped.

Layouts recognised (the prefix is stripped from the keys; facts from the public MoCo,
SwAV, PyContrast (InfoMin/InsDis/PIRL) and torchvision releases):

- ``moco[module.encoder_q.]``: the MoCo training checkpoint
  ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` with ``module.encoder_q.*`` (query
  ResNet and its ``fc.0``/``fc.2`` MLP head), ``module.encoder_k.*``, ``module.queue``,
  ``module.queue_ptr``; ``moco[encoder_q.]`` is the same saved without DataParallel.
  PCL uses it too. ``sslinv pretrain`` writes it (``save_moco_checkpoint``).
- ``torchvision``: a plain state dict (``conv1.weight`` ... ``fc.weight``);
  ``torchvision[module.]`` etc. when its keys carry a known prefix (SwAV, DeepCluster-v2
  and SeLa-v2 releases: ``module.`` plus ``projection_head``/``prototypes``).
- ``state_dict[PREFIX]`` / ``model[PREFIX]``: a dict wrapping the weights under
  ``'state_dict'`` or ``'model'`` (InfoMin/InsDis/PIRL: ``model`` with
  ``module.encoder.``; PIRL's ``module.jigsaw``/``module.head_jig`` are dropped).

Vision Transformers (DINO, DINOv2, MAE, DeiT, MoCo v3, iBOT/DINO training checkpoints)
are recognised by ``sslinv.models.layouts_vit`` when no ResNet is found, and built
through timm (``sslinv.models.vit``); ``arch`` (``--arch``) names a timm model to
override what the tensors say.

Loading is always ``torch.load(..., weights_only=True)``; ``argparse.Namespace`` (the
training options that research checkpoints often carry) is the one extra type allowed.
``.safetensors`` files are read with safetensors.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslinv.cache import atomic_path, sha256_file
from sslinv.errors import CheckpointError
from sslinv.models.resnet import ARCHS, STAGES

__all__ = [
    "BACKBONE_ROOTS",
    "KNOWN_LAYOUTS",
    "KNOWN_PREFIXES",
    "LoadedCheckpoint",
    "build_backbone",
    "infer_arch",
    "load_checkpoint",
    "save_moco_checkpoint",
]

# Top-level module names that make up a ResNet backbone; everything else is dropped.
BACKBONE_ROOTS = frozenset({"conv1", "bn1", *STAGES})

# Key prefixes tried in this order; the first under which ``conv1.weight`` exists wins,
# so the MoCo query encoder is chosen over the key encoder.
KNOWN_PREFIXES = (
    "module.encoder_q.",
    "encoder_q.",
    "module.encoder.",
    "module.backbone.",
    "module.base_encoder.",
    "module.model.",
    "module.",
    "backbone.",
    "encoder.",
    "base_encoder.",
    "model.",
    "",
)
MOCO_PREFIXES = ("module.encoder_q.", "encoder_q.")
WRAPPERS = ("state_dict", "model")

KNOWN_LAYOUTS = (
    "MoCo training checkpoint {'arch', 'state_dict': {'module.encoder_q.conv1.weight', "
    "..., 'module.encoder_k.*', 'module.queue'}, 'epoch', 'optimizer'} (also without "
    "'module.')",
    "torchvision ResNet state dict {'conv1.weight', 'bn1.weight', 'layer1.0.conv1.weight', "
    "..., 'fc.weight'}",
    "a dict wrapping such a state dict under 'state_dict' or 'model'",
    "with keys prefixed by one of: " + ", ".join(repr(p) for p in KNOWN_PREFIXES if p),
)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """Backbone weights read from a checkpoint file.

    ``state_dict`` holds backbone keys only, prefix stripped; ``layout`` names the layout
    recognised (e.g. ``moco[module.encoder_q.]``); ``sha256`` is of the file's bytes;
    ``arch_from`` says whether ``arch`` came from the file's arch string or its shapes.
    """

    arch: str
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    layout: str
    sha256: str
    arch_from: str = "shapes"
    family: str = "resnet"  # "resnet" | "vit"
    config: dict[str, Any] | None = None  # ViTConfig.as_dict() for a ViT


# ---------------------------------------------------------------------------- reading


def _torch_load(path: Path) -> Any:
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        except Exception as e:  # any failure means "not a safetensors file"
            raise CheckpointError(f"{path} is not a readable safetensors file ({type(e).__name__}: {e}).") from e
    # safe_globals exists from torch 2.5; older versions load without the allowance.
    allow = getattr(torch.serialization, "safe_globals", None)
    try:
        with allow([argparse.Namespace]) if allow else contextlib.nullcontext():
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(_unloadable(path, e)) from e


def _unloadable(path: Path, e: Exception) -> str:
    """Why ``path`` cannot be loaded, without PyTorch's advice to turn the safety check off
    (that advice would run whatever code a malicious file carries)."""
    import re

    text = str(e)
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            return (
                f"{path} holds Python objects beyond weights ({found.group(1)}), which sslinv does not "
                "load: checkpoints are read with torch.load(weights_only=True), which accepts tensors, "
                "dicts, lists, numbers, strings and argparse.Namespace. If you trust the file, save "
                "its weights once as a plain state dict, e.g. torch.save({'state_dict': "
                "ckpt['state_dict']}, 'clean.pth') in the code that wrote it, and pass that file."
            )
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        reason = detail.group(1).strip() if detail else "not a pickle torch.load can read"
    else:
        reason = " ".join(text.split()).split(". ")[0][:200]  # its first sentence
    return (
        f"{path} is not a loadable PyTorch checkpoint ({type(e).__name__}: {reason}); it may be "
        "truncated or another kind of file. Give a file written by torch.save "
        "(a .pth / .pth.tar / .pt checkpoint)."
    )


def _tensor_items(obj: Mapping) -> dict[str, torch.Tensor]:
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def first_prefix(sd: Mapping[str, Any], prefixes: tuple[str, ...], markers: tuple[str, ...]) -> str | None:
    """The first of ``prefixes`` under which every one of ``markers`` is a key of ``sd``."""
    for prefix in prefixes:
        if all(f"{prefix}{m}" in sd for m in markers):
            return prefix
    return None


def _find_prefix(sd: Mapping[str, Any]) -> str | None:
    return first_prefix(sd, KNOWN_PREFIXES, ("conv1.weight", "layer1.0.conv1.weight"))


def _locate(obj: Any) -> tuple[str, str, dict[str, torch.Tensor]] | None:
    """Find the ResNet weights in a loaded object: ``(container, prefix, tensors)``."""
    if not isinstance(obj, Mapping):
        return None
    top = _tensor_items(obj)
    prefix = _find_prefix(top)
    if prefix is not None:
        return "torchvision", prefix, top
    for wrapper in WRAPPERS:
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping):
            tensors = _tensor_items(inner)
            prefix = _find_prefix(tensors)
            if prefix is not None:
                return wrapper, prefix, tensors
    return None


def _keys_sample(obj: Any, limit: int = 12) -> str:
    """A readable sample of the keys seen, one level into known wrappers."""
    if not isinstance(obj, Mapping):
        return f"(no keys: the file holds a {type(obj).__name__}, not a dict)"
    keys = [str(k) for k in obj]
    parts = [_sample(keys, limit)]
    for wrapper in WRAPPERS:
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping):
            parts.append(f"under {wrapper!r}: {_sample([str(k) for k in inner], limit)}")
    return "; ".join(parts)


def _sample(keys: list[str], limit: int) -> str:
    more = f" ... ({len(keys)} in all)" if len(keys) > limit else ""
    return "[" + ", ".join(repr(k) for k in keys[:limit]) + "]" + more


def backbone_only(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` with it stripped, keeping only ResNet backbone modules."""
    out = {}
    for key, value in tensors.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if rest.split(".", 1)[0] in BACKBONE_ROOTS:
            out[rest] = value
    return out


def read_signature(sd: Mapping[str, torch.Tensor]) -> tuple[str, tuple[int, ...], int, int]:
    """(block type, blocks per stage, conv1 channels, layer1 inner width) of a state dict."""
    block = "bottleneck" if "layer1.0.conv3.weight" in sd else "basic"
    counts = tuple(
        len({k.split(".")[1] for k in sd if k.startswith(f"{stage}.")}) for stage in STAGES
    )
    stem = int(sd["conv1.weight"].shape[0])
    return block, counts, stem, int(sd["layer1.0.conv1.weight"].shape[0])


def infer_arch(sd: Mapping[str, torch.Tensor]) -> str:
    """The registered architecture whose shapes match a (stripped) backbone state dict."""
    sig = read_signature(sd)
    for name, arch in ARCHS.items():
        if arch.signature == sig:
            return name
    block, counts, stem, inner = sig
    known = ", ".join(f"{n} {a.signature[:3]}" for n, a in ARCHS.items())
    raise CheckpointError(
        f"Cannot tell the architecture from the tensor shapes: {block} blocks, "
        f"{list(counts)} blocks per stage, conv1 with {stem} channels, layer1 width {inner}. "
        f"Known architectures (block, blocks per stage, conv1 channels): {known}."
    )


def _expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Backbone keys and shapes of ``arch``, read from a meta-device model (no memory)."""
    with torch.device("meta"):
        net = ARCHS.get(arch)()
    net.fc = nn.Identity()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def fit_problems(
    sd: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], optional: tuple[str, ...] = ()
) -> str | None:
    """Missing, unexpected and mis-shaped keys of ``sd`` against ``expected``, or None."""
    missing = [k for k in expected if k not in sd and not (optional and k.endswith(optional))]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k}: {tuple(sd[k].shape)} vs {expected[k]}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != expected[k]
    ]
    if not (missing or unexpected or wrong):
        return None
    return (
        f"Missing keys: {_sample(missing, 10)}; unexpected keys: {_sample(unexpected, 10)}"
        + (f"; shape mismatches: {_sample(wrong, 5)}" if wrong else "")
    )


def _check_fit(sd: Mapping[str, torch.Tensor], arch: str, path: Path, arch_from: str) -> None:
    # Checkpoints from PyTorch < 0.4.1 lack num_batches_tracked; BatchNorm fills it in.
    problems = fit_problems(sd, _expected_shapes(arch), optional=("num_batches_tracked",))
    if problems:
        raise CheckpointError(
            f"The weights in {path} do not fit a {arch} (architecture from the {arch_from}). "
            f"{problems}. Check that the file is a complete ResNet checkpoint of a known architecture."
        )


def check_finite(sd: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or Inf: they give NaN features, never a number.

    One ``isfinite().all()`` per floating tensor, in state-dict order, so the message
    names the first damaged tensor.
    """
    for key, t in sd.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(
                f"The weights in {path} hold non-finite values (NaN or Inf): {bad} of {t.numel()} in "
                f"{key!r}, the first such tensor. The training run that wrote the file diverged or "
                "the file is damaged: use an earlier checkpoint of the run."
            )


def load_checkpoint(path: Path | str, arch: str | None = None) -> LoadedCheckpoint:
    """Read a checkpoint file into backbone weights, its architecture and its layout.

    ``arch`` (``--arch``) overrides the architecture read from the file: a registered
    ResNet, or a timm model name for a ViT. Raises ``CheckpointError`` for a missing or
    unreadable file, an unknown layout, an unknown architecture, or weights that do not
    fit the architecture.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}.")
    sha256 = sha256_file(path)
    obj = _torch_load(path)

    found = _locate(obj)
    if found is None:
        from sslinv.models.layouts_vit import VIT_LAYOUTS, find_vit

        vit = find_vit(obj)
        if vit is not None:
            return _vit_checkpoint(vit, path, sha256, arch)
        raise CheckpointError(
            f"Unrecognised checkpoint layout in {path}: no ResNet or ViT weights found. "
            f"Keys seen: {_keys_sample(obj)}. Known layouts: "
            + "; ".join((*KNOWN_LAYOUTS, *VIT_LAYOUTS)) + "."
        )
    container, prefix, tensors = found
    if container == "state_dict" and prefix in MOCO_PREFIXES:
        container = "moco"
    layout = f"{container}[{prefix}]" if prefix else container
    sd = backbone_only(tensors, prefix)

    arch_string = obj.get("arch") if isinstance(obj, Mapping) else None
    if arch is not None:
        if arch not in ARCHS:
            raise CheckpointError(
                f"{path} holds a ResNet; --arch {arch!r} is not a ResNet architecture. "
                f"Known: {', '.join(ARCHS.names())}."
            )
        arch_from = "--arch"
    elif isinstance(arch_string, str) and arch_string in ARCHS:
        arch, arch_from = arch_string, "checkpoint's arch string"
    else:
        try:
            arch, arch_from = infer_arch(sd), "tensor shapes"
        except CheckpointError as e:
            note = (
                f" The file's arch string {arch_string!r} is not a registered architecture either."
                if arch_string
                else ""
            )
            raise CheckpointError(f"{path}: {e}{note}") from None
    _check_fit(sd, arch, path, arch_from)
    check_finite(sd, path)
    return LoadedCheckpoint(arch, sd, layout, sha256, arch_from)


def _vit_checkpoint(vit, path: Path, sha256: str, arch: str | None) -> LoadedCheckpoint:
    """A ViT found by ``layouts_vit.find_vit``: its architecture checked against the tensors."""
    from sslinv.models.layouts_vit import heads_from_arch
    from sslinv.models.vit import ViTConfig, expected_shapes, timm_heads

    sd = vit.state_dict
    dim = int(sd["patch_embed.proj.weight"].shape[0])
    if arch is not None:
        heads = timm_heads(arch)
        if heads is None:
            raise CheckpointError(
                f"--arch {arch!r} is not a timm ViT model name (e.g. vit_small_patch16_224, "
                "vit_base_patch14_dinov2); see timm.list_models('vit_*')."
            )
        heads_from = f"--arch {arch}"
    else:
        heads, heads_from = heads_from_arch(vit.family, vit.arch_string, dim)
    try:
        cfg = ViTConfig.from_state_dict(sd, heads, heads_from)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if arch is not None:
        cfg = ViTConfig.from_dict({**cfg.as_dict(), "timm_name": arch})
    problems = fit_problems(sd, expected_shapes(cfg))
    if problems:
        raise CheckpointError(
            f"The ViT weights in {path} (layout {vit.layout}) do not fit a {cfg.name}. "
            f"{problems}. Check the file, or name its timm architecture with --arch."
        )
    arch_from = f"tensor shapes, heads from {cfg.heads_from}"
    check_finite(sd, path)
    return LoadedCheckpoint(cfg.name, sd, vit.layout, sha256, arch_from, "vit", cfg.as_dict())


def build_backbone(ckpt: LoadedCheckpoint) -> nn.Module:
    """The checkpoint's ResNet with its weights loaded (strict), ``fc`` = Identity, eval mode.

    A ViT checkpoint gives a timm ``VisionTransformer`` without head instead.
    """
    if ckpt.family == "vit":
        from sslinv.models.vit import ViTConfig, load_vit

        return load_vit(ViTConfig.from_dict(ckpt.config or {}), ckpt.state_dict)
    # Built on the meta device, then given the checkpoint's tensors (``assign``): no
    # time is spent on a random initialisation that the strict load overwrites
    # (ResNet-50w3 has ~200M parameters), and no meta kernels run (``to_empty`` would
    # import sympy for them, half a second).
    with torch.device("meta"):
        net = ARCHS.get(ckpt.arch)()
    net.fc = nn.Identity()
    state = dict(ckpt.state_dict)  # keys the model lacks stay, and are reported as unexpected
    for key, want in net.state_dict().items():
        have = state.get(key)
        if have is None:
            if key.endswith("num_batches_tracked"):  # absent from old checkpoints
                state[key] = torch.zeros((), dtype=want.dtype)
        elif have.dtype != want.dtype:
            state[key] = have.to(want.dtype)
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"The weights do not fit a {ckpt.arch}: {e}") from e
    return net.eval()


# ---------------------------------------------------------------------------- writing


def save_moco_checkpoint(
    path: Path | str,
    backbone_state_dict: Mapping[str, torch.Tensor],
    arch: str,
    mlp_dim: int = 128,
    epoch: int = 0,
    optimizer: Mapping[str, Any] | None = None,
    *,
    head_state_dict: Mapping[str, torch.Tensor] | None = None,
    key_state_dict: Mapping[str, torch.Tensor] | None = None,
    queue: torch.Tensor | None = None,
    queue_ptr: int = 0,
    queue_size: int = 16,
) -> Path:
    """Write the MoCo v2 training layout (atomically), as the MoCo code saves it.

    The query encoder is the backbone plus the MLP head ``fc.0`` (d -> d), ``fc.2``
    (d -> ``mlp_dim``); ``head_state_dict`` gives that head (keys ``fc.0.weight`` ...),
    else a seeded random one is written. ``key_state_dict`` (backbone + head keys) is the
    key encoder, else a copy of the query encoder (as MoCo initialises it). ``queue`` is
    ``mlp_dim x K`` (default: K = ``queue_size`` seeded random unit columns). Any
    ``fc.*`` keys in ``backbone_state_dict`` are replaced by the head.
    """
    d = ARCHS.get(arch).dims["backbone"]
    backbone = {
        k: v for k, v in backbone_state_dict.items() if k.split(".", 1)[0] in BACKBONE_ROOTS
    }
    gen = torch.Generator().manual_seed(0)  # never the global RNG
    if head_state_dict is None:
        head_state_dict = {
            "fc.0.weight": torch.randn(d, d, generator=gen) * d**-0.5,
            "fc.0.bias": torch.zeros(d),
            "fc.2.weight": torch.randn(mlp_dim, d, generator=gen) * d**-0.5,
            "fc.2.bias": torch.zeros(mlp_dim),
        }
    query = {**backbone, **head_state_dict}
    key = dict(key_state_dict) if key_state_dict is not None else query
    if queue is None:
        queue = F.normalize(torch.randn(mlp_dim, queue_size, generator=gen), dim=0)
    state = {f"module.encoder_q.{k}": v for k, v in query.items()}
    state.update({f"module.encoder_k.{k}": v for k, v in key.items()})
    state["module.queue"] = queue
    state["module.queue_ptr"] = torch.tensor([queue_ptr], dtype=torch.long)
    ckpt = {"epoch": epoch, "arch": arch, "state_dict": state, "optimizer": optimizer}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path
