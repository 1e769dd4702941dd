"""``load_model``: a model spec (name, checkpoint path, or ``a+b+c``) -> features + identity.

The identity dict goes into result files and cache keys. It holds, per member, the
sha256 of the checkpoint bytes (of the weights themselves for random models), so a
changed checkpoint is a different model and never reuses stale statistics.

Resolution of one member, first match wins: a registered model name; a file
``<cache>/checkpoints/<name>.pth.tar`` (models trained by the user); a path to a file.
A spec containing ``+`` that is not itself a name or an existing path is a fusion.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslinv.cache import atomic_path, lock
from sslinv.errors import CheckpointError, UnknownNameError, UsageError
from sslinv.models.checkpoints import build_backbone, load_checkpoint
from sslinv.models.features import FeatureModel, FusedModel
from sslinv.models.resnet import ARCHS
from sslinv.models.zoo import (
    CHECKPOINT_SUFFIX,
    MODELS,
    ModelRecord,
    check_fuse,
    check_layer,
    checkpoint_names,
    model_names,
)
from sslinv.paths import checkpoint_path, weights_dir
from sslinv.registry import did_you_mean

__all__ = ["load_model", "load_backbone", "random_backbone", "resolve_member", "state_dict_sha256"]


@dataclass(frozen=True)
class _Member:
    backbone: nn.Module
    info: dict[str, Any]


def load_model(
    spec: str, cache: Path | str, layer: str = "backbone", fuse: str = "cat"
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the feature model for ``spec`` (eval mode, CPU) and its JSON-able identity.

    ``spec`` is a registered name, a path to a checkpoint file, or ``a+b+c`` (members
    fused with ``fuse``: ``cat``, ``add`` or ``mean``). ``layer`` is ``backbone`` or
    ``layer1``..``layer4``.
    """
    check_layer(layer)
    check_fuse(fuse)
    cache = Path(cache)
    parts = [spec] if _is_single(spec, cache) else spec.split("+")
    if any(not p.strip() for p in parts):
        raise UsageError(f"Model spec {spec!r} has an empty member; write e.g. 'default+ventral'.")

    # Check every name first, so a typo in the last member fails before anything loads.
    for part in parts:
        _check_known(part.strip(), cache)
    sources = [resolve_member(p.strip(), cache) for p in parts]
    members = [_load(src, cache) for src in sources]
    feats = [FeatureModel(m.backbone, layer) for m in members]
    for feat, m in zip(feats, members):
        m.info["dim"] = feat.dim
    fused = len(feats) > 1
    model: nn.Module = FusedModel(feats, fuse) if fused else feats[0]
    model = model.to("cpu").eval()

    identity: dict[str, Any] = {"spec": spec, "layer": layer}
    if fused:
        identity["fuse"] = fuse
    identity["dim"] = int(model.dim)
    identity["members"] = [m.info for m in members]
    return model, identity


def _is_single(spec: str, cache: Path) -> bool:
    return (
        "+" not in spec
        or spec in MODELS
        or checkpoint_path(cache, spec).is_file()
        or Path(spec).expanduser().exists()
    )


@dataclass(frozen=True)
class _Source:
    """Where one member's weights come from (resolved before anything is loaded)."""

    name: str
    record: ModelRecord | None = None
    path: Path | None = None


def resolve_member(name: str, cache: Path) -> _Source:
    """Which model or file ``name`` means; raises for unknown names and missing files."""
    if name in MODELS:
        record = MODELS.get(name)
        if record.kind != "checkpoint":
            return _Source(name, record)
        path = checkpoint_path(cache, name)
        if not path.is_file():
            raise CheckpointError(
                f"Checkpoint for model {name!r} not found at {path}. Copy the checkpoint "
                f"file there, or train it with: sslinv pretrain --model {name}"
            )
        return _Source(name, record, path)

    named = checkpoint_path(cache, name)
    if named.is_file():
        return _Source(name, None, named)
    path = Path(name).expanduser()
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the path of a checkpoint file.")
    if path.is_file():
        return _Source(_display_name(path), None, path.resolve())

    raise _unknown(name, cache)


def _check_known(name: str, cache: Path) -> None:
    """Raise UnknownNameError unless ``name`` is a model name, a named checkpoint or a path."""
    if name in MODELS or checkpoint_path(cache, name).is_file() or Path(name).expanduser().exists():
        return
    raise _unknown(name, cache)


def _unknown(name: str, cache: Path) -> UnknownNameError:
    known = model_names() + [n for n in checkpoint_names(cache) if n not in MODELS]
    return UnknownNameError(
        f"Unknown model {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}. "
        "A path to a checkpoint file is also accepted."
    )


def load_backbone(name: str, cache: Path) -> _Member:
    """One member: a ResNet with fc = Identity (eval mode) and its identity entry."""
    return _load(resolve_member(name, Path(cache)), Path(cache))


def _load(src: _Source, cache: Path) -> _Member:
    if src.record is not None and src.record.kind == "random":
        return _random_member(src.record)
    if src.record is not None and src.record.kind == "download":
        return _download_member(src.record, cache)
    assert src.path is not None
    return _file_member(src.name, src.path, src.record)


def _display_name(path: Path) -> str:
    name = path.name
    for suffix in (CHECKPOINT_SUFFIX, ".pth", ".pt", ".tar", ".ckpt"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


# ------------------------------------------------------------------------ random models


def random_backbone(arch: str, seed: int) -> nn.Module:
    """A seeded random initialisation of ``arch``; the global RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ARCHS.get(arch)()
    net.fc = nn.Identity()
    return net.eval()


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and bytes (order independent)."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _random_member(record: ModelRecord) -> _Member:
    net = random_backbone(record.arch, record.seed or 0)
    return _Member(net, {
        "name": record.name,
        "arch": record.arch,
        "source": f"random-init seed {record.seed or 0}",
        "sha256": state_dict_sha256(net.state_dict()),
        "layout": "random-init",
    })


# ----------------------------------------------------------------------- checkpoint files


def _file_member(
    name: str, path: Path, record: ModelRecord | None = None, source: str | None = None
) -> _Member:
    ckpt = load_checkpoint(path)
    if record is not None and ckpt.arch != record.arch:
        warnings.warn(
            f"{path} holds a {ckpt.arch}, but the paper's {record.name!r} model is a "
            f"{record.arch}; using the file as it is.",
            stacklevel=3,
        )
    return _Member(build_backbone(ckpt), {
        "name": name,
        "arch": ckpt.arch,
        "source": source or str(path),
        "sha256": ckpt.sha256,
        "layout": ckpt.layout,
    })


def _download_member(record: ModelRecord, cache: Path) -> _Member:
    assert record.url and record.filename
    dest = weights_dir(cache) / record.filename
    if not dest.is_file():
        _download(record, dest)
    member = _file_member(record.name, dest, record, source=record.url)
    sha = member.info["sha256"]
    expected = record.sha256 or record.hash_prefix
    if expected and not sha.startswith(expected):
        warnings.warn(
            f"{dest} has sha256 {sha[:12]}..., not the published {expected}...; using it "
            f"anyway. Delete it to download {record.url} again.",
            stacklevel=2,
        )
    return member


def _download(record: ModelRecord, dest: Path) -> None:
    import torch.hub

    try:
        with lock(dest):  # a second process waits, then finds the file
            if dest.is_file():
                return
            with atomic_path(dest) as tmp:
                torch.hub.download_url_to_file(
                    record.url, str(tmp), hash_prefix=record.hash_prefix, progress=True
                )
    except Exception as e:
        raise CheckpointError(
            f"Downloading the {record.name!r} weights from {record.url} failed "
            f"({type(e).__name__}: {e}). Check the network connection and retry, or "
            f"download the file yourself and place it at {dest}."
        ) from e
