"""ViT checkpoint layouts: find the backbone in a published file, by keys and shapes only.

Layouts recognised (facts from the authors' saving and loading code: DINO, DINOv2, MAE,
MoCo v3, iBOT, DeiT; see docs/models.md). ``L`` marks the backbone keys ``cls_token``,
``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``:

- ``dino``: a plain state dict ``L`` (DINO backbone files; timm-keyed files too);
- ``dinov2``: ``L`` with layer scale ``blocks.N.ls1.gamma`` and ``mask_token``, optional
  ``register_tokens`` (1 x 4 x D, no position embedding);
- ``mae``: ``{'model': L}`` (MAE encoders; the ``_full`` files add ``mask_token`` and
  ``decoder_*``);
- ``deit``: ``{'model': L + head.*}`` (DeiT and other supervised releases);
- ``mocov3``: ``{'arch', 'state_dict': {'module.base_encoder.' L + head.*,
  'module.momentum_encoder.*', 'module.predictor.*'}}``;
- ``teacher[backbone.]`` / ``student[module.backbone.]``: DINO and iBOT training
  checkpoints ``{'teacher': {'backbone.' L, 'head.*'}, 'student': ..., 'args', ...}``
  (the teacher is taken, as DINO's evaluation does);
- ``state_dict[...]``, ``model[...]``: other wrappers and prefixes of ``L`` (iBOT backbone
  files are ``{'state_dict': L + head.*}``).

Training-only keys are dropped by rule (``DROPPED``); any other key left over is an
error, as for ResNets. DINOv2's raw keys are converted to timm's: ``register_tokens`` ->
``reg_token`` (with the class token's position folded into ``cls_token`` and
``pos_embed`` without it, as timm's ``_convert_dinov2`` does), SwiGLU ``mlp.w12``/``w3``
-> ``mlp.fc1``/``fc2``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from sslinv.errors import CheckpointError
from sslinv.models.checkpoints import _tensor_items, first_prefix

__all__ = ["DROPPED", "VIT_LAYOUTS", "ViTWeights", "find_vit", "heads_from_arch"]

#: Containers tried in this order (the DINO/iBOT teacher before the student).
CONTAINERS = ("", "teacher", "model", "state_dict", "student", "model_ema")
#: Key prefixes of the backbone, tried in this order.
PREFIXES = (
    "module.base_encoder.", "base_encoder.", "module.backbone.", "backbone.",
    "module.encoder.", "encoder.", "module.model.", "module.", "model.", "",
)

#: Training-only keys, inside the backbone prefix (after it is stripped) or outside it.
DROPPED_INSIDE = ("head.", "mask_token", "masked_embed", "decoder_", "pre_logits.")
DROPPED_OUTSIDE = (
    "module.momentum_encoder.", "momentum_encoder.", "module.predictor.", "predictor.",
    "module.head.", "head.",
)
DROPPED = DROPPED_INSIDE + DROPPED_OUTSIDE

VIT_LAYOUTS = (
    (
        "ViT state dict {'cls_token', 'pos_embed', 'patch_embed.proj.weight', 'blocks.0.norm1.weight', "
        "..., 'norm.weight'} (DINO; DINOv2 with 'blocks.N.ls1.gamma', 'mask_token', optional "
        "'register_tokens')"
    ),
    "{'model': ViT state dict} (MAE; DeiT with 'head.*')",
    (
        "MoCo v3 {'arch', 'state_dict': {'module.base_encoder.cls_token', ..., "
        "'module.momentum_encoder.*', 'module.predictor.*'}}"
    ),
    "DINO/iBOT training checkpoint {'teacher': {'backbone.cls_token', ..., 'head.*'}, 'student': ...}",
)

#: Heads by (layout family, arch string): the tensors cannot tell. MoCo v3's vits.py
#: gives vit_small 12 heads of 32 (DINO's and DeiT's have 6 of 64).
ARCH_HEADS = {
    "mocov3": {"vit_small": 12, "vit_base": 12, "vit_conv_small": 12, "vit_conv_base": 12},
    "dino": {"vit_tiny": 3, "vit_small": 6, "vit_base": 12, "vit_large": 16},
}


@dataclass(frozen=True)
class ViTWeights:
    """The backbone of a ViT checkpoint: timm keys, the layout's name, its arch string."""

    state_dict: dict[str, torch.Tensor]
    layout: str
    family: str  # dino | dinov2 | mae | deit | mocov3 | training | other
    arch_string: str | None
    dropped: tuple[str, ...]


def _prefix(sd: Mapping[str, Any]) -> str | None:
    return first_prefix(sd, PREFIXES, ("cls_token", "patch_embed.proj.weight"))


def _arch_string(obj: Mapping) -> str | None:
    arch = obj.get("arch")
    if not isinstance(arch, str):
        arch = getattr(obj.get("args"), "arch", None)  # DINO/iBOT: an argparse.Namespace
    return arch if isinstance(arch, str) else None


def find_vit(obj: Any) -> ViTWeights | None:
    """The ViT backbone in a loaded checkpoint, or None when there is none.

    Raises ``CheckpointError`` when a backbone is found but keys are left over that no
    rule drops.
    """
    if not isinstance(obj, Mapping):
        return None
    for container in CONTAINERS:
        inner = obj if container == "" else obj.get(container)
        if not isinstance(inner, Mapping):
            continue
        tensors = _tensor_items(inner)
        prefix = _prefix(tensors)
        if prefix is None:
            continue
        return _extract(obj, container, prefix, tensors)
    return None


def _extract(obj: Mapping, container: str, prefix: str, tensors: dict[str, torch.Tensor]) -> ViTWeights:
    sd: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    left: list[str] = []
    for key, value in tensors.items():
        if key.startswith(prefix):
            rest = key[len(prefix):]
            if rest.startswith(DROPPED_INSIDE):
                dropped.append(key)
            else:
                sd[rest] = value
        elif key.startswith(DROPPED_OUTSIDE):
            dropped.append(key)
        else:
            left.append(key)
    if left:
        more = f" ... ({len(left)} in all)" if len(left) > 8 else ""
        raise CheckpointError(
            f"ViT checkpoint (backbone under {container or 'the top level'!r}"
            f"{f', prefix {prefix!r}' if prefix else ''}) has keys no rule accounts for: "
            f"{', '.join(repr(k) for k in left[:8])}{more}. Only training-only keys are dropped "
            f"({', '.join(DROPPED)}); pass a file holding one backbone."
        )
    has_head = any(k[len(prefix):].startswith("head.") for k in dropped if k.startswith(prefix))
    dinov2 = any(k.endswith("ls1.gamma") for k in sd) or "register_tokens" in sd
    sd = to_timm_keys(sd)
    if prefix in ("module.base_encoder.", "base_encoder."):
        family, layout = "mocov3", f"mocov3[{prefix}]"
    elif container in ("teacher", "student"):
        family, layout = "dino", f"{container}[{prefix}]"
    elif container == "model" and not prefix:
        family, layout = ("deit" if has_head else "mae"), ("deit" if has_head else "mae")
    elif container == "" and not prefix:
        family = layout = "dinov2" if dinov2 else "dino"
    else:
        family = "dinov2" if dinov2 else "other"
        layout = f"{container or 'vit'}[{prefix}]" if prefix else container
    return ViTWeights(sd, layout, family, _arch_string(obj), tuple(dropped))


def to_timm_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DINOv2's raw keys as timm names them (registers, SwiGLU); others unchanged."""
    out = {k.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2."): v for k, v in sd.items()}
    reg = out.pop("register_tokens", None)
    if reg is not None:
        # DINOv2 gives registers no position; timm runs such models with no_embed_class:
        # the class token's position is added to the class token once, here.
        pos = out["pos_embed"]
        out["reg_token"] = reg
        out["cls_token"] = out["cls_token"] + pos[:, :1]
        out["pos_embed"] = pos[:, 1:]
    return out


def heads_from_arch(family: str, arch: str | None, dim: int) -> tuple[int | None, str | None]:
    """Heads from a checkpoint's arch string, where the layout's code defines it."""
    if not arch:
        return None, None
    heads = ARCH_HEADS.get(family, {}).get(arch)
    if heads is None and family in ("dinov2", "other", "mae", "deit"):
        heads = ARCH_HEADS["dino"].get(arch)
    if heads is not None and dim % heads == 0:
        return heads, f"the checkpoint's arch string {arch!r}"
    from sslinv.models.vit import timm_heads

    try:
        heads = timm_heads(arch)
    except Exception:  # noqa: BLE001 - an arch string timm cannot build says nothing
        heads = None
    if heads is not None and dim % heads == 0:
        return heads, f"the checkpoint's arch string {arch!r} (a timm model)"
    return None, None
