"""GPU and torchrun paths that a CPU can check: one GPU per rank, fp32 without TF32,
cache keys per device kind, pinned memory by the chosen device, workers per rank, the
/dev/shm check, and (two gloo processes) object collectives that outlive a lock wait
and a cache hit on a node that does not see rank 0's file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from ranks import free_port, rank_env
from typer.testing import CliRunner

from sslinv import cache, runtime
from sslinv.distributed import World, world_from_env
from sslinv.errors import DeviceError, UsageError
from sslinv.runtime import device_for_rank

CUDA, CUDA0 = torch.device("cuda"), torch.device("cuda", 0)


def two_local(rank: int = 1, local: int = 2) -> World:
    return World(rank=rank, world_size=local, local_rank=rank, local_world_size=local)


# ------------------------------------------------------------------ device per rank


def test_each_local_rank_gets_its_own_gpu():
    assert device_for_rank(CUDA, World(), 4) == CUDA0
    assert device_for_rank(CUDA, two_local(1), 2) == torch.device("cuda", 1)
    assert device_for_rank(torch.device("cuda", 3), World(), 4) == torch.device("cuda", 3)
    # One process per node on several nodes may name its GPU.
    multinode = World(rank=1, world_size=2, local_rank=0, local_world_size=1)
    assert device_for_rank(torch.device("cuda", 1), multinode, 2) == torch.device("cuda", 1)


def test_a_named_gpu_with_several_local_processes_is_an_error():
    with pytest.raises(DeviceError, match=r"--device cuda:0 names one GPU, but 2 processes .* --device cuda"):
        device_for_rank(CUDA0, two_local(0), 8)


def test_more_local_processes_than_gpus_is_an_error():
    with pytest.raises(DeviceError, match=r"4 processes run on this node but only 2 GPU\(s\).*--nproc-per-node 2"):
        device_for_rank(CUDA, two_local(0, local=4), 2)
    with pytest.raises(DeviceError, match="only 2 GPU"):
        device_for_rank(torch.device("cuda", 2), World(), 2)


def test_world_without_local_world_size_assumes_one_node():
    world = world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert world.local_world_size == 2
    assert world_from_env({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}).local_world_size == 2


@pytest.fixture
def two_ranks_one_gpu(monkeypatch):
    """Rank 0 of two torchrun processes on a node with one (faked) GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: pytest.fail("set_device before the check"))
    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(k, v)


COMMANDS = {
    "synthetic": ["--model", "supervised", "-t", "rotation"],
    "realworld": ["--model", "supervised", "-d", "COIL100"],
    "causal3dident": ["--model", "supervised", "-t", "all"],
    "downstream": ["--model", "supervised", "-d", "all"],
    "pretrain": ["--model", "default"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_every_command_checks_the_device_per_rank(two_ranks_one_gpu, cache_dir, command, device):
    from sslinv.cli.main import app

    res = CliRunner().invoke(app, [command, *COMMANDS[command], "--device", device], prog_name="sslinv")
    assert res.exit_code == DeviceError.exit_code, (res.exit_code, res.output)
    assert "GPU" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


# ------------------------------------------------------------------------- precision


@pytest.fixture
def restore_fp32_modes():
    saved = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
             torch.backends.cudnn.rnn.fp32_precision)
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision, \
        torch.backends.cudnn.rnn.fp32_precision = saved


@pytest.mark.parametrize("precision, mode", [("fp32", "ieee"), ("bf16", "ieee"), ("fp16", "ieee"), ("tf32", "tf32")])
def test_fp32_turns_tf32_off(restore_fp32_modes, precision, mode):
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # cuDNN's default for convolutions
    runtime.set_precision(precision)
    assert torch.backends.cuda.matmul.fp32_precision == mode
    assert torch.backends.cudnn.conv.fp32_precision == mode
    assert torch.backends.cudnn.rnn.fp32_precision == mode


def test_tf32_scope_is_tf32_inside_only(restore_fp32_modes):
    runtime.set_precision("fp32")
    with runtime.tf32_scope("tf32"):
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    with runtime.tf32_scope("fp32"):
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"


def test_evaluations_run_only_the_model_in_tf32(restore_fp32_modes, tmp_path):
    """--precision tf32: the model's forward pass in TF32; the renderer, whitening and the
    probes (everything else the process computes) in true fp32."""
    from sslinv.evaluate.common import Runtime, start
    from sslinv.evaluate.features import Extractor

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.backends.cuda.matmul.fp32_precision)
            return x.flatten(1)[:, :4]

    torch.backends.cuda.matmul.fp32_precision = "tf32"
    start(Runtime(model="m", cache_dir=tmp_path, data_root=tmp_path, device="cpu", precision="tf32"))
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    ex = Extractor(Probe(), torch.device("cpu"), "tf32")
    ex(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    assert seen == ["tf32"] and torch.backends.cuda.matmul.fp32_precision == "ieee"
    Extractor(Probe(), torch.device("cpu"), "fp32")(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    assert seen == ["tf32", "ieee"]


def test_tf32_is_a_precision_without_autocast():
    assert runtime.autocast_dtype("tf32") is None
    with pytest.raises(UsageError, match="tf32"):
        runtime.autocast_dtype("fp64")


def test_device_kind_is_part_of_the_statistics_and_feature_keys(image_folder):
    from sslinv.data.folder import scan_pool
    from sslinv.evaluate.stats import stats_key

    pool = scan_pool(image_folder)
    ident = {"spec": "m", "sha256": "0" * 64}
    on_cpu = stats_key(ident, pool, 40, 32, "fp32", False, device="cpu")
    on_gpu = stats_key(ident, pool, 40, 32, "fp32", False, device="cuda:1")
    assert on_cpu["device"] == "cpu" and on_gpu["device"] == "cuda"
    assert cache.key_hash(on_cpu) != cache.key_hash(on_gpu)
    assert runtime.compute_mode(torch.device("cuda", 3), "bf16") == {"device": "cuda", "precision": "bf16"}


def test_feature_cache_key_records_device_and_precision(tmp_path, monkeypatch):
    from sslinv.evaluate import features

    keys = []
    monkeypatch.setattr(features, "cached_features", lambda root, key, compute, world: (keys.append(key), (0, True))[1])

    class M:
        spec, identity, model = "m", {"spec": "m", "dim": 4}, None

    for device in ("cpu", "cuda"):
        features.member_features([M()], [], {"name": "d"}, {"resize": 8, "crop": 8}, cache_root=tmp_path,
                                 precision="fp32", batch_size=2, device=torch.device(device), workers=0,
                                 world=World(), reporter=None, label="x")
    assert [k["pipeline"]["device"] for k in keys] == ["cpu", "cuda"]
    assert all(k["pipeline"]["precision"] == "fp32" for k in keys)


# --------------------------------------------------------------------------- loaders


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(3, 8, 8, dtype=torch.uint8)


def test_pin_memory_follows_the_chosen_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU exists, the run uses the CPU
    assert runtime.make_loader(Items(), 0, 2, device=torch.device("cpu")).pin_memory is False
    assert runtime.make_loader(Items(), 0, 2).pin_memory is False
    assert runtime.make_loader(Items(), 0, 2, device=torch.device("cuda", 0)).pin_memory is True


def test_loader_refuses_batches_that_do_not_fit_in_shm():
    free = cache.Path("/dev/shm")
    if not free.is_dir():
        pytest.skip("no /dev/shm here")
    huge = runtime.image_batch_bytes(1 << 20, 1024)  # 3 TiB per batch
    with pytest.raises(UsageError, match=r"--workers .*--ipc=host.*--shm-size"):
        runtime.make_loader(Items(), 2, 2, batch_bytes=huge)
    assert runtime.make_loader(Items(), 2, 2, batch_bytes=runtime.image_batch_bytes(2, 8)).num_workers == 2


def test_default_workers_share_the_usable_cpus_among_local_ranks(monkeypatch):
    import sslinv.cpus

    monkeypatch.setattr(sslinv.cpus, "usable_cpus", lambda root="/", affinity=None: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert runtime.default_workers(torch.device("cuda", 0)) == 3  # 16 / 4 ranks, one core kept
    assert runtime.default_workers(torch.device("cpu")) == 0  # threads of the main process instead
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert runtime.default_workers(torch.device("cuda", 0)) == 8  # at most 8
    from sslinv.pretrain.data import train_workers

    assert train_workers(torch.device("cuda", 0)) == 15
    assert train_workers(torch.device("cpu")) == 1  # pretraining keeps one worker process on the CPU


# --------------------------------------------------------------- two gloo processes

RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from datetime import timedelta
    from pathlib import Path
    import torch
    from sslinv import cache, distributed

    tmp = Path(sys.argv[1])
    world = distributed.world_from_env()
    distributed.init(world, "cpu", timeout=timedelta(seconds=float(os.environ["MAIN_TIMEOUT"])))
    out = {}

    def never():
        raise AssertionError("computed on a cache hit")

    save = lambda v, p: torch.save(v, p)
    load = lambda p: torch.load(p, weights_only=True)

    # 1. A hit on rank 0's node only (no shared cache): rank 1 gets rank 0's value.
    own = tmp / f"node{world.rank}" / "entry.pt"
    value, hit = cache.cached(own, {"k": 1}, never, save, load, world=world)
    out["hit"] = [hit, value.tolist()]

    # 2. Rank 0 waits for a lock held by another job, longer than the main group's timeout.
    (tmp / f"ready{world.rank}").touch()
    t = time.monotonic()
    value, hit = cache.cached(tmp / "locked.pt", {"k": 2}, lambda: torch.arange(3), save, load, world=world)
    out["locked"] = [hit, value.tolist(), time.monotonic() - t]
    distributed.shutdown(world)
    print(json.dumps(out))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_gloo_processes_cache_hit_broadcast_and_lock_wait(tmp_path):
    from sslinv.distributed import World

    # The entry exists on rank 0's node only.
    cache.cached(tmp_path / "node0" / "entry.pt", {"k": 1}, lambda: torch.tensor([7, 8]),
                 lambda v, p: torch.save(v, p), lambda p: torch.load(p, weights_only=True), world=World())
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    port, timeout = free_port(), 3.0
    held = cache.lock(tmp_path / "locked.pt")  # "another job" computing the same entry
    held.acquire()
    procs = []
    try:
        for rank in range(2):
            env = rank_env(rank, 2, port, MAIN_TIMEOUT=str(timeout))
            procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 240
        while not all((tmp_path / f"ready{r}").exists() for r in range(2)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.1)
        time.sleep(3 * timeout)  # rank 1 waits in a broadcast for rank 0, which waits for the lock
    finally:
        held.release()
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    results = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outs]
    for r in results:
        assert r["hit"] == [True, [7, 8]]
        assert r["locked"][:2] == [False, [0, 1, 2]]
    assert min(r["locked"][2] for r in results) > 2 * timeout  # both really waited past the timeout
    assert not (tmp_path / "node1" / "entry.pt").exists()  # rank 1 wrote nothing
