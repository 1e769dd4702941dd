"""``--model timm:<name>``: offline, against a Hugging Face cache laid out by the test.

huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when it is imported, so each check runs
in a fresh interpreter with those variables set (no network is ever used).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm

REPO = Path(__file__).resolve().parents[1]
NAME = "test_vit.r160_in1k"  # timm's own tiny test ViT: width 64, 6 blocks, 2 heads, 160 px
COMMIT = "0123456789abcdef0123456789abcdef01234567"

SCRIPT = """
import json, sys, torch
from sslinv.errors import SslinvError
from sslinv.models.fusion import load_model
try:
    model, ident = load_model(sys.argv[1], sys.argv[2])
except SslinvError as e:
    print(json.dumps({"error": str(e), "type": type(e).__name__}))
    raise SystemExit(0)
x = torch.randint(0, 256, (2, 3, 160, 160), dtype=torch.uint8)
with torch.no_grad():
    f = model.eval()(x.float())
    import timm
    ref = timm.create_model("test_vit", pretrained=False, num_classes=0).eval()
    sd = torch.load(sys.argv[3], weights_only=True)
    ref.load_state_dict({k: v for k, v in sd.items() if not k.startswith("head.")})
    r = ref.forward_features((x.float() / 255 - 0.5) / 0.5)[:, 0]
print(json.dumps({"identity": ident, "max_diff": float((f - r).abs().max()), "shape": list(f.shape)}))
"""


def run(spec: str, hf_home: Path, cache: Path, weights: Path) -> dict:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, spec, str(cache), str(weights)],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def lay_out_hub_cache(hf_home: Path, weights_pt: Path) -> Path:
    """``models--timm--<name>/{refs/main, snapshots/<commit>/model.safetensors}``."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model("test_vit", pretrained=False)  # with its 1000-class head, as published
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    torch.save(sd, weights_pt)
    repo = hf_home / "hub" / f"models--timm--{NAME}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    save_file(sd, str(snap / "model.safetensors"))
    return snap / "model.safetensors"


def test_hub_model_offline_from_the_cache(tmp_path):
    hf_home, cache = tmp_path / "hf", tmp_path / "cache"
    weights = tmp_path / "w.pt"

    # Not in the cache: a one-line error naming the file needed and the way to get it.
    missing = run(f"timm:{NAME}", hf_home, cache, weights)
    assert missing["type"] == "CheckpointError"
    assert f"timm/{NAME}/model.safetensors" in missing["error"] and "HF_HUB_OFFLINE" in missing["error"]
    assert "\n" not in missing["error"]

    file = lay_out_hub_cache(hf_home, weights)
    out = run(f"timm:{NAME}", hf_home, cache, weights)
    member = out["identity"]["members"][0]
    assert member["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert member["arch"] == NAME and member["family"] == "vit" and member["layout"] == "timm-hub"
    assert member["preprocessing"]["mean"] == [0.5, 0.5, 0.5] and member["preprocessing"]["input_size"] == 160
    assert out["shape"] == [2, 64] and out["max_diff"] < 1e-4


def test_unknown_hub_names():
    from sslinv.errors import UnknownNameError
    from sslinv.models.hub import check_hub_name

    with pytest.raises(UnknownNameError, match=r"Unknown timm model 'vit_smal_patch16_224'\. Did you mean"):
        check_hub_name("timm:vit_smal_patch16_224")
    with pytest.raises(UnknownNameError, match=r"has no weights on the Hugging Face hub"):
        check_hub_name("timm:test_vit.no_such_tag")
