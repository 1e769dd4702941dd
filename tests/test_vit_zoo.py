"""The ViT zoo records: each release layout, placed where the download would go, converts
once and loads with the features of timm's own forward (no network)."""

from __future__ import annotations

import warnings

import pytest
import torch
from test_vit import feats, reference, tiny_vit, with_prefix

from sslinv.models.fusion import load_model
from sslinv.models.load import converted_path
from sslinv.models.zoo import MODELS
from sslinv.paths import weights_dir

VIT_ZOO = [n for n, r in MODELS.items() if r.kind == "download" and r.arch.startswith("vit-")]
# One record per layout runs by default; the rest repeat a layout (-m slow runs them all).
FAST = {"dino-vits16", "dinov2-vits14-reg4", "mae-vitb16", "mocov3-vits", "deit-s"}


def release(name: str):
    """(tiny net, object in ``name``'s published layout, expected layout name)."""
    family = name.split("-", 1)[0]
    if family == "mocov3":
        net = tiny_vit(1, dim=96, heads=12)
        state = {**with_prefix(net.state_dict(), "module.base_encoder."),
                 **with_prefix(net.state_dict(), "module.momentum_encoder."),
                 "module.base_encoder.head.0.weight": torch.zeros(4, 96), "module.predictor.0.weight": torch.zeros(4, 4)}
        arch = "vit_small" if name.endswith("vits") else "vit_base"
        return net, {"epoch": 300, "arch": arch, "state_dict": state, "optimizer": {}}, "mocov3[module.base_encoder.]"
    if family == "dinov2":
        reg = 4 if name.endswith("reg4") else 0
        net = tiny_vit(2, init_values=1.0, reg_tokens=reg, no_embed_class=bool(reg))
        sd = dict(net.state_dict())
        if reg:
            sd["register_tokens"] = sd.pop("reg_token")
            sd["pos_embed"] = torch.cat([torch.zeros(1, 1, 64), sd["pos_embed"]], dim=1)
        return net, {**sd, "mask_token": torch.zeros(1, 64)}, "dinov2"
    net = tiny_vit(3)
    if family == "mae":
        return net, {"model": net.state_dict()}, "mae"
    if family == "deit":
        return net, {"model": {**net.state_dict(), "head.weight": torch.zeros(5, 64),
                               "head.bias": torch.zeros(5)}}, "deit"
    return net, net.state_dict(), "dino"


def test_the_modern_releases_are_in_the_zoo():
    assert set(VIT_ZOO) == {
        "dino-vits16", "dino-vitb16", "dinov2-vits14", "dinov2-vitb14", "dinov2-vitl14",
        "dinov2-vits14-reg4", "dinov2-vitb14-reg4", "dinov2-vitl14-reg4", "mae-vitb16", "mae-vitl16",
        "mocov3-vits", "mocov3-vitb", "deit-s",
    }
    assert MODELS.get("mocov3-vits").arch.endswith("heads12")  # 12 heads of 32
    assert MODELS.get("deit-s").checksums == {"sha256": "cd65a155"}
    assert MODELS.get("mae-vitb16").checksums == {"md5": "8cad7c"}


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in VIT_ZOO])
def test_every_vit_release_layout_converts_and_loads(name, tmp_path):
    net, obj, layout = release(name)
    record = MODELS.get(name)
    weights_dir(tmp_path).mkdir(parents=True)
    torch.save(obj, weights_dir(tmp_path) / record.filename)  # as if downloaded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny ViT, not the published one; no published hash match
        model, ident = load_model(name, tmp_path)
        again, _ = load_model(name, tmp_path)  # from the converted file
    assert converted_path(tmp_path, name).is_file()
    member = ident["members"][0]
    assert member["layout"] == layout and member["family"] == "vit" and len(member["sha256"]) == 64
    torch.testing.assert_close(feats(model), reference(net, model))
    torch.testing.assert_close(feats(again), feats(model))
