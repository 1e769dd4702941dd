"""Our ResNets are torchvision's, tensor for tensor and output for output.

``sslinv.models.resnet`` writes its own blocks so that evaluation commands need not
import torchvision (about a second of start-up). These tests hold it to torchvision's
layout: after the same ``torch.manual_seed`` the state dicts are equal (same keys in
the same order, ``torch.equal`` values, the same RNG state afterwards, so construction
draws the same numbers), the forward outputs are equal, and ``zero_init_residual``
zeroes the same BatchNorms. torchvision stays a dependency (augmentations), so the
tests may import it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from sslinv.models import ARCHS, ResNet
from sslinv.models.resnet import BasicBlock, Bottleneck

REPO = Path(__file__).resolve().parents[1]
#: Every registered architecture that torchvision also builds under the same name.
TV_ARCHS = [name for name in ARCHS.names() if callable(getattr(torchvision.models, name, None))]


def build_both(name: str, seed: int, **kwargs) -> tuple[nn.Module, nn.Module]:
    """(ours, torchvision's), each built right after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    ours = ARCHS.get(name)() if not kwargs else ResNet(_block(name), ARCHS.get(name).layers, **kwargs)
    ours_rng = torch.get_rng_state()
    torch.manual_seed(seed)
    theirs = getattr(torchvision.models, name)(weights=None, **kwargs)
    assert torch.equal(ours_rng, torch.get_rng_state()), f"{name}: construction drew a different number of values"
    return ours, theirs


def _block(name: str) -> type[BasicBlock] | type[Bottleneck]:
    return BasicBlock if ARCHS.get(name).block == "basic" else Bottleneck


def assert_same_state(ours: nn.Module, theirs: nn.Module) -> None:
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)  # same keys, same order
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


def test_torchvision_names_are_covered() -> None:
    assert TV_ARCHS == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


@pytest.mark.parametrize("name", TV_ARCHS)
def test_state_dict_equals_torchvision(name: str) -> None:
    ours, theirs = build_both(name, seed=1 + TV_ARCHS.index(name))
    assert_same_state(ours, theirs)
    # The same module tree: names, and each block's stride and expansion.
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    for (n, m), (_, t) in zip(ours.named_modules(), theirs.named_modules(), strict=True):
        assert type(m).__name__ == type(t).__name__, n
        if isinstance(m, (BasicBlock, Bottleneck)):
            assert (m.stride, m.expansion) == (t.stride, t.expansion), n


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_forward_equals_torchvision(name: str) -> None:
    ours, theirs = build_both(name, seed=3)
    # Non-trivial BatchNorm statistics and affine parameters, the same in both.
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for m in ours.modules():
            if isinstance(m, nn.BatchNorm2d):
                for t in (m.weight, m.bias, m.running_mean):
                    t.copy_(torch.randn(t.shape, generator=gen) * 0.1 + (1 if t is m.weight else 0))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))
        # Training mode too: batch statistics, and the running statistics they update.
        assert torch.equal(ours.train()(x), theirs.train()(x))
    assert_same_state(ours, theirs)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_zero_init_residual(name: str) -> None:
    ours, theirs = build_both(name, seed=0, zero_init_residual=True)
    assert_same_state(ours, theirs)
    last = "bn2" if ARCHS.get(name).block == "basic" else "bn3"
    blocks = [m for m in ours.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(blocks) == sum(ARCHS.get(name).layers)
    for block in blocks:
        assert torch.count_nonzero(getattr(block, last).weight) == 0
        assert torch.all(block.bn1.weight == 1)  # only the last BN of each block is zeroed
    assert torch.all(ours.bn1.weight == 1)
    # ... and the default leaves them at one.
    plain, _ = build_both(name, seed=0)
    assert all(torch.all(getattr(m, last).weight == 1) for m in plain.modules() if isinstance(m, type(blocks[0])))


def test_evaluation_imports_do_not_import_torchvision(tmp_path: Path) -> None:
    """Importing the model and feature code, and building a model, leaves torchvision out."""
    code = (
        "import sys\n"
        "import sslinv.models, sslinv.models.load, sslinv.evaluate.features\n"
        "from sslinv.models import ARCHS, load_model\n"
        "ARCHS.get('resnet18')()\n"
        f"load_model('random-tiny', {str(tmp_path)!r})\n"
        "print(sslinv.__file__)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torchvision'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, loaded = proc.stdout.strip().splitlines()[-2:]
    assert Path(where).is_relative_to(REPO)  # this checkout's sslinv, not another install
    assert loaded == "[]"


def test_checkpoint_loads_without_heavy_imports(tmp_path: Path) -> None:
    """Loading a ResNet checkpoint by path gives its weights as float32 (a half-precision
    file, a missing ``num_batches_tracked``) and imports neither torchvision nor what
    meta-device kernels pull in (torch._dynamo, sympy: about 1.5 s together)."""
    torch.manual_seed(0)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in torchvision.models.resnet18().state_dict().items()
          if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "r18.pth")
    code = (
        "import sys, torch\n"
        "from sslinv.models import load_model\n"
        f"model, _ = load_model({str(tmp_path / 'r18.pth')!r}, {str(tmp_path / 'cache')!r})\n"
        f"sd = torch.load({str(tmp_path / 'r18.pth')!r}, weights_only=True)\n"
        "got = {k.removeprefix('backbone.'): v for k, v in model.state_dict().items()}\n"
        "same = all(torch.equal(got[k], v.float()) for k, v in sd.items() if not k.startswith('fc.'))\n"
        "dtypes = {v.dtype for k, v in got.items() if not k.endswith('num_batches_tracked')}\n"
        "print(same, dtypes == {torch.float32})\n"
        "print(sorted(m for m in ('torchvision', 'torch._dynamo', 'sympy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-2:] == ["True True", "[]"]


def test_meta_skeleton_does_not_import_dynamo():
    """Building an architecture on the meta device (checkpoint shape checks, loading)
    skips the random initialisation, whose meta kernels import torch._dynamo."""
    code = (
        "import sys, torch\n"
        "from sslinv.models.resnet import ARCHS\n"
        "with torch.device('meta'):\n"
        "    net = ARCHS.get('resnet50')()\n"
        "print(net.conv1.weight.is_meta, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]
