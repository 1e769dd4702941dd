"""``--model timm:<name>[.<tag>]``: timm models with their weights from the Hugging Face hub.

The weights file is fetched with ``huggingface_hub.hf_hub_download``, so its cache
(``HF_HOME`` / ``HF_HUB_CACHE``), offline switch (``HF_HUB_OFFLINE=1``) and mirror
(``HF_ENDPOINT``) apply as they do for timm itself. ``model.safetensors`` is preferred and
``pytorch_model.bin`` is the fallback (as timm does); the file's sha256 goes into the
model identity, so other weights under the same name are a different model. The model is
then built by timm from that file (``pretrained_cfg_overlay=dict(file=...)``, timm's own
key conversion, ``weights_only`` loading), without a classifier, and carries the mean, std
and input size of its ``pretrained_cfg`` (CLIP's differ from ImageNet's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from sslinv.errors import CheckpointError, UnknownNameError
from sslinv.models.preprocess import Preprocessing
from sslinv.models.zoo import HUB_PREFIX

__all__ = ["WEIGHT_FILES", "check_hub_name", "hub_weights", "load_hub_model"]

#: Weight files of a timm hub repository, in the order timm tries them.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _pretrained_cfg(spec: str):
    import timm
    from timm.models import get_pretrained_cfg

    name = spec[len(HUB_PREFIX):]
    if not name:
        raise UnknownNameError(f"{spec!r} names no model; write e.g. timm:vit_small_patch14_dinov2.lvd142m.")
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        from sslinv.registry import did_you_mean

        known = timm.list_models(pretrained=True)
        raise UnknownNameError(
            f"Unknown timm model {name!r}.{did_you_mean(name, known)} List them with "
            "python -c \"import timm; print(timm.list_models('vit_*', pretrained=True))\"."
        )
    try:
        cfg = get_pretrained_cfg(name)  # no tag: timm's default tag for the architecture
    except RuntimeError:  # an unknown tag
        cfg = None
    if cfg is None or not getattr(cfg, "hf_hub_id", None):
        tags = [n for n in timm.list_models(arch, pretrained=True)]
        raise UnknownNameError(
            f"timm model {name!r} has no weights on the Hugging Face hub. "
            + (f"Pretrained tags: {', '.join(tags)}." if tags else "It has no pretrained weights.")
        )
    return name, arch, cfg


def check_hub_name(spec: str) -> None:
    """Raise ``UnknownNameError`` unless ``timm:<name>`` is a timm model with hub weights."""
    _pretrained_cfg(spec)


def hub_weights(repo: str, revision: str | None = None) -> Path:
    """The weights file of hub repository ``repo``, from the cache or downloaded."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    failures = []
    for filename in WEIGHT_FILES:
        try:
            return Path(hf_hub_download(repo, filename, revision=revision))
        except EntryNotFoundError:  # the repository has no such file: try the next
            continue
        except LocalEntryNotFoundError as e:  # offline, or the hub unreachable
            failures.append((filename, e))
    offline = constants.HF_HUB_OFFLINE
    why = "HF_HUB_OFFLINE is set" if offline else "the hub could not be reached"
    raise CheckpointError(
        f"The weights of {repo} are needed ({repo}/{WEIGHT_FILES[0]}, or {WEIGHT_FILES[1]}) and "
        f"are not in the Hugging Face cache {constants.HF_HUB_CACHE} ({why}). Download them once "
        f"online (python -c \"import huggingface_hub as h; h.hf_hub_download('{repo}', "
        f"'{WEIGHT_FILES[0]}')\"), or set HF_ENDPOINT to a mirror or HF_HOME to a cache holding them."
    ) from (failures[0][1] if failures else None)


def load_hub_model(spec: str) -> tuple[nn.Module, dict[str, Any], Preprocessing]:
    """timm model ``timm:<name>`` without classifier (eval mode), its identity, its preprocessing."""
    import timm

    from sslinv.cache import sha256_file

    name, _, cfg = _pretrained_cfg(spec)
    path = hub_weights(cfg.hf_hub_id, getattr(cfg, "hf_hub_revision", None))
    kwargs: dict[str, Any] = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}, "num_classes": 0}
    try:
        try:
            # ViTs: position embeddings follow the input size (--crop-size).
            net = timm.create_model(name, dynamic_img_size=True, **kwargs)
        except TypeError:  # not a ViT: no such argument
            net = timm.create_model(name, **kwargs)
    except (RuntimeError, OSError, ValueError) as e:  # a damaged or foreign weights file
        reason = (str(e).strip().splitlines() or [""])[0][:300]
        raise CheckpointError(
            f"timm could not load {path} into {name} ({type(e).__name__}: {reason}). Delete the "
            "file from the Hugging Face cache to download it again."
        ) from e
    prep = Preprocessing.from_timm_cfg(net.pretrained_cfg)
    from timm.models.vision_transformer import VisionTransformer

    info = {
        "name": spec,
        "arch": name,
        "family": "vit" if isinstance(net, VisionTransformer) else "timm",
        "source": f"https://huggingface.co/{cfg.hf_hub_id}/{path.name}",
        "sha256": sha256_file(path),
        "layout": "timm-hub",
        "preprocessing": prep.as_dict(),
    }
    return net.eval(), info, prep
