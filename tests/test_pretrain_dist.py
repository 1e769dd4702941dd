"""`sslinv pretrain --nproc-per-node 2`: two gloo processes on the CPU, through torchrun.

Slow (three torchrun launches of two processes each): run with ``pytest -m slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.pretrain.state import read_log

TINY = ["--arch", "resnet_tiny", "--image-size", "32", "--batch-size", "8", "--moco-k", "16",
        "--device", "cpu", "--workers", "0", "--log-every-steps", "1"]


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "sslinv", "pretrain", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def _curve(log):
    return [(r["event"], r["global_step"], r["loss"], r["acc1"], r["lr"]) for r in read_log(log)]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_gloo_processes_train_resume_and_export(cache_dir, image_folder):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLINV_CACHE_DIR": str(cache_dir)}
    common = ["--model", "default", "--data", str(image_folder), "--nproc-per-node", "2", "--json", *TINY]

    # Uninterrupted: two epochs.
    two = _cli([*common, "--name", "two", "--epochs", "2"], env)
    assert two.returncode == 0, two.stderr
    full = json.loads(two.stdout)  # only rank 0 printed
    assert full["world_size"] == 2 and full["final"]["epoch"] == 2 and full["final"]["images"] == 24
    config = json.loads((cache_dir / "pretrain" / "two" / "config.json").read_text())
    assert config["world_size"] == 2 and config["bn_splits"] == 1  # real processes shuffle the keys

    # Stopped after epoch 1, then resumed to epoch 2: the same loss curve and weights.
    one = _cli([*common, "--name", "cut", "--epochs", "1"], env)
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["final"]["epoch"] == 1
    more = _cli([*common, "--name", "cut", "--epochs", "2"], env)
    assert more.returncode == 0, more.stderr
    resumed = json.loads(more.stdout)
    assert resumed["resumed"] is True and resumed["start_epoch"] == 1
    a, b = _curve(full["log"]), _curve(resumed["log"])
    assert [r[:2] for r in a] == [r[:2] for r in b]
    np.testing.assert_allclose([r[2:] for r in a], [r[2:] for r in b], rtol=1e-5, atol=1e-6)
    wa = torch.load(full["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    wb = torch.load(resumed["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    for k in wa:
        if k.startswith("module.encoder_q.") and wa[k].is_floating_point():
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)

    # The exported model loads by name in `sslinv synthetic`.
    res = CliRunner().invoke(app, ["synthetic", "--model", "two", "--data", str(image_folder), "-t", "grayscale",
                                   "--num-images", "3", "--resize", "40", "--crop-size", "32", "--batch-size", "8",
                                   "--workers", "0", "--device", "cpu", "--json"], prog_name="sslinv")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["model_identity"]["members"][0]["arch"] == "resnet_tiny"
