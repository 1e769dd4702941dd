"""One model by name or path -> its backbone and identity entry (fusions: ``models.fusion``).

The identity entry goes into result files and cache keys. It holds the sha256 of the
checkpoint bytes (of the weights themselves for random models), so a changed checkpoint
is a different model and never reuses stale statistics.

Resolution of one member, first match wins: a registered model name; a file
``<cache>/checkpoints/<name>.pth.tar`` (models trained by the user); a path to a file.

Zoo models (kind ``download``) go through :func:`fetch_weights`: downloaded once with
``sslinv.fetch.verified.fetch_file`` (resumable, retried, checked against the published hash or the
sha256 recorded at the first download; ``SSLINV_MIRROR`` applies), converted once to a
backbone-only state dict ``<cache>/weights/<name>.backbone.pth`` whose JSON sidecar
records the source URL, its sha256 and layout, and loaded from there afterwards. The
identity's ``sha256`` is that of the downloaded file, as published.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslinv.cache import atomic_path, lock, read_json, sidecar, write_json
from sslinv.errors import CheckpointError, UnknownNameError, UsageError
from sslinv.models.checkpoints import (
    LoadedCheckpoint,
    _check_fit,
    _torch_load,
    build_backbone,
    check_finite,
    load_checkpoint,
)
from sslinv.models.preprocess import Preprocessing
from sslinv.models.resnet import ARCHS
from sslinv.models.taps import FeatureModel
from sslinv.models.zoo import (
    CHECKPOINT_SUFFIX,
    HUB_PREFIX,
    MODELS,
    PAPER_MODEL_STANDINS,
    UNSUPPORTED,
    ModelRecord,
    checkpoint_names,
    model_names,
)
from sslinv.paths import checkpoint_path, converted_path
from sslinv.registry import did_you_mean

__all__ = [
    "check_known",
    "converted_path",
    "fetch_weights",
    "load_backbone",
    "load_source",
    "random_backbone",
    "resolve_member",
    "state_dict_sha256",
]


@dataclass(frozen=True)
class _Member:
    backbone: nn.Module
    info: dict[str, Any]
    preprocessing: Preprocessing | None = None  # None: a ResNet (ImageNet constants)

    def features(self, layer: str) -> nn.Module:
        """The feature model of ``layer``; it normalises its own input."""
        if self.preprocessing is None:
            return FeatureModel(self.backbone, layer)
        from sslinv.models.vit import feature_model

        return feature_model(self.backbone, layer, self.preprocessing)


@dataclass(frozen=True)
class _Source:
    """Where one member's weights come from (resolved before anything is loaded)."""

    name: str
    record: ModelRecord | None = None
    path: Path | None = None
    hub: bool = False  # ``timm:<name>``


def resolve_member(name: str, cache: Path) -> _Source:
    """Which model or file ``name`` means; raises for unknown names and missing files."""
    if name.startswith(HUB_PREFIX):
        from sslinv.models.hub import check_hub_name

        check_hub_name(name)
        return _Source(name, hub=True)
    if name in MODELS:
        record = MODELS.get(name)
        if record.kind != "checkpoint":
            return _Source(name, record)
        path = checkpoint_path(cache, name)
        if not path.is_file():
            standin = PAPER_MODEL_STANDINS.get(name)
            raise CheckpointError(
                f"Checkpoint for model {name!r} not found at {path}. "
                + (f"{standin} Or copy" if standin else "Copy")
                + f" the checkpoint file there, or train it: sslinv pretrain --model {name}."
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


def check_known(name: str, cache: Path) -> None:
    """Raise UnknownNameError unless ``name`` is a model name, a named checkpoint or a path."""
    if name in MODELS or checkpoint_path(cache, name).is_file() or Path(name).expanduser().exists():
        return
    if name.startswith(HUB_PREFIX):
        from sslinv.models.hub import check_hub_name

        check_hub_name(name)
        return
    if name in UNSUPPORTED:
        raise CheckpointError(f"Model {name!r} is not supported: {UNSUPPORTED[name]}")
    raise _unknown(name, cache)


def _unknown(name: str, cache: Path) -> UnknownNameError | CheckpointError:
    if "/" in name or "\\" in name or name.endswith((".pth", ".pt", ".tar", ".ckpt", ".bin")):
        return CheckpointError(f"No such checkpoint file: {Path(name).expanduser()}. Check the path.")
    known = model_names() + [n for n in checkpoint_names(cache) if n not in MODELS]
    return UnknownNameError(
        f"Unknown model {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}. "
        f"A path to a checkpoint file is also accepted, and {HUB_PREFIX}<name> for a timm model."
    )


def load_backbone(name: str, cache: Path) -> _Member:
    """One member: a ResNet with fc = Identity (eval mode) and its identity entry."""
    return load_source(resolve_member(name, Path(cache)), Path(cache))


def load_source(src: _Source, cache: Path, arch: str | None = None) -> _Member:
    """Load a resolved member (``resolve_member``): its backbone and identity entry.

    ``arch`` (``--arch``) names the architecture of a checkpoint file (a timm model name
    for a ViT); ``timm:<name>`` members come from the Hugging Face hub."""
    if src.hub:
        from sslinv.models.hub import load_hub_model

        net, info, prep = load_hub_model(src.name)
        return _Member(net, info, prep)
    if src.record is not None and src.record.kind == "random":
        return _random_member(src.record)
    if src.record is not None and src.record.kind == "download":
        return _download_member(src.record, cache)
    assert src.path is not None
    return _file_member(src.name, src.path, src.record, arch=arch)


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
    name: str, path: Path, record: ModelRecord | None = None, source: str | None = None,
    arch: str | None = None,
) -> _Member:
    ckpt = load_checkpoint(path, arch)
    if ckpt.family != "resnet":
        return _vit_member(ckpt, {"name": name, "source": source or str(path)})
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
    info = fetch_weights(record.name, cache)
    try:
        ckpt = _load_converted(Path(info["path"]))
    except CheckpointError:  # a damaged converted file: convert again from the download
        converted_path(cache, record.name).unlink(missing_ok=True)
        info = fetch_weights(record.name, cache)
        ckpt = _load_converted(Path(info["path"]))
    if ckpt.arch != record.arch:
        warnings.warn(
            f"{info['file']['path']} holds a {ckpt.arch}, but the published {record.name!r} model "
            f"is a {record.arch}; using the file as it is.",
            stacklevel=3,
        )
    if ckpt.family != "resnet":
        return _vit_member(ckpt, {"name": record.name, "source": info["file"]["source"]})
    return _Member(build_backbone(ckpt), {
        "name": record.name,
        "arch": ckpt.arch,
        "source": info["file"]["source"],
        "sha256": info["file"]["sha256"],
        "layout": ckpt.layout,
    })


def _vit_member(ckpt: LoadedCheckpoint, info: dict[str, Any]) -> _Member:
    """A ViT checkpoint: timm backbone, ImageNet normalisation, its native input size."""
    from sslinv.models.preprocess import IMAGENET
    from sslinv.models.vit import ViTConfig

    cfg = ViTConfig.from_dict(ckpt.config or {})
    prep = Preprocessing(IMAGENET.mean, IMAGENET.std, cfg.img_size, "bicubic")
    return _Member(build_backbone(ckpt), {
        **info,
        "arch": ckpt.arch,
        "family": "vit",
        "sha256": ckpt.sha256,
        "layout": ckpt.layout,
        "architecture": cfg.as_dict(),
        "preprocessing": prep.as_dict(),
    }, prep)


# ------------------------------------------------------------------------- model zoo

CONVERTED_FORMAT = 1


def _zoo_record(name: str) -> ModelRecord:
    if name in UNSUPPORTED:
        raise CheckpointError(f"Model {name!r} is not supported: {UNSUPPORTED[name]}")
    record = MODELS.get(name)
    if record.kind != "download":
        downloadable = [n for n, r in MODELS.items() if r.kind == "download"]
        raise UsageError(
            f"Model {name!r} has nothing to download ({record.kind} model). Downloadable "
            f"models: {', '.join(downloadable)}."
        )
    return record


def _fresh_conversion(converted: Path, raw: Path) -> dict[str, Any] | None:
    """The sidecar of an up-to-date conversion (the download unchanged since), else None."""
    side = sidecar(converted)
    if not (converted.is_file() and side.is_file()):
        return None
    try:
        meta = read_json(side)
    except (OSError, ValueError):
        return None
    if meta.get("format") != CONVERTED_FORMAT:
        return None
    if raw.is_file():
        st = raw.stat()
        if (meta.get("source_size"), meta.get("source_mtime_ns")) != (st.st_size, st.st_mtime_ns):
            return None
    return meta


def fetch_weights(
    name: str,
    cache: Path | str,
    *,
    reporter=None,
    urls: tuple[str, ...] | None = None,
    expected: dict[str, str] | None = None,
    mirror: str | None = None,
    trust: bool = False,
    force: bool = False,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> dict[str, Any]:
    """Download (if needed), verify and convert a zoo model once; describe the result.

    The download goes to ``<cache>/weights/<filename>`` through
    :func:`sslinv.fetch.verified.fetch_file` (resumable, retried, checked against the
    published md5/sha256 prefix, or the sha256 recorded at the first download); the
    backbone is saved as ``<cache>/weights/<name>.backbone.pth`` with a JSON sidecar
    holding the source URL, its sha256 and layout. A file placed there by hand is used as
    it is (a warning says when it differs from the published hash). ``urls``/``expected``
    override the record's (a manifest), ``mirror`` rewrites the URLs (default:
    ``SSLINV_MIRROR``), ``trust`` skips the checksum and records the new sha256.
    """
    from sslinv import paths
    from sslinv.errors import ChecksumError, FetchError
    from sslinv.fetch.manifest import mirror_url
    from sslinv.fetch.verified import fetch_file

    record = _zoo_record(name)
    cache = Path(cache)
    assert record.url and record.filename
    raw = paths.zoo_file_path(cache, record.filename)
    converted = converted_path(cache, name)

    with lock(converted):
        if force:
            raw.unlink(missing_ok=True)
            converted.unlink(missing_ok=True)
        meta = _fresh_conversion(converted, raw)
        if meta is not None:
            return _weights_info(converted, meta, "cached", raw)

        # -- download (or the file already there) ----------------------------------------
        sources = tuple(urls) if urls else (record.url,)
        base = None if urls else (mirror if mirror is not None else paths.mirror())
        try:
            got = fetch_file(
                sources, raw, key=f"model/{name}/{record.filename}", cache=cache,
                what=f"{name}: {record.filename}", given=expected, trust=trust, published=record.checksums,
                mirror=base, reporter=reporter, retries=retries, timeout=timeout, backoff=backoff,
            )
        except ChecksumError:
            raise
        except FetchError as e:
            why = "; ".join(getattr(e, "failures", None) or [str(e)])
            first = mirror_url(sources[0], base) if base else sources[0]
            raise FetchError(  # exit 6, as any failed download: a batch script may retry it
                f"Downloading the {name!r} weights from {first} failed ({why}). Check the "
                "network connection and retry (a partial download is resumed), point "
                f"SSLINV_MIRROR at a copy, or download the file yourself and place it at {raw}."
            ) from e
        check = got.check
        if got.mismatch:
            algo, exp, got_hex = got.mismatch[0]
            warnings.warn(
                f"{raw} has {algo} {got_hex[:12]}..., not the published {exp}...; using it "
                f"anyway. Delete it to download {record.url} again.",
                stacklevel=3,
            )
            check = f"{algo} differs from the published one"

        # -- convert ----------------------------------------------------------------------
        ckpt = load_checkpoint(raw)
        st = raw.stat()
        meta = {
            "format": CONVERTED_FORMAT,
            "name": name,
            "arch": ckpt.arch,
            "layout": ckpt.layout,
            "source_url": record.url if not urls else urls[0],
            "source_file": str(raw),
            "source_sha256": ckpt.sha256,
            "source_size": st.st_size,
            "source_mtime_ns": st.st_mtime_ns,
            "check": check,
        }
        with atomic_path(converted) as tmp:
            torch.save({"arch": ckpt.arch, "state_dict": ckpt.state_dict, "layout": ckpt.layout,
                        "source_sha256": ckpt.sha256,
                        **({"family": ckpt.family, "config": ckpt.config} if ckpt.family != "resnet" else {})},
                       tmp)
        write_json(sidecar(converted), meta)
        return _weights_info(converted, meta, "downloaded" if got.downloaded else "converted", raw)


def _weights_info(converted: Path, meta: dict[str, Any], status: str, raw: Path) -> dict[str, Any]:
    return {
        "status": status,
        "path": str(converted),
        "file": {
            "file": Path(meta.get("source_file", raw)).name,
            "path": str(raw),
            "source": meta["source_url"],
            "sha256": meta["source_sha256"],
            "size": meta.get("source_size"),
            "check": meta.get("check", ""),
        },
        "arch": meta["arch"],
        "layout": meta["layout"],
    }


def _load_converted(path: Path) -> LoadedCheckpoint:
    """A converted zoo file: ``{'arch', 'state_dict', 'layout', 'source_sha256'}``."""
    obj = _torch_load(path)
    if isinstance(obj, dict) and obj.get("family") == "vit" and isinstance(obj.get("config"), dict):
        from sslinv.models.vit import ViTConfig, expected_shapes

        sd = obj.get("state_dict")
        expected = expected_shapes(ViTConfig.from_dict(obj["config"])) if isinstance(sd, dict) else {}
        if not isinstance(sd, dict) or {k: tuple(v.shape) for k, v in sd.items()} != expected:
            raise CheckpointError(f"{path} is not a converted sslinv zoo file; delete it to convert again.")
        return LoadedCheckpoint(str(obj["arch"]), sd, str(obj.get("layout", "dino")),
                                str(obj.get("source_sha256", "")), "converted file", "vit", obj["config"])
    if not (isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and obj.get("arch") in ARCHS):
        raise CheckpointError(f"{path} is not a converted sslinv zoo file; delete it to convert again.")
    _check_fit(obj["state_dict"], obj["arch"], path, "converted file")
    check_finite(obj["state_dict"], path)
    return LoadedCheckpoint(obj["arch"], obj["state_dict"], str(obj.get("layout", "torchvision")),
                            str(obj.get("source_sha256", "")), "checkpoint's arch string")
