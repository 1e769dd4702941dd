"""ViT backbones: published checkpoint layouts, taps, preprocessing, fusion across families.

Tiny ViTs (depth 2, width 64, patch 8, 32 x 32 input) are created here, saved in each
release's layout and loaded by path; their features must equal timm's own forward of
the same weights (timm's ``checkpoint_filter_fn`` does the DINOv2 conversion on its own).
"""

from __future__ import annotations

import argparse
import json

import pytest
import timm
import torch
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from typer.testing import CliRunner

from sslinv.errors import CheckpointError, UnknownNameError
from sslinv.models.fusion import load_model

X = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)


def tiny_vit(seed: int = 0, dim: int = 64, heads: int = 1, **kw) -> VisionTransformer:
    """A timm ViT with random weights everywhere (LayerNorms included), eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VisionTransformer(img_size=32, patch_size=8, embed_dim=dim, depth=2, num_heads=heads,
                                num_classes=0, dynamic_img_size=True, **kw)
        for p in net.parameters():
            p.data.add_(torch.randn_like(p) * 0.05)
    return net.eval()


def reference(net: VisionTransformer, model, x: torch.Tensor = X) -> torch.Tensor:
    """timm's own forward: final-norm CLS token of the normalised input."""
    with torch.no_grad():
        return net.forward_features(model.normalize(x))[:, 0]


def feats(model, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x.float())


def save(obj, path):
    torch.save(obj, path)
    return path


def with_prefix(sd, prefix):
    return {prefix + k: v for k, v in sd.items()}


# ------------------------------------------------------------------------- layouts


def test_dino_plain_state_dict(tmp_path):
    net = tiny_vit()
    path = save(net.state_dict(), tmp_path / "checkpoint.pth")
    model, ident = load_model(str(path), tmp_path)
    member = ident["members"][0]
    assert member["layout"] == "dino" and member["family"] == "vit"
    assert member["arch"] == "vit-p8-d64-depth2-heads1"
    assert member["architecture"]["img_size"] == 32 and ident["dim"] == 64
    torch.testing.assert_close(feats(model), reference(net, model))


def test_safetensors_file_loads(tmp_path):
    from safetensors.torch import save_file

    net = tiny_vit(1)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    model, ident = load_model(str(path), tmp_path)
    assert ident["members"][0]["layout"] == "dino"
    torch.testing.assert_close(feats(model), reference(net, model))


@pytest.mark.parametrize("registers", [0, 4])
def test_dinov2_layer_scale_mask_token_registers(tmp_path, registers):
    # The DINOv2 release layout: layer scale, mask_token, registers after the CLS token
    # with no position of their own (the CLS position stays in pos_embed).
    net = tiny_vit(2, init_values=1.0, reg_tokens=registers, no_embed_class=bool(registers))
    sd = dict(net.state_dict())
    if registers:
        pos_cls = torch.randn(1, 1, 64) * 0.1
        sd["register_tokens"] = sd.pop("reg_token")
        sd["cls_token"] = sd["cls_token"] - pos_cls
        sd["pos_embed"] = torch.cat([pos_cls, sd["pos_embed"]], dim=1)
    sd["mask_token"] = torch.zeros(1, 64)
    path = save(sd, tmp_path / "dinov2_vits14_pretrain.pth")
    model, ident = load_model(str(path), tmp_path)
    member = ident["members"][0]
    assert member["layout"] == "dinov2"
    assert member["architecture"]["layer_scale"] and member["architecture"]["reg_tokens"] == registers
    # timm converts the raw file on its own (checkpoint_filter_fn): the same features.
    ref = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=1, num_classes=0,
                            init_values=1.0, reg_tokens=registers, no_embed_class=bool(registers)).eval()
    ref.load_state_dict(checkpoint_filter_fn(torch.load(path, weights_only=True), ref))
    torch.testing.assert_close(feats(model), reference(ref, model))
    torch.testing.assert_close(feats(model), reference(net, model))


def test_mae_encoder_and_full_file(tmp_path):
    net = tiny_vit(3)
    path = save({"model": net.state_dict()}, tmp_path / "mae.pth")
    model, ident = load_model(str(path), tmp_path)
    assert ident["members"][0]["layout"] == "mae"
    torch.testing.assert_close(feats(model), reference(net, model))
    # The _full files: mask_token and the decoder are training-only and dropped.
    full = {**net.state_dict(), "mask_token": torch.zeros(1, 1, 64),
            "decoder_embed.weight": torch.zeros(32, 64), "decoder_pos_embed": torch.zeros(1, 17, 32),
            "decoder_blocks.0.norm1.weight": torch.zeros(32), "decoder_pred.weight": torch.zeros(192, 32)}
    path = save({"model": full}, tmp_path / "mae_full.pth")
    model, _ = load_model(str(path), tmp_path)
    torch.testing.assert_close(feats(model), reference(net, model))


def test_deit_head_dropped(tmp_path):
    net = tiny_vit(4)
    sd = {**net.state_dict(), "head.weight": torch.zeros(10, 64), "head.bias": torch.zeros(10)}
    path = save({"model": sd, "epoch": 299}, tmp_path / "deit.pth")
    model, ident = load_model(str(path), tmp_path)
    assert ident["members"][0]["layout"] == "deit"
    torch.testing.assert_close(feats(model), reference(net, model))


def test_mocov3_heads_from_arch_string(tmp_path):
    # MoCo v3's vit_small has 12 heads of 32: width 96 here, 12 heads of 8. The shapes
    # are the same for any head count, so only the arch string tells.
    net = tiny_vit(5, dim=96, heads=12)
    base = with_prefix({**net.state_dict(), "head.0.weight": torch.zeros(8, 96)}, "module.base_encoder.")
    state = {**base, **with_prefix(net.state_dict(), "module.momentum_encoder."),
             "module.predictor.0.weight": torch.zeros(8, 8)}
    path = save({"epoch": 300, "arch": "vit_small", "state_dict": state, "optimizer": {}}, tmp_path / "m.pth.tar")
    model, ident = load_model(str(path), tmp_path)
    member = ident["members"][0]
    assert member["layout"] == "mocov3[module.base_encoder.]"
    assert member["architecture"]["num_heads"] == 12 and "vit_small" in member["architecture"]["heads_from"]
    torch.testing.assert_close(feats(model), reference(net, model))
    # Without the arch string the usual 64-per-head rule gives other (wrong) features.
    del_arch = {"epoch": 300, "state_dict": state}
    model1, ident1 = load_model(str(save(del_arch, tmp_path / "m1.pth.tar")), tmp_path)
    assert ident1["members"][0]["architecture"]["num_heads"] == 1
    assert not torch.allclose(feats(model1), feats(model))


def test_dino_ibot_training_checkpoint_takes_the_teacher(tmp_path):
    teacher, student = tiny_vit(6), tiny_vit(7)
    obj = {
        "teacher": {**with_prefix(teacher.state_dict(), "backbone."), "head.mlp.0.weight": torch.zeros(4, 64),
                    "head.last_layer.weight_g": torch.zeros(4, 1)},
        "student": {**with_prefix(student.state_dict(), "module.backbone."),
                    "module.backbone.masked_embed": torch.zeros(64), "module.head.mlp.0.weight": torch.zeros(4, 64)},
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_custom", patch_size=8),
    }
    model, ident = load_model(str(save(obj, tmp_path / "checkpoint.pth")), tmp_path)
    assert ident["members"][0]["layout"] == "teacher[backbone.]"
    torch.testing.assert_close(feats(model), reference(teacher, model))


def test_leftover_keys_are_an_error(tmp_path):
    sd = {**tiny_vit().state_dict(), "surprise.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"do not fit a vit-p8.*unexpected keys: \['surprise\.weight'\]"):
        load_model(str(save(sd, tmp_path / "x.pth")), tmp_path)
    state = {**with_prefix(tiny_vit().state_dict(), "module.base_encoder."), "module.queue": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"keys no rule accounts for: 'module\.queue'"):
        load_model(str(save({"state_dict": state}, tmp_path / "y.pth")), tmp_path)


def test_unknown_layout_lists_vit_layouts(tmp_path):
    path = save({"foo.weight": torch.zeros(2)}, tmp_path / "weird.pth")
    with pytest.raises(CheckpointError, match=r"no ResNet or ViT weights found.*'foo\.weight'.*MoCo v3"):
        load_model(str(path), tmp_path)


def test_arch_override_names_a_timm_model(tmp_path):
    # timm's test_vit: width 64 with 2 heads, which the 64-per-head rule cannot know.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = timm.create_model("test_vit", pretrained=False, num_classes=0).eval()
    path = save(net.state_dict(), tmp_path / "w.pth")
    model, ident = load_model(str(path), tmp_path, arch="test_vit")
    member = ident["members"][0]
    assert member["arch"] == "test_vit" and member["architecture"]["num_heads"] == 2
    x = torch.randint(0, 256, (2, 3, 160, 160), dtype=torch.uint8)
    torch.testing.assert_close(feats(model, x), reference(net, model, x))
    with pytest.raises(CheckpointError, match="not a timm ViT model name"):
        load_model(str(path), tmp_path, arch="resnet50")


# ----------------------------------------------------------------------------- taps


def test_input_side_not_a_multiple_of_the_patch_is_a_usage_error(tmp_path):
    from sslinv.errors import UsageError

    net = tiny_vit(8)
    patch = net.patch_embed.patch_size[0]
    model, _ = load_model(str(save(net.state_dict(), tmp_path / "v.pth")), tmp_path)
    side = 4 * patch + 2
    with pytest.raises(UsageError, match=f"multiple of {patch}.*--crop-size {4 * patch} or {5 * patch}"):
        model(torch.zeros(1, 3, side, side))


def test_taps_blocks_and_patch_mean(tmp_path):
    net = tiny_vit(8)
    path = save(net.state_dict(), tmp_path / "v.pth")
    blk0, _ = load_model(str(path), tmp_path, layer="blocks.0")
    blk1, _ = load_model(str(path), tmp_path, layer="blocks.1")
    pm, ident = load_model(str(path), tmp_path, layer="patch-mean")
    backbone, _ = load_model(str(path), tmp_path)
    with torch.no_grad():
        x = backbone.normalize(X)
        inter = net.forward_intermediates(x, indices=[0, 1], norm=True, return_prefix_tokens=True,
                                          output_fmt="NLC", intermediates_only=True)
        (_, pre0), (_, pre1) = inter
        patch = net.forward_features(x)[:, net.num_prefix_tokens:].mean(1)
    torch.testing.assert_close(feats(blk0), pre0[:, 0])
    torch.testing.assert_close(feats(blk1), pre1[:, 0])
    torch.testing.assert_close(feats(backbone), feats(blk1))
    torch.testing.assert_close(feats(pm), patch)
    assert ident["layer"] == "patch-mean" and ident["dim"] == 64
    with pytest.raises(UnknownNameError, match=r"this ViT has 2 blocks, blocks\.0\.\.blocks\.1"):
        load_model(str(path), tmp_path, layer="blocks.2")
    with pytest.raises(UnknownNameError, match=r"'layer2' for a 2-block ViT"):
        load_model(str(path), tmp_path, layer="layer2")
    with pytest.raises(UnknownNameError, match=r"'blocks\.0' for a ResNet"):
        load_model("random-tiny", tmp_path, layer="blocks.0")


def test_other_input_size_interpolates_position_embeddings(tmp_path):
    net = tiny_vit(9)
    model, _ = load_model(str(save(net.state_dict(), tmp_path / "v.pth")), tmp_path)
    x = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8)
    out = feats(model, x)
    assert out.shape == (2, 64) and torch.isfinite(out).all()
    torch.testing.assert_close(out, reference(net, model, x))  # timm's dynamic_img_size


# ----------------------------------------------------------------- fusion, preprocessing


def test_fusion_across_families_each_member_normalises(tmp_path):
    from sslinv.models.fusion import FusedModel
    from sslinv.models.preprocess import Normalize
    from sslinv.models.taps import FeatureModel

    net = tiny_vit(10)
    path = save(net.state_dict(), tmp_path / "v.pth")
    model, ident = load_model(f"{path}+random-tiny", tmp_path)
    assert isinstance(model, FusedModel) and ident["dim"] == 64 + 128
    assert [m["arch"] for m in ident["members"]] == ["vit-p8-d64-depth2-heads1", "resnet_tiny"]
    vit_part, resnet_part = model.members
    assert isinstance(resnet_part, FeatureModel)
    # A member with other constants (CLIP's) normalises differently; the fusion follows.
    vit_part.normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    out = feats(model, X)
    with torch.no_grad():
        want_vit = net.forward_features((X.float() / 255 - 0.5) / 0.25)[:, 0]
    torch.testing.assert_close(out[:, :64], want_vit, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[:, 64:], feats(resnet_part, X))


# ------------------------------------------------------------------------- end to end


def test_synthetic_end_to_end_on_a_vit(cache_dir, image_folder, tmp_path):
    from sslinv.cli.main import app

    path = save(tiny_vit(11).state_dict(), tmp_path / "vit.pth")
    res = CliRunner().invoke(app, [
        "synthetic", "--model", str(path), "--data", str(image_folder), "-t", "grayscale", "--k", "2",
        "--num-images", "4", "--resize", "40", "--crop-size", "32", "--batch-size", "8",
        "--workers", "0", "--device", "cpu", "--json",
    ], prog_name="sslinv")
    assert res.exit_code == 0, res.stderr + res.stdout
    out = json.loads(res.stdout)["results"][0]
    assert out["curves"]["distance"][0] == pytest.approx(0, abs=1e-6)
    with open(out["result_file"]) as f:
        record = json.load(f)
    assert record["model"]["members"][0]["family"] == "vit"
    reg = record["statistics"]["regularisation"]
    # 24 images for 64-d features: rank-deficient, so directions are dropped and recorded.
    assert reg["applied"] and reg["method"] == "pseudo_inverse" and reg["num_dropped"] >= 64 - 23


def test_arch_option_reaches_the_model_loader(cache_dir, image_folder, tmp_path):
    # --arch is a shared option (Runtime.arch): a wrong one fails on one line, naming it.
    from sslinv.cli.main import app

    path = save(tiny_vit(12).state_dict(), tmp_path / "vit.pth")
    res = CliRunner().invoke(app, [
        "synthetic", "--model", str(path), "--data", str(image_folder), "-t", "grayscale", "--k", "2",
        "--num-images", "4", "--resize", "40", "--crop-size", "32", "--workers", "0", "--device", "cpu",
        "--arch", "resnet50",
    ], prog_name="sslinv")
    assert res.exit_code != 0
    assert "not a timm ViT model name" in res.stderr and "Traceback" not in res.stderr
