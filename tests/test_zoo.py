"""The public model zoo: records, download on first use (from a local server), checksum
checks, conversion once to the common layout, unsupported models, `fetch-data --model`.

Each checkpoint is written in its release's real layout (MoCo/PCL training checkpoint,
SwAV-style ``module.`` state dict with heads, PyContrast ``model`` wrapper with
``module.encoder.`` and PIRL's jigsaw stream, plain backbone state dicts) from a tiny
ResNet, served on 127.0.0.1, and read back by the real loader.
"""

from __future__ import annotations

import argparse
import io
import json
import warnings
from pathlib import Path

import pytest
import torch
from test_fetch_fakes import Server, server, sha256  # noqa: F401
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.errors import CheckpointError, ChecksumError, FetchError
from sslinv.fetch.download import normalise_expected
from sslinv.models.checkpoints import save_moco_checkpoint
from sslinv.models.fusion import load_model
from sslinv.models.load import converted_path, fetch_weights, random_backbone
from sslinv.models.taps import FeatureModel
from sslinv.models.zoo import MODELS, UNSUPPORTED, model_names
from sslinv.paths import weights_dir

ZOO = [n for n, r in MODELS.items() if r.kind == "download"]
X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def tiny(seed: int = 0) -> torch.nn.Module:
    net = random_backbone("resnet_tiny", seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed))
    return net.eval()


def release_bytes(name: str, net: torch.nn.Module) -> bytes:
    """``net`` saved in the layout of ``name``'s published checkpoint."""
    sd = {k: v for k, v in net.state_dict().items()}
    buf = io.BytesIO()
    prefix = MODELS.get(name).key_prefix
    if prefix == "module.encoder_q.":  # MoCo v1/v2, PCL: training checkpoint
        save_moco_checkpoint_to(buf, sd)
        return buf.getvalue()
    if prefix == "module.":  # SwAV, DeepCluster-v2, SeLa-v2
        state = {f"module.{k}": v for k, v in sd.items()}
        state["module.projection_head.0.weight"] = torch.zeros(4, 4)
        state["module.prototypes.weight"] = torch.zeros(3, 4)
        torch.save(state, buf)
    elif prefix == "module.encoder.":  # PyContrast: InfoMin, InsDis, PIRL
        model = {f"module.encoder.{k}": v for k, v in sd.items()}
        model["module.head.fc.weight"] = torch.zeros(2, 2)
        if name == "pirl":
            model["module.jigsaw.0.weight"] = torch.zeros(2, 2)
            model["module.head_jig.fc.weight"] = torch.zeros(2, 2)
        torch.save({"model": model, "opt": argparse.Namespace(arch="resnet50"), "epoch": 800}, buf)
    else:  # plain backbone state dicts (torchvision, Barlow Twins, DINO, VICReg)
        torch.save(sd, buf)
    return buf.getvalue()


def save_moco_checkpoint_to(buf: io.BytesIO, sd: dict) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = save_moco_checkpoint(Path(d) / "m.pth.tar", sd, "resnet_tiny")
        buf.write(path.read_bytes())


def assert_same_weights(model: FeatureModel, net: torch.nn.Module) -> None:
    """The loaded backbone holds exactly ``net``'s weights and buffers."""
    got, want = model.backbone.state_dict(), net.state_dict()
    assert set(got) == set(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


# ------------------------------------------------------------------------------ records


def test_zoo_records() -> None:
    for name in ("supervised", "moco-v1", "moco-v2", "swav", "deepcluster-v2", "sela-v2", "pcl-v1", "pcl-v2",
                 "infomin", "insdis", "pirl", "barlowtwins", "dino-resnet50", "vicreg"):
        assert name in model_names()
    files = [MODELS.get(n).filename for n in ZOO]
    assert len(set(files)) == len(files), "each zoo model needs its own file under <cache>/weights"
    for name in ZOO:
        record = MODELS.get(name)
        assert record.url.startswith("https://") and (record.arch == "resnet50" or record.arch.startswith("vit-"))
        normalise_expected(record.checksums)  # well-formed published digests
    assert MODELS.get("moco-v2").checksums == {"md5": "a04e12f8"}
    assert set(UNSUPPORTED) == {"simclr-v1", "simclr-v2", "byol"} and not set(UNSUPPORTED) & set(model_names())
    for name in ("infomin", "insdis", "pirl"):
        assert MODELS.get(name).url.endswith("?dl=1")  # Dropbox: the file, not its preview page


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_models_say_why(name: str, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=rf"Model '{name}' is not supported: .*(TensorFlow|JAX).*--model PATH"):
        load_model(name, tmp_path)


# ------------------------------------------------------------- every layout converts


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_downloads_converts_and_loads(name: str, server: Server, tmp_path: Path) -> None:
    net = tiny(seed=len(name))
    data = release_bytes(name, net)
    url = server.add(f"/zoo/{name}", data)
    info = fetch_weights(name, tmp_path, urls=(url,), expected={"sha256": sha256(data)}, backoff=0)
    assert info["status"] == "downloaded" and info["file"]["sha256"] == sha256(data)
    converted = converted_path(tmp_path, name)
    side = json.loads(Path(str(converted) + ".json").read_text())
    assert side["source_url"] == url and side["source_sha256"] == sha256(data)
    assert set(torch.load(converted, weights_only=True)["state_dict"]) == set(net.state_dict())

    requests = len(server.requests)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resnet_tiny, not the published resnet50
        model, identity = load_model(name, tmp_path)
    assert len(server.requests) == requests  # converted once: no new request
    member = identity["members"][0]
    assert member["sha256"] == sha256(data) and member["source"] == url
    assert_same_weights(model, net)
    if MODELS.get(name).key_prefix == "module.encoder_q.":
        assert member["layout"] == "moco[module.encoder_q.]"


# ------------------------------------------------------------------ first use, checks


def test_first_use_download_through_the_mirror_records_sha256(server: Server, tmp_path: Path, monkeypatch) -> None:
    net = tiny(3)
    data = release_bytes("swav", net)
    server.add("/mirror/deepcluster/swav_800ep_pretrain.pth.tar", data)
    monkeypatch.setenv("SSLINV_MIRROR", server.url + "/mirror")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, identity = load_model("swav", tmp_path)
    assert_same_weights(model, net)
    with torch.no_grad():
        assert model(X).shape == (2, identity["dim"]) and torch.isfinite(model(X)).all()
    recorded = json.loads((tmp_path / "fetch/sha256.json").read_text())
    assert recorded["model/swav/swav_800ep_pretrain.pth.tar"]["sha256"] == sha256(data)
    assert (weights_dir(tmp_path) / "swav_800ep_pretrain.pth.tar").read_bytes() == data

    # A later download (the file deleted, the upstream copy changed) must match the record.
    for p in weights_dir(tmp_path).glob("swav*"):
        p.unlink()
    server.files["/mirror/deepcluster/swav_800ep_pretrain.pth.tar"] = release_bytes("swav", tiny(4))
    with pytest.raises(ChecksumError, match=sha256(data)):
        load_model("swav", tmp_path)
    assert not (weights_dir(tmp_path) / "swav_800ep_pretrain.pth.tar").exists()


def test_published_prefix_mismatch_is_refused(server: Server, tmp_path: Path, monkeypatch) -> None:
    data = release_bytes("moco-v2", tiny(5))
    server.add("/m/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar", data)
    monkeypatch.setenv("SSLINV_MIRROR", server.url + "/m")
    with pytest.raises(ChecksumError, match=r"expected md5 a04e12f8, got [0-9a-f]{32}"):
        load_model("moco-v2", tmp_path)
    assert not converted_path(tmp_path, "moco-v2").exists()


def test_download_failure_names_the_url_and_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SSLINV_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(FetchError, match=r"Downloading the 'dino-resnet50' weights from http://127\.0\.0\.1:9/"
                                              r"dino/.*place it at .*dino_resnet50_pretrain\.pth"):
        fetch_weights("dino-resnet50", tmp_path, retries=0, backoff=0)


def test_conversion_follows_a_replaced_download(tmp_path: Path) -> None:
    raw = weights_dir(tmp_path) / MODELS.get("vicreg").filename
    raw.parent.mkdir(parents=True)
    torch.save(tiny(1).state_dict(), raw)
    with pytest.warns(UserWarning, match=r"not the published c843e765"):
        first = fetch_weights("vicreg", tmp_path)
    assert first["status"] == "converted"
    assert fetch_weights("vicreg", tmp_path)["status"] == "cached"
    torch.save(tiny(2).state_dict(), raw)  # the user puts another file there
    with pytest.warns(UserWarning):
        again = fetch_weights("vicreg", tmp_path)
    assert again["status"] == "converted" and again["file"]["sha256"] != first["file"]["sha256"]


def test_cli_fetch_model(server: Server, tmp_path: Path) -> None:
    data = release_bytes("dino-resnet50", tiny(6))
    server.add("/s/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth", data)
    args = ["fetch-data", "--model", "dino-resnet50", "--mirror", server.url + "/s", "--cache-dir", str(tmp_path),
            "--json"]
    res = CliRunner().invoke(app, args, prog_name="sslinv")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)["results"][0]
    assert result["kind"] == "model" and result["status"] == "downloaded"
    assert result["files"][0]["sha256"] == sha256(data) and result["path"].endswith("dino-resnet50.backbone.pth")
    res = CliRunner().invoke(app, args, prog_name="sslinv")
    assert json.loads(res.stdout)["results"][0]["status"] == "cached"
    res = CliRunner().invoke(app, ["fetch-data", "--model", "byol", "--cache-dir", str(tmp_path)], prog_name="sslinv")
    assert res.exit_code == 4 and "JAX" in res.stderr
    res = CliRunner().invoke(app, ["fetch-data", "--model", "random", "--cache-dir", str(tmp_path)], prog_name="sslinv")
    assert res.exit_code == 2 and "nothing to download" in res.stderr
