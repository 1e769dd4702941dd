"""`sslinv pretrain`: presets, the MoCo module, exact resumption, export, errors.

Training runs use the tiny test backbone on 32 x 32 crops of a 24-image folder, so one
epoch (3 steps of 8 images) takes about a second on a CPU.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.pretrain import augment
from sslinv.pretrain.config import PretrainConfig, lr_at
from sslinv.pretrain.loop import run
from sslinv.pretrain.moco import MoCo, SplitBatchNorm2d, convert_split_bn, default_bn_splits
from sslinv.pretrain.state import read_log

TINY = ["--arch", "resnet_tiny", "--image-size", "32", "--batch-size", "8", "--moco-k", "16",
        "--device", "cpu", "--workers", "0", "--log-every-steps", "1"]


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny runs gain nothing from threads, and on a loaded machine two OpenMP threads
    waiting for each other make them 10-30x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def invoke(*args: str):
    return CliRunner().invoke(app, ["pretrain", *args], prog_name="sslinv")


def run_json(*args: str) -> dict:
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


def tiny_cfg(cache_dir, folder, name="tiny", **kw) -> PretrainConfig:
    base = dict(
        name=name, augment=list(augment.PRESETS["default"].augment), arch="resnet_tiny", cache_dir=cache_dir,
        data_root=cache_dir / "data", preset="default", data=str(folder), epochs=2, batch_size=8, moco_k=16,
        image_size=32, workers=0, device="cpu", log_every_steps=1,
    )
    base.update(kw)
    return PretrainConfig(**base)


def stop_at(at_epoch: int, at_step: int):
    """Interrupts the run (as Ctrl-C would) right after the checkpoint of (epoch, step)."""

    def on_checkpoint(path, epoch, step):
        if (epoch, step) == (at_epoch, at_step):
            raise KeyboardInterrupt

    return on_checkpoint


def curve(log_path) -> list[tuple]:
    return [(r["event"], r["global_step"], r["loss"], r["acc1"], r["acc5"], r["lr"]) for r in read_log(log_path)]


def assert_same_curve(a, b) -> None:
    assert [r[:2] for r in a] == [r[:2] for r in b]
    np.testing.assert_allclose([r[2:] for r in a], [r[2:] for r in b], rtol=1e-6, atol=1e-7)


def exported_query(path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in sd.items() if k.startswith("module.encoder_q.")}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


# ------------------------------------------------------------------------------ presets


def test_presets_are_the_protocol_pipelines():
    import torchvision.transforms as T

    def describe(pipe):
        out = []
        for t in pipe.transforms:
            if isinstance(t, T.RandomResizedCrop):
                out.append(("RRC", tuple(t.size), tuple(t.scale), t.interpolation))
            elif isinstance(t, T.RandomApply):
                (inner,) = t.transforms
                if isinstance(inner, T.ColorJitter):
                    out.append(("jitter", t.p, inner.brightness, inner.contrast, inner.saturation, inner.hue))
                else:
                    assert isinstance(inner, augment.PILGaussianBlur)
                    out.append(("blur", t.p, inner.sigma))
            elif isinstance(t, T.RandomGrayscale):
                out.append(("gray", t.p))
            elif isinstance(t, T.RandomHorizontalFlip):
                out.append(("hflip", t.p))
            elif isinstance(t, T.Resize):
                out.append(("resize", t.size))
            elif isinstance(t, T.CenterCrop):
                out.append(("center", tuple(t.size)))
            else:
                out.append((type(t).__name__,))
        return out

    rrc = ("RRC", (224, 224), (0.2, 1.0), T.InterpolationMode.BILINEAR)
    jitter = ("jitter", 0.8, (0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1))
    gray, blur, hflip = ("gray", 0.2), ("blur", 0.5, (0.1, 2.0)), ("hflip", 0.5)
    tail = ("PILToTensor",)
    expected = {
        "default": [rrc, jitter, gray, blur, hflip, tail],
        "ventral": [rrc, hflip, tail],
        "dorsal": [jitter, gray, blur, ("resize", 224), ("center", (224, 224)), tail],
        "default_w3": [rrc, jitter, gray, blur, hflip, tail],
    }
    assert list(augment.PRESETS) == list(expected)
    for name, want in expected.items():
        assert describe(augment.build_pipeline(augment.PRESETS[name].augment, 224)) == want, name
    assert augment.PRESETS["default_w3"].arch == "resnet50w3"
    assert {augment.PRESETS[n].arch for n in ("default", "ventral", "dorsal")} == {"resnet50"}


def test_cli_name_lists_match_the_registries():
    from sslinv.cli.pretrain import ARCH_NAMES, PRESET_NAMES
    from sslinv.models.resnet import ARCHS

    assert PRESET_NAMES == tuple(augment.PRESETS)
    assert set(ARCH_NAMES) <= set(ARCHS.names())


def test_views_are_seeded_by_image_and_epoch_and_leave_the_global_rng(image_folder):
    from PIL import Image

    img = Image.open(next(image_folder.rglob("*.jpg"))).convert("RGB")
    pipe = augment.build_pipeline(augment.PRESETS["default"].augment, 32)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    q1, k1 = augment.two_views(pipe, img, augment.view_seed(0, 0, 5))
    assert torch.equal(torch.get_rng_state(), before)
    q2, k2 = augment.two_views(pipe, img, augment.view_seed(0, 0, 5))
    assert torch.equal(q1, q2) and torch.equal(k1, k2)
    assert q1.dtype == torch.uint8 and q1.shape == (3, 32, 32)
    assert not torch.equal(q1, k1)  # the two views differ
    q3, _ = augment.two_views(pipe, img, augment.view_seed(0, 1, 5))
    assert not torch.equal(q1, q3)  # a new epoch draws new views


def test_custom_lists_checked_with_did_you_mean():
    assert augment.parse_augment(" resized_crop, blur ") == ["resized_crop", "blur"]
    with pytest.raises(Exception, match=r"Unknown augmentation 'hflip'\. Did you mean 'h_flip'"):
        augment.parse_augment("resized_crop,hflip")
    with pytest.raises(Exception, match="listed twice"):
        augment.parse_augment("blur,blur")
    pipe = augment.build_pipeline(["v_flip", "grayscale"], 48)
    names = [type(t).__name__ for t in pipe.transforms]
    assert names == ["RandomVerticalFlip", "RandomGrayscale", "Resize", "CenterCrop", "PILToTensor"]


# ------------------------------------------------------------------------------ MoCo


def test_split_bn_normalises_each_subbatch_and_keeps_bn_keys():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 5, 5) * 3 + 1
    split = SplitBatchNorm2d(4, 2)
    out = split(x)
    for g in range(2):
        part = x[g::2]
        want = (part - part.mean((0, 2, 3), keepdim=True)) / torch.sqrt(
            part.var((0, 2, 3), unbiased=False, keepdim=True) + split.eps)
        torch.testing.assert_close(out[g::2], want, rtol=1e-4, atol=1e-5)
    means = torch.stack([x[g::2].mean((0, 2, 3)) for g in range(2)]).mean(0)
    torch.testing.assert_close(split.running_mean, 0.1 * means)
    assert set(split.state_dict()) == set(torch.nn.BatchNorm2d(4).state_dict())
    split.eval()
    plain = torch.nn.BatchNorm2d(4).eval()
    plain.load_state_dict(split.state_dict())
    torch.testing.assert_close(split(x), plain(x))
    net = convert_split_bn(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)), 4)
    assert isinstance(net[1], SplitBatchNorm2d) and net[1].num_splits == 4


def test_default_bn_splits():
    assert default_bn_splits(256, 1) == 8  # 8 groups of 32, as 8 GPUs x 32
    assert default_bn_splits(64, 1) == 2
    assert default_bn_splits(8, 1) == 2
    assert default_bn_splits(30, 1) == 2
    assert default_bn_splits(1, 1) == 1
    assert default_bn_splits(32, 8) == 1  # real processes shuffle keys across devices


def test_moco_keys_unshuffle_queue_and_momentum():
    torch.manual_seed(0)
    model = MoCo("resnet_tiny", dim=8, K=10, m=0.9, T=0.2, bn_splits=2)
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    # In eval mode each key depends on its own image only: shuffling must be undone exactly.
    model.eval()
    k, k_all = model.keys(x)
    direct = torch.nn.functional.normalize(model.encoder_k(model._prep(x)).float(), dim=1)
    torch.testing.assert_close(k, direct)
    torch.testing.assert_close(k_all, direct)
    # Queue: oldest columns replaced, pointer wraps around.
    keys = torch.nn.functional.normalize(torch.randn(12, 8), dim=1)
    model.enqueue(keys[:4])
    model.enqueue(keys[4:8])
    model.enqueue(keys[8:12])
    assert int(model.queue_ptr) == 2
    torch.testing.assert_close(model.queue[:, :2], keys[10:12].T)
    torch.testing.assert_close(model.queue[:, 2:10], keys[2:10].T)
    # Momentum update: k <- m k + (1 - m) q.
    q0 = [p.detach().clone() for p in model.encoder_q.parameters()]
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(1.0)
    k0 = [p.detach().clone() for p in model.encoder_k.parameters()]
    model.momentum_update()
    for kp, k_old, q_old in zip(model.encoder_k.parameters(), k0, q0):
        torch.testing.assert_close(kp, 0.9 * k_old + 0.1 * (q_old + 1.0))
    # Logits: positive first, then K negatives; only the query encoder gets gradients.
    model.train()
    logits = model(x, x)
    assert logits.shape == (6, 11)
    logits[:, 0].sum().backward()
    assert all(p.grad is None for p in model.encoder_k.parameters())
    assert model.encoder_q.conv1.weight.grad is not None


def test_lr_schedule():
    cfg = PretrainConfig(name="x", augment=["h_flip"], arch="resnet18", cache_dir=None, data_root=None,
                         epochs=200, batch_size=512, lr=0.03)
    assert lr_at(cfg, 0) == pytest.approx(0.06)  # linear scaling: 0.03 per 256
    assert lr_at(cfg, 100) == pytest.approx(0.03)
    assert lr_at(cfg, 199) == pytest.approx(0.06 * 0.5 * (1 + np.cos(np.pi * 199 / 200)))
    cfg.cos = False
    assert [lr_at(cfg, e) for e in (119, 120, 160)] == pytest.approx([0.06, 0.006, 0.0006])


# ------------------------------------------------------------------------------ training


def test_one_epoch_exports_a_model_synthetic_loads_by_name(cache_dir, image_folder):
    from sslinv.models.checkpoints import load_checkpoint

    out = run_json("--augment", "resized_crop,color_jitter,h_flip", "--name", "mine", "--data", str(image_folder),
                   "--epochs", "1", *TINY)
    assert out["name"] == "mine" and out["epochs"] == 1 and out["resumed"] is False
    assert out["final"]["epoch"] == 1 and out["final"]["images"] == 24 and np.isfinite(out["final"]["loss"])
    export = cache_dir / "checkpoints" / "mine.pth.tar"
    assert out["checkpoint"] == str(export)
    ckpt = load_checkpoint(export)
    assert ckpt.layout == "moco[module.encoder_q.]" and ckpt.arch == "resnet_tiny"
    raw = torch.load(export, map_location="cpu", weights_only=True)
    assert raw["epoch"] == 1 and raw["optimizer"] is None
    assert raw["state_dict"]["module.queue"].shape == (128, 16)
    assert raw["state_dict"]["module.encoder_q.fc.2.weight"].shape == (128, 128)

    # The training checkpoint: MoCo layout plus everything resumption needs, weights_only.
    train_ckpt = torch.load(cache_dir / "pretrain" / "mine" / "checkpoint.pth.tar", map_location="cpu",
                            weights_only=True)
    assert {"epoch", "step", "arch", "state_dict", "optimizer", "scaler", "rng", "config", "meter"} <= set(train_ckpt)
    assert train_ckpt["epoch"] == 1 and train_ckpt["step"] == 0 and train_ckpt["optimizer"]["state"]
    assert train_ckpt["config"]["augment"] == ["resized_crop", "color_jitter", "h_flip"]
    assert {"torch", "shuffle", "numpy", "python"} <= set(train_ckpt["rng"])
    assert_same_weights(exported_query(export), {k: v for k, v in train_ckpt["state_dict"].items()
                                                 if k.startswith("module.encoder_q.")})

    res = CliRunner().invoke(app, ["synthetic", "--model", "mine", "--data", str(image_folder), "-t", "h_flip",
                                   "--num-images", "3", "--resize", "40", "--crop-size", "32", "--batch-size", "8",
                                   "--workers", "0", "--device", "cpu", "--json"], prog_name="sslinv")
    assert res.exit_code == 0, res.stderr
    syn = json.loads(res.stdout)
    member = syn["model_identity"]["members"][0]
    assert member["name"] == "mine" and member["arch"] == "resnet_tiny"

    # Rerunning a finished run trains nothing and reports the same final epoch.
    again = run_json("--augment", "resized_crop,color_jitter,h_flip", "--name", "mine", "--data", str(image_folder),
                     "--epochs", "1", *TINY)
    assert again["finished_before"] is True and again["final"]["loss"] == out["final"]["loss"]


def test_interrupted_runs_resume_to_the_uninterrupted_result(cache_dir, image_folder):
    full = run(tiny_cfg(cache_dir, image_folder, "full"))
    ref = curve(full.log)
    assert [r[0] for r in ref].count("epoch") == 2 and len(ref) == 6

    # Ctrl-C right after the epoch-1 checkpoint, then the same call again.
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(cache_dir, image_folder, "cut"), on_checkpoint=stop_at(1, 0))
    assert not (cache_dir / "checkpoints" / "cut.pth.tar").exists()
    resumed = run(tiny_cfg(cache_dir, image_folder, "cut", workers=1))  # worker count does not matter
    assert resumed.resumed and resumed.start_epoch == 1
    assert_same_curve(curve(resumed.log), ref)
    assert_same_weights(exported_query(resumed.checkpoint), exported_query(full.checkpoint))

    # Mid-epoch: checkpoints every step, stopped after step 2 of epoch 2.
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(cache_dir, image_folder, "mid", save_every_steps=1), on_checkpoint=stop_at(1, 2))
    mid = run(tiny_cfg(cache_dir, image_folder, "mid", save_every_steps=1, resume=True))
    assert mid.start_epoch == 1
    assert_same_curve(curve(mid.log), ref)
    assert_same_weights(exported_query(mid.checkpoint), exported_query(full.checkpoint))


def test_step_records_and_bars_stay_inside_the_epoch(cache_dir, image_folder):
    from sslinv.reporting import NullReporter

    class Recorder(NullReporter):
        def __init__(self):
            super().__init__()
            self.bars = []

        def bar(self, description, total, unit="items", completed=0):
            self.bars.append((description, total, unit, completed))
            return super().bar(description, total, unit, completed)

    # 3 steps per epoch, a step record every 2 global steps: global step 6 ends epoch 2,
    # so its epoch record stands in for the step record.
    rec = Recorder()
    out = run(tiny_cfg(cache_dir, image_folder, "sched", log_every_steps=2), rec)
    assert [(r["event"], r["global_step"]) for r in read_log(out.log)] == [
        ("step", 2), ("epoch", 3), ("step", 4), ("epoch", 6)]
    assert rec.bars == [("epoch 1/2", 3, "steps", 0), ("epoch 2/2", 3, "steps", 0)]
    assert [m.split("  ")[0] for m in rec.infos if m.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]

    # Resumed after step 2 of epoch 2: the bar starts there, the records are the same.
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(cache_dir, image_folder, "sched2", log_every_steps=2, save_every_steps=2),
            on_checkpoint=stop_at(1, 2))
    rec = Recorder()
    resumed = run(tiny_cfg(cache_dir, image_folder, "sched2", log_every_steps=2, save_every_steps=2), rec)
    assert rec.bars == [("epoch 2/2", 3, "steps", 2)]
    assert_same_curve(curve(resumed.log), curve(out.log))


def test_extending_a_run_from_the_cli_continues_it(cache_dir, image_folder):
    common = ("--model", "ventral", "--data", str(image_folder), *TINY)
    two = run_json(*common, "--name", "two", "--epochs", "2")
    one = run_json(*common, "--name", "steps", "--epochs", "1")
    assert one["final"]["epoch"] == 1
    more = run_json(*common, "--name", "steps", "--epochs", "2")
    assert more["resumed"] is True and more["start_epoch"] == 1
    assert_same_curve(curve(more["log"]), curve(two["log"]))
    assert_same_weights(exported_query(more["checkpoint"]), exported_query(two["checkpoint"]))


def test_corrupt_image_one_line_error_and_skip_bad(cache_dir, image_folder):
    bad = image_folder / "class1" / "img_000.jpg"
    bad.write_bytes(b"not a jpeg")
    args = ("--model", "dorsal", "--name", "d", "--data", str(image_folder), "--epochs", "1", *TINY)
    res = invoke(*args)
    assert res.exit_code == 3 and str(bad) in res.stderr and "--skip-bad" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error:") and "Traceback" not in res.stderr
    with pytest.warns(UserWarning, match="skipped unreadable image"):
        out = run_json(*args, "--skip-bad")
    assert out["final"]["images"] == 24


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "args, code, pattern",
    [
        (["--model", "ventrl"], 2, r"Unknown preset 'ventrl'\. Did you mean 'ventral'"),
        (["--augment", "resized_crop,blurr", "--name", "x"], 2, r"Unknown augmentation 'blurr'\. Did you mean 'blur'"),
        (["--augment", "blur"], 2, r"--augment needs --name"),
        (["--model", "default", "--augment", "blur"], 2, r"either --model PRESET or --augment"),
        (["--model", "default", "--arch", "resnet5"], 2, r"Unknown architecture 'resnet5'\. Did you mean"),
        (["--model", "default", "--name", "random-tiny"], 2, r"'random-tiny' is a built-in model"),
        (["--model", "default", "--name", "a+b"], 2, r"cannot name a model file"),
        (["--model", "default", "--batch-size", "32", "--moco-k", "64"], 3, r"fewer than one batch of 32"),
        (["--model", "default", "--moco-k", "4"], 2, r"--moco-k 4 is smaller than one global batch"),
        (["--model", "default", "--bn-splits", "3"], 2, r"--bn-splits 3 does not divide"),
        (["--model", "default", "--precision", "fp16"], 2, r"fp16 needs a GPU"),
        (["--model", "default", "--resume"], 4, r"Nothing to resume.*Leave out --resume"),
    ],
)
def test_errors_are_one_line_with_exit_codes(cache_dir, image_folder, args, code, pattern):
    res = invoke(*TINY, *args, "--data", str(image_folder), "--epochs", "1")
    assert res.exit_code == code, res.stderr + res.stdout
    assert re.search(pattern, res.stderr), res.stderr
    assert res.stderr.startswith("error:") and "Traceback" not in res.stderr


def test_missing_imagenet_train_names_path_and_fix(cache_dir, tmp_path):
    res = invoke("--model", "default", "--data-root", str(tmp_path / "nodata"), *TINY)
    assert res.exit_code == 3
    assert str(tmp_path / "nodata" / "imagenet" / "train") in res.stderr
    assert "--data demo" in res.stderr and "--data PATH" in res.stderr


def test_changed_recipe_refused_and_force_starts_over(cache_dir, image_folder):
    args = ("--model", "ventral", "--data", str(image_folder), "--epochs", "1", *TINY)
    first = run_json(*args)
    res = invoke(*args, "--lr", "0.06")
    assert res.exit_code == 2
    assert "--lr 0.03 there, 0.06 now" in res.stderr and "--force" in res.stderr and "--name NEW" in res.stderr
    # The precision is part of the recipe too: resuming at another one is refused.
    res = invoke(*[a if a != "1" else "2" for a in args], "--precision", "bf16")
    assert res.exit_code == 2 and "--precision 'fp32' there, 'bf16' now" in res.stderr
    forced = run_json(*args, "--lr", "0.06", "--force")
    assert forced["resumed"] is False and forced["final"]["lr"] == pytest.approx(0.06 * 8 / 256)
    assert forced["final"]["loss"] != first["final"]["loss"]


def test_existing_model_of_another_origin_is_not_overwritten(cache_dir, image_folder):
    from sslinv.models.checkpoints import save_moco_checkpoint
    from sslinv.models.load import random_backbone

    target = cache_dir / "checkpoints" / "ventral.pth.tar"
    save_moco_checkpoint(target, random_backbone("resnet_tiny", 1).state_dict(), "resnet_tiny")
    before = target.read_bytes()
    res = invoke("--model", "ventral", "--data", str(image_folder), "--epochs", "1", *TINY)
    assert res.exit_code == 2 and str(target) in res.stderr and "--force" in res.stderr
    assert target.read_bytes() == before


def test_help_does_not_import_torch_and_completion():
    import subprocess
    import sys

    from sslinv.cli.pretrain import complete_augment, complete_preset

    code = (
        "import sys\nfrom sslinv.cli.main import app\n"
        "try:\n    app(['pretrain', '--help'], prog_name='sslinv')\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert complete_preset("d") == ["default", "dorsal", "default_w3"]
    assert complete_augment("resized_crop,h") == ["resized_crop,h_flip"]
    assert "resized_crop" not in complete_augment("resized_crop,")[0].split(",")[1:]
