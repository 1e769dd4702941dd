"""Vision Transformers through timm: the architecture read from the tensors, and the taps.

``ViTConfig.from_state_dict`` reads a (timm-keyed) ViT state dict: patch size and width
from ``patch_embed.proj.weight``, depth from the ``blocks.N`` keys, the native input size
from the length of ``pos_embed``, layer scale from ``ls1.gamma``, registers from
``reg_token``, the MLP width (and DINOv2-g's SwiGLU) from ``mlp``. The number of heads is
not in the tensors: it comes from the checkpoint's arch string where the layout knows it
(MoCo v3's ``vit_small`` has 12 heads of 32), from a timm model name (``--arch``), else
from the usual 64 dimensions per head (ViT-H: 16 heads of 80).

``ViTFeatures`` taps a timm ``VisionTransformer``:

- ``backbone``: the CLS token after the final norm (what the DINO, MoCo v3 and MAE
  linear probes read);
- ``blocks.N``: the CLS token of block N (0-based) passed through the final norm (DINO's
  multi-block probe); later blocks are not run;
- ``patch-mean``: the mean of the final-norm patch tokens (registers excluded).

Models are built with ``dynamic_img_size=True``: at an input size other than the native
one, timm resamples the position embeddings to the actual grid (bicubic, antialiased);
at the native size they are used as stored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from sslinv.errors import CheckpointError
from sslinv.models.preprocess import IMAGENET, Normalize, Preprocessing
from sslinv.models.zoo import VIT_LAYERS, check_layer

__all__ = ["TimmFeatures", "ViTConfig", "ViTFeatures", "build_vit", "default_heads", "timm_heads"]

#: Widths whose usual head count is not width / 64 (ViT-H/14: 16 heads of 80).
HEADS_BY_WIDTH = {1280: 16}


def default_heads(dim: int) -> int:
    """The usual head count for width ``dim``: 64 dimensions per head, ViT-H's 16."""
    return HEADS_BY_WIDTH.get(dim, max(1, dim // 64))


def timm_heads(name: str) -> int | None:
    """Heads of the timm model ``name`` (built on the meta device: no memory), or None."""
    import timm

    if not timm.is_model(name.split(".", 1)[0]):
        return None
    with torch.device("meta"):
        net = timm.create_model(name.split(".", 1)[0], pretrained=False, num_classes=0)
    blocks = getattr(net, "blocks", None)
    attn = getattr(blocks[0], "attn", None) if blocks is not None and len(blocks) else None
    return int(attn.num_heads) if attn is not None and hasattr(attn, "num_heads") else None


@dataclass(frozen=True)
class ViTConfig:
    """A timm ``VisionTransformer``'s constructor arguments, as read from the tensors."""

    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    img_size: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_scale: bool = False
    reg_tokens: int = 0
    no_embed_class: bool = False
    swiglu: bool = False
    heads_from: str = "64 dimensions per head"
    timm_name: str | None = None  # built as this timm model (``--arch``, hub models)

    @property
    def name(self) -> str:
        """A readable architecture name, e.g. ``vit-p16-d384-depth12-heads6``."""
        if self.timm_name:
            return self.timm_name
        extra = (f"-reg{self.reg_tokens}" if self.reg_tokens else "") + ("-ls" if self.layer_scale else "")
        return f"vit-p{self.patch_size}-d{self.embed_dim}-depth{self.depth}-heads{self.num_heads}{extra}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViTConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @classmethod
    def from_state_dict(
        cls, sd: dict[str, torch.Tensor], num_heads: int | None = None, heads_from: str | None = None
    ) -> ViTConfig:
        """The architecture of a timm-keyed ViT state dict (``cls_token``, ``blocks.N.*``)."""
        if "norm_pre.weight" in sd:
            raise CheckpointError(
                "These ViT weights have a pre-norm ('norm_pre', as CLIP): its activation and "
                "epsilon are not in the tensors. Name the architecture with --arch, e.g. "
                "--arch vit_base_patch16_clip_quickgelu_224."
            )
        proj = sd["patch_embed.proj.weight"]
        dim, patch = int(proj.shape[0]), int(proj.shape[-1])
        depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
        if depth == 0:
            raise CheckpointError("The ViT weights have no 'blocks.N.*' keys.")
        reg = int(sd["reg_token"].shape[1]) if "reg_token" in sd else 0
        length = int(sd["pos_embed"].shape[1])
        # timm keeps the class token's position only when the prefix tokens are embedded.
        if math.isqrt(length) ** 2 == length:
            no_embed_class, grid = True, math.isqrt(length)
        elif math.isqrt(length - 1) ** 2 == length - 1:
            no_embed_class, grid = False, math.isqrt(length - 1)
        else:
            raise CheckpointError(
                f"pos_embed has {length} positions: neither a square grid nor 1 + a square grid."
            )
        swiglu = "blocks.0.mlp.w12.weight" in sd or (
            "blocks.0.mlp.fc1.weight" in sd
            and int(sd["blocks.0.mlp.fc2.weight"].shape[1]) * 2 == int(sd["blocks.0.mlp.fc1.weight"].shape[0])
        )
        fc1 = sd.get("blocks.0.mlp.fc1.weight", sd.get("blocks.0.mlp.w12.weight"))
        mlp_ratio = int(fc1.shape[0]) / dim if fc1 is not None else 4.0
        if num_heads is None or dim % num_heads:
            num_heads, heads_from = default_heads(dim), "64 dimensions per head"
        return cls(
            patch_size=patch, embed_dim=dim, depth=depth, num_heads=num_heads,
            img_size=grid * patch, mlp_ratio=mlp_ratio,
            qkv_bias="blocks.0.attn.qkv.bias" in sd,
            layer_scale="blocks.0.ls1.gamma" in sd,
            reg_tokens=reg, no_embed_class=no_embed_class, swiglu=swiglu,
            heads_from=heads_from or "given",
        )


def build_vit(cfg: ViTConfig, meta: bool = False) -> nn.Module:
    """An (uninitialised when ``meta``) timm ``VisionTransformer`` for ``cfg``, no head."""
    from timm.layers import SwiGLUPacked
    from timm.models.vision_transformer import VisionTransformer

    if cfg.timm_name:
        import timm

        with torch.device("meta") if meta else torch.device("cpu"):
            return timm.create_model(
                cfg.timm_name, pretrained=False, num_classes=0, global_pool="token",
                dynamic_img_size=True, img_size=cfg.img_size,
            )
    kwargs: dict[str, Any] = {
        "img_size": cfg.img_size, "patch_size": cfg.patch_size, "embed_dim": cfg.embed_dim,
        "depth": cfg.depth, "num_heads": cfg.num_heads, "mlp_ratio": cfg.mlp_ratio,
        "qkv_bias": cfg.qkv_bias, "init_values": 1.0 if cfg.layer_scale else None,
        "reg_tokens": cfg.reg_tokens, "no_embed_class": cfg.no_embed_class,
        "num_classes": 0, "global_pool": "token", "dynamic_img_size": True,
    }
    if cfg.swiglu:
        kwargs.update(mlp_layer=SwiGLUPacked, act_layer=nn.SiLU)
    if meta:
        with torch.device("meta"):
            return VisionTransformer(**kwargs)
    return VisionTransformer(**kwargs)


def load_vit(cfg: ViTConfig, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """``cfg``'s ViT with ``state_dict`` loaded strictly, eval mode."""
    # Built on the meta device and allocated empty: no time spent on a random init.
    net = build_vit(cfg, meta=True).to_empty(device="cpu")
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"The weights do not fit a {cfg.name}: {e}") from e
    return net.eval()


def expected_shapes(cfg: ViTConfig) -> dict[str, tuple[int, ...]]:
    net = build_vit(cfg, meta=True)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


class ViTFeatures(nn.Module):
    """One tap of a timm ``VisionTransformer`` (see the module docstring)."""

    def __init__(self, vit: nn.Module, layer: str = "backbone", preprocessing: Preprocessing = IMAGENET) -> None:
        super().__init__()
        depth = len(vit.blocks)
        check_layer(layer, VIT_LAYERS, f"a {depth}-block ViT (blocks.0..blocks.{depth - 1})")
        if layer.startswith("blocks."):
            last = int(layer.split(".", 1)[1])
            if last >= depth:
                from sslinv.errors import UnknownNameError

                raise UnknownNameError(
                    f"Unknown feature layer {layer!r}: this ViT has {depth} blocks, "
                    f"blocks.0..blocks.{depth - 1}."
                )
        else:
            last = depth - 1
        self.vit, self.layer, self.preprocessing = vit, layer, preprocessing
        self.normalize = Normalize(preprocessing.mean, preprocessing.std)
        self._blocks = last + 1
        self.dim = int(vit.embed_dim)
        self.layers = ("backbone", "patch-mean", *(f"blocks.{i}" for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.vit
        patch = v.patch_embed.patch_size
        if not getattr(v.patch_embed, "dynamic_img_pad", False) and (x.shape[-2] % patch[0] or x.shape[-1] % patch[1]):
            from sslinv.errors import UsageError

            side, step = x.shape[-1], patch[1]
            lower, upper = max(step, side - side % step), side - side % step + step
            raise UsageError(
                f"This ViT cuts {patch[0]} x {patch[1]} patches, so its input side must be a multiple of "
                f"{step}; {x.shape[-2]} x {side} is not. Use --crop-size {lower} or {upper} (and a --resize "
                "at least as large)."
            )
        # timm's forward_features, stopped after the tapped block.
        x = v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(self.normalize(x)))))
        x = v.norm(v.blocks[: self._blocks](x))
        if self.layer == "patch-mean":
            return x[:, v.num_prefix_tokens:].mean(dim=1)
        return x[:, 0]

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, dim={self.dim}"


class TimmFeatures(nn.Module):
    """Any other timm model: its pooled pre-logits features (``backbone`` only)."""

    layers = ("backbone",)

    def __init__(self, net: nn.Module, layer: str = "backbone", preprocessing: Preprocessing = IMAGENET) -> None:
        super().__init__()
        check_layer(layer, self.layers, f"a timm {type(net).__name__}")
        self.net, self.layer, self.preprocessing = net, layer, preprocessing
        self.normalize = Normalize(preprocessing.mean, preprocessing.std)
        self.dim = int(net.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n.forward_head(n.forward_features(self.normalize(x)), pre_logits=True)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, dim={self.dim}"


def feature_model(net: nn.Module, layer: str, preprocessing: Preprocessing) -> nn.Module:
    """The taps for a timm network: ``ViTFeatures`` for a ViT, else ``TimmFeatures``."""
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(net, VisionTransformer) and getattr(net, "cls_token", None) is not None:
        return ViTFeatures(net, layer, preprocessing)
    return TimmFeatures(net, layer, preprocessing)
