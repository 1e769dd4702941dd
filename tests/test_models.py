"""Tests for sslinv.models: architectures, checkpoint layouts, the zoo, fusion, identity.

Checkpoints are written into tmp_path in each real on-disk layout (MoCo, torchvision,
wrapped/prefixed as SwAV, InfoMin, PIRL...) from small networks (resnet_tiny,
resnet18), and the real loader reads them back. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from sslinv.errors import CheckpointError, FetchError, UnknownNameError, UsageError
from sslinv.models import (
    ARCHS,
    LAYERS,
    MODELS,
    FeatureModel,
    FusedModel,
    ResNet,
    load_checkpoint,
    load_model,
    model_names,
    random_backbone,
    save_moco_checkpoint,
)
from sslinv.models.checkpoints import infer_arch, read_signature
from sslinv.models.resnet import BasicBlock
from sslinv.paths import checkpoint_path, weights_dir

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
PREFIXES = ["module.", "backbone.", "encoder.", "module.encoder.", "module.backbone.", "model."]


# ------------------------------------------------------------------------------- helpers


def make_net(arch: str = "resnet_tiny", seed: int = 0) -> torch.nn.Module:
    """A source network with random weights AND random BatchNorm statistics, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ARCHS.get(arch)()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.1)
    return net.eval()


@torch.no_grad()
def feats(model: torch.nn.Module, x: torch.Tensor = X, layer: str = "backbone") -> torch.Tensor:
    if not isinstance(model, (FeatureModel, FusedModel)):
        model = FeatureModel(model, layer)
    return model.eval()(x)


def tv_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def constant_state(arch: str, value: float = 0.01) -> dict[str, torch.Tensor]:
    """A state dict of ``arch`` with real shapes but stride-0 storage (a tiny file)."""
    with torch.device("meta"):
        ref = ARCHS.get(arch)()
    one = torch.full((1,), value)
    sd = {}
    for k, v in ref.state_dict().items():
        if k.endswith("running_var"):
            sd[k] = torch.ones(1).expand(v.shape)
        elif k.endswith("num_batches_tracked"):
            sd[k] = torch.zeros((), dtype=torch.long)
        else:
            sd[k] = one.expand(v.shape)
    return sd


def assert_same_features(path: Path, net: torch.nn.Module, cache: Path) -> dict:
    model, identity = load_model(str(path), cache)
    torch.testing.assert_close(feats(model), feats(net), rtol=0, atol=0)
    return identity


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# ------------------------------------------------------------------------- architectures


@pytest.mark.parametrize("arch", ARCHS.names())
def test_arch_keys_dims_and_signature(arch: str) -> None:
    """Every registered arch has torchvision keys, the dims it claims, and is inferable."""
    with torch.device("meta"):
        net = ARCHS.get(arch)()
    sd = net.state_dict()
    assert {k.split(".")[0] for k in sd} == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}
    for layer in LAYERS:
        assert FeatureModel(net, layer).dim == ARCHS.get(arch).dims[layer]
    backbone = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    assert read_signature(backbone) == ARCHS.get(arch).signature
    assert infer_arch(backbone) == arch


def test_known_dims() -> None:
    assert ARCHS.get("resnet18").dims["backbone"] == 512
    assert ARCHS.get("resnet50").dims["backbone"] == 2048
    assert ARCHS.get("resnet50w3").dims == {
        "layer1": 768, "layer2": 1536, "layer3": 3072, "layer4": 6144, "backbone": 6144,
    }
    assert ARCHS.get("resnet_tiny").dims == {
        "layer1": 16, "layer2": 32, "layer3": 64, "layer4": 128, "backbone": 128,
    }


def test_resnet50w3_widens_every_channel(tmp_path: Path, cache: Path) -> None:
    """w3 = every channel x3 (not torchvision's wide_resnet50_2); 6144-d features.

    The checkpoint's tensors are stride-0 views of one value, so the file is tiny while
    the shapes are real; the loader builds the full network and runs it.
    """
    with torch.device("meta"):
        ref = ARCHS.get("resnet50w3")()
    shapes = {k: v.shape for k, v in ref.state_dict().items()}
    assert shapes["conv1.weight"] == (192, 3, 7, 7)
    assert shapes["layer1.0.conv1.weight"] == (192, 192, 1, 1)
    assert shapes["layer1.0.conv3.weight"] == (768, 192, 1, 1)
    assert shapes["layer4.2.conv3.weight"] == (6144, 1536, 1, 1)

    sd = constant_state("resnet50w3")
    one = torch.full((1,), 0.01)
    head = {"fc.0.weight": one.expand(6144, 6144), "fc.0.bias": one.expand(6144),
            "fc.2.weight": one.expand(128, 6144), "fc.2.bias": one.expand(128)}
    path = save_moco_checkpoint(tmp_path / "w3.pth.tar", sd, "resnet50w3", head_state_dict=head)
    assert path.stat().st_size < 5_000_000

    ckpt = load_checkpoint(path)
    assert (ckpt.arch, ckpt.arch_from) == ("resnet50w3", "checkpoint's arch string")
    # The same weights without an arch string: inferred from the shapes (conv1: 192).
    raw = torch.load(path, weights_only=True)
    del raw["arch"]
    torch.save(raw, tmp_path / "noarch.pth.tar")
    assert load_checkpoint(tmp_path / "noarch.pth.tar").arch == "resnet50w3"

    model, identity = load_model(str(path), cache)
    out = feats(model, torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 6144) and model.dim == 6144 and identity["dim"] == 6144
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("layer,dim", [("layer1", 64), ("layer2", 128), ("layer3", 256),
                                       ("layer4", 512), ("backbone", 512)])
def test_layers_pool_the_stage_and_skip_later_stages(layer: str, dim: int) -> None:
    net = make_net("resnet18")
    model = FeatureModel(net, layer).eval()
    assert model.dim == dim
    called = []
    hooks = [getattr(net, s).register_forward_hook(lambda *a, s=s: called.append(s))
             for s in ("layer1", "layer2", "layer3", "layer4")]
    out = feats(model)
    for h in hooks:
        h.remove()
    assert out.shape == (2, dim)
    last = "layer4" if layer == "backbone" else layer
    assert called[-1] == last  # no stage after the chosen one ran

    with torch.no_grad():  # the same thing written out with torchvision's modules
        x = net.maxpool(net.relu(net.bn1(net.conv1(model.normalize(X)))))
        for s in ("layer1", "layer2", "layer3", "layer4")[: int(last[-1])]:
            x = getattr(net, s)(x)
        torch.testing.assert_close(out, x.mean(dim=(2, 3)))
    if layer == "backbone":
        with torch.no_grad():
            net.fc = torch.nn.Identity()
            torch.testing.assert_close(out, net(model.normalize(X)))  # the reference's fc = Identity model


def test_unknown_layer_and_fuse_mode(cache: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown feature layer 'layr2'\. Did you mean 'layer2'"):
        load_model("random-tiny", cache, layer="layr2")
    with pytest.raises(UnknownNameError, match=r"Unknown fusion mode 'concat'"):
        load_model("random-tiny", cache, fuse="concat")


# ------------------------------------------------------------------------ MoCo layout


@pytest.mark.parametrize("module_prefix", [True, False])
@pytest.mark.parametrize("optimizer", ["absent", "none", "present"])
@pytest.mark.parametrize("with_arch", [True, False])
def test_moco_layout(tmp_path: Path, cache: Path, module_prefix: bool, optimizer: str,
                     with_arch: bool) -> None:
    net = make_net("resnet_tiny", seed=3)
    opt = None
    if optimizer == "present":
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9).state_dict()
    path = save_moco_checkpoint(tmp_path / "moco.pth.tar", tv_state(net), "resnet_tiny",
                                epoch=7, optimizer=opt)
    raw = torch.load(path, weights_only=True)
    if optimizer == "absent":
        del raw["optimizer"]  # as in the released MoCo files
    if not with_arch:
        del raw["arch"]
    if not module_prefix:  # a single-GPU save: encoder_q.* without DataParallel's module.
        raw["state_dict"] = {k.removeprefix("module."): v for k, v in raw["state_dict"].items()}
    torch.save(raw, path)

    ckpt = load_checkpoint(path)
    assert ckpt.arch == "resnet_tiny"
    assert ckpt.arch_from == ("checkpoint's arch string" if with_arch else "tensor shapes")
    assert ckpt.layout == ("moco[module.encoder_q.]" if module_prefix else "moco[encoder_q.]")
    assert not any(k.startswith("fc") for k in ckpt.state_dict)
    assert_same_features(path, net, cache)


def test_moco_arch_from_contents_not_file_name(tmp_path: Path, cache: Path) -> None:
    net = make_net("resnet18", seed=5)
    path = save_moco_checkpoint(tmp_path / "resnet50w3_model.pth.tar", tv_state(net), "resnet18")
    raw = torch.load(path, weights_only=True)
    assert raw["arch"] == "resnet18"
    identity = assert_same_features(path, net, cache)
    assert identity["members"][0]["arch"] == "resnet18"
    assert identity["dim"] == 512
    # Without the arch string the shapes still say resnet18.
    del raw["arch"]
    torch.save(raw, path)
    assert load_checkpoint(path).arch == "resnet18"


def test_save_moco_checkpoint_layout(tmp_path: Path) -> None:
    net = make_net("resnet18")
    state = torch.get_rng_state()
    path = save_moco_checkpoint(tmp_path / "m.pth.tar", net.state_dict(), "resnet18", mlp_dim=32)
    assert torch.equal(state, torch.get_rng_state())
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"epoch", "arch", "state_dict", "optimizer"}
    assert (raw["epoch"], raw["arch"], raw["optimizer"]) == (0, "resnet18", None)
    sd = raw["state_dict"]
    assert sd["module.encoder_q.fc.0.weight"].shape == (512, 512)
    assert sd["module.encoder_q.fc.2.weight"].shape == (32, 512)
    assert sd["module.encoder_q.fc.2.bias"].shape == (32,)
    assert sd["module.queue"].shape[0] == 32 and sd["module.queue_ptr"].tolist() == [0]
    q = {k[len("module.encoder_q."):]: v for k, v in sd.items() if k.startswith("module.encoder_q.")}
    k_ = {k[len("module.encoder_k."):]: v for k, v in sd.items() if k.startswith("module.encoder_k.")}
    assert q.keys() == k_.keys() and all(torch.equal(q[n], k_[n]) for n in q)
    assert "fc.weight" not in q  # the classifier is replaced by the MLP head
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------- torchvision and wrappers


def test_plain_torchvision_state_dict(tmp_path: Path, cache: Path) -> None:
    net = make_net("resnet_tiny", seed=2)
    path = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), path)
    ckpt = load_checkpoint(path)
    assert (ckpt.arch, ckpt.layout, ckpt.arch_from) == ("resnet_tiny", "torchvision", "tensor shapes")
    assert "fc.weight" not in ckpt.state_dict
    assert_same_features(path, net, cache)


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_wrapped_prefixed_state_dicts(tmp_path: Path, cache: Path, wrapper: str, prefix: str) -> None:
    net = make_net("resnet_tiny", seed=4)
    inner = {prefix + k: v for k, v in net.state_dict().items()}
    # Heads that must be dropped, in the names the public releases use.
    inner[prefix + "projection_head.0.weight"] = torch.randn(8, 128)
    inner[prefix + "prototypes.weight"] = torch.randn(10, 8)
    inner[prefix + "head.weight"] = torch.randn(3, 3)
    inner["module.jigsaw.weight"] = torch.randn(4, 4)
    path = tmp_path / "wrapped.pth"
    torch.save({wrapper: inner, "epoch": 100}, path)
    ckpt = load_checkpoint(path)
    assert ckpt.arch == "resnet_tiny"
    assert ckpt.layout == f"{wrapper}[{prefix}]"
    assert set(ckpt.state_dict) == {k for k in net.state_dict() if not k.startswith("fc.")}
    assert_same_features(path, net, cache)


def test_swav_like_release(tmp_path: Path, cache: Path) -> None:
    """SwAV/DeepCluster-v2 releases: a bare state dict with module. and heads."""
    net = make_net("resnet_tiny", seed=6)
    sd = {"module." + k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    sd["module.projection_head.0.weight"] = torch.randn(16, 128)
    sd["module.projection_head.0.bias"] = torch.randn(16)
    sd["module.prototypes.weight"] = torch.randn(30, 16)
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(sd, path)
    ckpt = load_checkpoint(path)
    assert (ckpt.arch, ckpt.layout) == ("resnet_tiny", "torchvision[module.]")
    assert_same_features(path, net, cache)


def test_pirl_like_release_with_options_namespace(tmp_path: Path, cache: Path) -> None:
    """PyContrast (InfoMin/InsDis/PIRL) style: 'model' with module.encoder. and a jigsaw
    stream, plus the training options as an argparse.Namespace."""
    net = make_net("resnet_tiny", seed=7)
    model = {"module.encoder." + k: v for k, v in net.state_dict().items()}
    model["module.jigsaw.0.weight"] = torch.randn(4, 4)
    model["module.head_jig.fc.weight"] = torch.randn(4, 4)
    model["module.head.fc.weight"] = torch.randn(4, 4)
    path = tmp_path / "PIRL.pth"
    torch.save({"model": model, "opt": argparse.Namespace(lr=0.03, arch="resnet50"), "epoch": 800}, path)
    ckpt = load_checkpoint(path)
    assert (ckpt.arch, ckpt.layout) == ("resnet_tiny", "model[module.encoder.]")
    assert_same_features(path, net, cache)


def test_old_checkpoint_without_num_batches_tracked(tmp_path: Path, cache: Path) -> None:
    net = make_net("resnet_tiny", seed=8)
    sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pth")
    assert_same_features(tmp_path / "old.pth", net, cache)


# ------------------------------------------------------------------------------ errors


def test_unknown_layout_lists_keys(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"net": {"stem.weight": torch.zeros(1)}, "blocks.0.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"Unrecognised checkpoint layout .*odd\.pth.*"
                                              r"Keys seen: \['net', 'blocks\.0\.weight'\].*"
                                              r"Known layouts: MoCo"):
        load_checkpoint(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match=r"the file holds a Tensor"):
        load_checkpoint(path)


def test_missing_keys_are_named(tmp_path: Path) -> None:
    net = make_net("resnet_tiny")
    sd = net.state_dict()
    del sd["layer4.0.conv2.weight"]
    torch.save(sd, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match=r"do not fit a resnet_tiny.*Missing keys: "
                                              r"\['layer4\.0\.conv2\.weight'\]; unexpected keys: \[\]"):
        load_checkpoint(tmp_path / "cut.pth")


def test_arch_string_that_does_not_fit(tmp_path: Path) -> None:
    net = make_net("resnet_tiny")
    path = save_moco_checkpoint(tmp_path / "m.pth.tar", net.state_dict(), "resnet_tiny")
    raw = torch.load(path, weights_only=True)
    raw["arch"] = "resnet50"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"do not fit a resnet50 \(architecture from the "
                                              r"checkpoint's arch string\).*Missing keys: \['layer1\.0\.conv3"):
        load_checkpoint(path)


def test_unknown_shapes(tmp_path: Path) -> None:
    net = ResNet(BasicBlock, (1, 1, 1, 1), base_width=8)
    torch.save({"state_dict": net.state_dict(), "arch": "resnet8x"}, tmp_path / "r.pth")
    with pytest.raises(CheckpointError, match=r"Cannot tell the architecture.*conv1 with 8 "
                                              r"channels.*arch string 'resnet8x'"):
        load_checkpoint(tmp_path / "r.pth")


def test_not_a_checkpoint(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "notes.pth.tar"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match=r"notes\.pth\.tar is not a loadable PyTorch checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"not a loadable"):
        load_model(str(path), cache)
    with pytest.raises(CheckpointError, match=r"is a folder"):
        load_model(str(tmp_path), cache)


def test_missing_registry_checkpoint(cache: Path) -> None:
    path = checkpoint_path(cache, "ventral")
    with pytest.raises(CheckpointError) as info:
        load_model("ventral", cache)
    msg = str(info.value)
    assert f"Checkpoint for model 'ventral' not found at {path}." in msg
    assert "sslinv pretrain --model ventral" in msg


def test_unknown_name_did_you_mean(cache: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown model 'ventrl'\. Did you mean 'ventral'\?.*"
                                               r"A path to a checkpoint file is also accepted"):
        load_model("ventrl", cache)
    with pytest.raises(UnknownNameError, match=r"Did you mean 'ventral'"):
        load_model("default+ventrl", cache)


# ---------------------------------------------------------------- zoo, names, identity


def test_model_names_without_torch() -> None:
    code = ("import sys; from sslinv.models import model_names, LAYERS, FUSE_MODES; "
            "from sslinv.models.zoo import MODELS; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(','.join(model_names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = out.stdout.strip().split(",")
    for name in ("random", "random-resnet18", "random-tiny", "supervised", "default",
                 "ventral", "dorsal", "default_w3"):
        assert name in names
    assert names == model_names()


def _fake_for(name: str, cache: Path) -> None:
    """Put what the zoo record needs in place, from a tiny network (no network access)."""
    record = MODELS.get(name)
    if record.kind == "random":
        return
    net = make_net("resnet_tiny")
    if record.kind == "download":
        weights_dir(cache).mkdir(parents=True)
        torch.save(net.state_dict(), weights_dir(cache) / record.filename)
    elif record.kind == "checkpoint":
        save_moco_checkpoint(checkpoint_path(cache, name), net.state_dict(), "resnet_tiny")
    else:
        raise AssertionError(f"no fake for model kind {record.kind!r}: add one here")


@pytest.mark.parametrize("name", model_names())
def test_every_zoo_model_loads(name: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    _fake_for(name, cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fakes are resnet_tiny, not the paper's arch
        model, identity = load_model(name, cache)
    assert not model.training
    out = feats(model)
    assert out.shape == (2, identity["dim"])
    member = identity["members"][0]
    assert member["name"] == name and len(member["sha256"]) == 64
    if MODELS.get(name).kind == "random":
        assert identity["dim"] == ARCHS.get(MODELS.get(name).arch).dims["backbone"]
        assert member["source"] == "random-init seed 0"


def _no_download(*args, **kwargs):
    raise AssertionError("a download was attempted")


@pytest.mark.parametrize("name", ["random-tiny", "random-resnet18"])
def test_random_models_deterministic_and_rng_untouched(name: str, cache: Path) -> None:
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    m1, id1 = load_model(name, cache)
    assert torch.equal(state, torch.get_rng_state())
    m2, id2 = load_model(name, cache)
    assert id1 == id2
    torch.testing.assert_close(feats(m1), feats(m2), rtol=0, atol=0)
    assert torch.equal(state, torch.get_rng_state())


def test_user_checkpoint_by_name_and_paper_checkpoint(tmp_path: Path, cache: Path) -> None:
    net = make_net("resnet_tiny", seed=9)
    save_moco_checkpoint(checkpoint_path(cache, "mymodel"), net.state_dict(), "resnet_tiny")
    model, identity = load_model("mymodel", cache)
    torch.testing.assert_close(feats(model), feats(net), rtol=0, atol=0)
    assert identity["members"][0]["source"] == str(checkpoint_path(cache, "mymodel"))
    # A near-miss now also suggests the user's checkpoint.
    with pytest.raises(UnknownNameError, match=r"Did you mean 'mymodel'"):
        load_model("mymodle", cache)
    # The paper's name: the file is read by its contents; a different arch warns.
    save_moco_checkpoint(checkpoint_path(cache, "dorsal"), net.state_dict(), "resnet_tiny")
    with pytest.warns(UserWarning, match=r"holds a resnet_tiny, but the paper's 'dorsal' model is a resnet50"):
        model, identity = load_model("dorsal", cache)
    assert identity["members"][0]["layout"] == "moco[module.encoder_q.]"


def test_identity_follows_checkpoint_bytes(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "m.pth.tar"
    save_moco_checkpoint(path, make_net("resnet_tiny", seed=1).state_dict(), "resnet_tiny")
    _, id1 = load_model(str(path), cache)
    _, id1b = load_model(str(path), cache)
    assert id1 == id1b
    save_moco_checkpoint(path, make_net("resnet_tiny", seed=2).state_dict(), "resnet_tiny")
    _, id2 = load_model(str(path), cache)
    assert id1["members"][0]["sha256"] != id2["members"][0]["sha256"]
    assert id1 != id2
    assert id1["members"][0]["source"] == str(path.resolve())
    assert id1["members"][0]["name"] == "m"
    import json
    json.dumps(id1)  # JSON-able


def test_supervised_from_preplaced_file(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    record = MODELS.get("supervised")
    dest = weights_dir(cache) / "resnet50-0676ba61.pth"
    assert record.filename == dest.name and record.hash_prefix == "0676ba61"
    dest.parent.mkdir(parents=True)
    sd = constant_state("resnet50")
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1).expand(1000, 2048), torch.zeros(1000)
    torch.save(sd, dest)  # a torchvision state dict with real shapes (stride-0: tiny file)
    with pytest.warns(UserWarning, match=r"not the published 0676ba61"):  # it is a fake
        model, identity = load_model("supervised", cache)
    member = identity["members"][0]
    assert member["source"] == "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert (member["arch"], member["layout"], identity["dim"]) == ("resnet50", "torchvision", 2048)
    out = feats(model, X[:1, :, :32, :32])
    assert out.shape == (1, 2048) and torch.isfinite(out).all()


def test_supervised_download_failure_and_success(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sslinv.fetch.download as dl

    dest = weights_dir(cache) / "resnet50-0676ba61.pth"

    def fail(urls, path, **kwargs):
        raise dl.FetchError("network unreachable")

    monkeypatch.setattr(dl, "download", fail)
    with pytest.raises(FetchError, match=r"Downloading the 'supervised' weights from "
                                              r"https://download\.pytorch\.org/.*network unreachable.*"
                                              r"place it at .*resnet50-0676ba61\.pth"):
        load_model("supervised", cache)
    assert not dest.exists()

    calls = []

    def fake(urls, path, expected=None, **kwargs):
        calls.append((tuple(urls), expected))
        torch.save(make_net("resnet_tiny").state_dict(), path)
        return dl.Downloaded(Path(path), urls[0], Path(path).stat().st_size, {"sha256": "0" * 64})

    monkeypatch.setattr(dl, "download", fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model("supervised", cache)
        load_model("supervised", cache)  # second time: the converted file is there
    assert calls == [(("https://download.pytorch.org/models/resnet50-0676ba61.pth",), {"sha256": "0676ba61"})]
    assert dest.is_file()


def test_fusion_cat_add_mean(tmp_path: Path, cache: Path) -> None:
    tiny_a = make_net("resnet_tiny", seed=21)
    tiny_b = make_net("resnet_tiny", seed=22)
    paths = {}
    for name, net in (("a", tiny_a), ("b", tiny_b)):
        paths[name] = tmp_path / f"{name}.pth"
        torch.save(net.state_dict(), paths[name])
    fa, fb, fr = feats(tiny_a), feats(tiny_b), feats(random_backbone("resnet18", 0))

    model, identity = load_model(f"{paths['a']}+random-resnet18", cache)
    assert model.dim == identity["dim"] == 128 + 512 and identity["fuse"] == "cat"
    assert [m["arch"] for m in identity["members"]] == ["resnet_tiny", "resnet18"]
    torch.testing.assert_close(feats(model), torch.cat([fa, fr], dim=1), rtol=0, atol=0)

    spec = f"{paths['a']}+{paths['b']}"
    model, identity = load_model(spec, cache, fuse="add")
    assert model.dim == 128 and identity["fuse"] == "add"
    torch.testing.assert_close(feats(model), fa + fb)
    model, _ = load_model(spec, cache, fuse="mean")
    torch.testing.assert_close(feats(model), (fa + fb) / 2)
    model, identity = load_model(f"{spec}+random-tiny", cache, layer="layer2", fuse="mean")
    assert model.dim == 32 and identity["layer"] == "layer2" and len(identity["members"]) == 3

    with pytest.raises(UsageError, match=r"Cannot fuse with 'add'.*differ \(128, 512\).*--fuse cat"):
        load_model(f"{paths['a']}+random-resnet18", cache, fuse="add")
    with pytest.raises(UsageError, match=r"empty member"):
        load_model("random-tiny++random-tiny", cache)


def test_single_model_has_no_fuse_and_plus_in_path(tmp_path: Path, cache: Path) -> None:
    net = make_net("resnet_tiny")
    path = tmp_path / "a+b.pth"
    torch.save(net.state_dict(), path)
    model, identity = load_model(str(path), cache)  # an existing path is never split
    assert "fuse" not in identity and isinstance(model, FeatureModel)
    assert identity["spec"] == str(path)
