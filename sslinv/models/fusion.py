"""Fused models ``a+b+c``, once for every command: spec parsing, members, ``fuse``.

- ``member_specs``: ``a+b+c`` -> ``[a, b, c]``; a registered name or an existing file
  whose name contains ``+`` is one member;
- ``load_members``: each member loaded on its own (a ``FeatureModel`` and the identity it
  has alone, so features cached per member serve every fusion that contains it), and the
  identity of the fusion (what result files and cache keys record);
- ``fuse(parts, mode)``: member features combined: ``cat`` (concatenate), ``add`` or
  ``mean``;
- ``FusedModel``: the members as one module (``fuse`` of their outputs), for commands
  that need the fused features of each batch (``synthetic``, ``realworld``);
- ``load_model``: the feature model of a spec (one member, or their ``FusedModel``).

The identity holds, per member, the sha256 of the checkpoint bytes (of the weights
themselves for random models), so a changed checkpoint is a different model and never
reuses stale statistics or features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslinv.errors import UsageError
from sslinv.models.load import check_known, load_source, resolve_member
from sslinv.models.zoo import MODELS, check_fuse, check_layer
from sslinv.paths import checkpoint_path

__all__ = ["FusedModel", "Member", "fuse", "fused_dim", "load_members", "load_model", "member_specs"]


def member_specs(spec: str, cache: Path | str) -> list[str]:
    """The members of a model spec: ``a+b+c`` -> ``[a, b, c]``; a registered name or an
    existing file whose name contains ``+`` is one member."""
    cache = Path(cache)
    if "+" not in spec or spec in MODELS or checkpoint_path(cache, spec).is_file() or Path(spec).expanduser().exists():
        return [spec]
    parts = [p.strip() for p in spec.split("+")]
    if any(not p for p in parts):
        raise UsageError(f"Model spec {spec!r} has an empty member; write e.g. 'default+ventral'.")
    return parts


def fused_dim(dims: Sequence[int], mode: str) -> int:
    """The feature dimension of a fusion; ``add``/``mean`` need equal member dimensions."""
    if len(dims) == 1 or mode == "cat":
        return int(sum(dims))
    if len(set(dims)) != 1:
        raise UsageError(
            f"Cannot fuse with {mode!r}: the members' feature dimensions differ "
            f"({', '.join(map(str, dims))}). Use --fuse cat, or fuse models whose "
            "features have the same dimension."
        )
    return int(dims[0])


def fuse(parts: Sequence[torch.Tensor], mode: str) -> torch.Tensor:
    """Combine member features (rows aligned): concatenate, add or average."""
    if len(parts) == 1:
        return parts[0]
    if mode == "cat":
        return torch.cat(list(parts), dim=1)
    total = torch.stack(list(parts), dim=0).sum(dim=0)
    return total / len(parts) if mode == "mean" else total


class FusedModel(nn.Module):
    """Several feature models as one: ``fuse`` of their outputs."""

    def __init__(self, members: Sequence[nn.Module], mode: str = "cat") -> None:
        super().__init__()
        check_fuse(mode)
        if not members:
            raise UsageError("A fused model needs at least one member.")
        self.members = nn.ModuleList(members)
        self.mode = mode
        self.dim = fused_dim([int(m.dim) for m in members], mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fuse([m(x) for m in self.members], self.mode)  # each member normalises its own input

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, dim={self.dim}"


@dataclass
class Member:
    """One member of a spec: its spec, its feature model (eval mode, CPU) and the
    identity it has alone (as ``load_model(spec)`` gives it)."""

    spec: str
    model: nn.Module  # a FeatureModel (ResNet) or a ViT feature model
    identity: dict[str, Any]


def load_members(
    spec: str, cache: Path | str, layer: str = "backbone", fuse: str = "cat", arch: str | None = None
) -> tuple[list[Member], dict[str, Any]]:
    """Each member of ``spec`` loaded on its own, and the JSON-able identity of the fusion.

    ``spec`` is a registered name, a path to a checkpoint file, ``timm:<name>[.<tag>]``
    (a timm model from the Hugging Face hub), or ``a+b+c`` (members fused with ``fuse``:
    ``cat``, ``add`` or ``mean``). ``layer`` is ``backbone``, ``layer1``..``layer4``
    (ResNets) or ``patch-mean``, ``blocks.N`` (ViTs); each member's feature model
    normalises its own input. ``arch`` (``--arch``) names the architecture of the
    checkpoint files given (a timm model name for a ViT). Every name is checked before
    anything loads, so a typo in the last member fails at once.
    """
    check_layer(layer)
    check_fuse(fuse)
    cache = Path(cache)
    specs = member_specs(spec, cache)
    for s in specs:
        check_known(s, cache)
    sources = [resolve_member(s, cache) for s in specs]
    members = []
    for s, src in zip(specs, sources):
        loaded = load_source(src, cache, arch)
        feat = loaded.features(layer).to("cpu").eval()
        loaded.info["dim"] = feat.dim
        members.append(Member(s, feat, {"spec": s, "layer": layer, "dim": feat.dim, "members": [loaded.info]}))
    dim = fused_dim([m.model.dim for m in members], fuse)
    identity: dict[str, Any] = {"spec": spec, "layer": layer}
    if len(members) > 1:
        identity["fuse"] = fuse
    identity["dim"] = dim
    identity["members"] = [info for m in members for info in m.identity["members"]]
    return members, identity


def load_model(
    spec: str, cache: Path | str, layer: str = "backbone", fuse: str = "cat", arch: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The feature model for ``spec`` (eval mode, CPU) and its JSON-able identity."""
    members, identity = load_members(spec, cache, layer, fuse, arch)
    model = members[0].model if len(members) == 1 else FusedModel([m.model for m in members], fuse)
    return model.to("cpu").eval(), identity
