"""Issue 12 "make the GPU the limit", on the CPU: the batch size is in no cache key, and
with two gloo processes extraction gives rank 0 alone the same features as one process,
non-finite features stop both ranks naming the first bad image, the whitening is
computed once and broadcast, and a features cache hit reaches rank 0 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from ranks import free_port, rank_env
from typer.testing import CliRunner

from sslinv.cli.main import app


def _json(*args: str) -> dict:
    res = CliRunner().invoke(app, [*args, "--json"], prog_name="sslinv")
    assert res.exit_code == 0, res.stderr + res.stdout
    return json.loads(res.stdout)


# ----------------------------------------------------------------- batch size


def test_batch_size_is_in_no_cache_key(cache_dir, image_folder, tmp_path):
    from test_downstream_data import write_cifar10

    synth = ["synthetic", "--model", "random-tiny", "--data", str(image_folder), "-t", "rotation", "--k", "3",
             "--num-images", "5", "--resize", "40", "--crop-size", "32", "--workers", "0", "--device", "cpu"]
    first = _json(*synth)  # the CPU default, 64
    rec = json.loads(Path(first["results"][0]["result_file"]).read_text())
    assert rec["config"]["batch_size"] == 64  # the batch size used is recorded, not keyed
    again = _json(*synth, "--batch-size", "7")
    assert again["results"][0]["cached"] is True
    forced = _json(*synth, "--batch-size", "7", "--force")  # results recomputed, statistics reused
    assert forced["results"][0]["cached"] is False and forced["statistics"]["cached"] is True

    root = tmp_path / "data"
    write_cifar10(root, per_batch=6, n_test=12)
    down = ["downstream", "--model", "random-tiny", "--dataset", "CIFAR10", "--data-root", str(root),
            "--probe", "knn", "--resize", "32", "--crop-size", "32", "--workers", "0", "--device", "cpu"]
    _json(*down)
    forced = _json(*down, "--batch-size", "5", "--force")  # results recomputed, features reused
    rec = json.loads(Path(forced["results"][0]["result_file"]).read_text())
    member = rec["features"]["members"][0]
    assert member["trainval"]["cached"] is True and member["test"]["cached"] is True


# ---------------------------------------------------------- two gloo processes

RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from featurefakes import Items, Net
    from sslinv import distributed
    from sslinv.errors import NonFiniteError
    from sslinv.evaluate import stats
    from sslinv.evaluate.features import Extractor, cached_features, extract, features_key, features_path

    tmp = Path(sys.argv[1])
    world = distributed.world_from_env()
    distributed.init(world, "cpu")
    out = {}
    cpu = torch.device("cpu")

    def save(name, value):
        if value is not None:
            torch.save(value, tmp / f"{name}-rank{world.rank}.pt")
        out[name] = None if value is None else list(value.shape)

    # 1. Uneven shards (11 rows, 2 ranks) and a rank without rows (1 row): rank 0 only.
    for n in (11, 1):
        save(f"extract{n}", extract(Extractor(Net(), cpu), Items(n), batch_size=2, workers=0, world=world))

    # 2. NaN on rank 1's shard only (item 5): both ranks stop, naming img5.png; nothing cached.
    key = features_key({"spec": "net"}, {"name": "items"}, {"crop": 8})
    try:
        cached_features(tmp / "cache", key, lambda: extract(
            Extractor(Net(bad=(5, 9)), cpu, name="net"), Items(12), batch_size=2, workers=0, world=world), world)
        out["nan"] = "no error"
    except NonFiniteError as exc:
        out["nan"] = str(exc)
    out["nan_cached"] = features_path(tmp / "cache", key).exists()

    # 3. A features cache hit seen by rank 0's node only: rank 0 gets it, rank 1 None.
    def never():
        raise AssertionError("computed on a cache hit")
    value, hit = cached_features(tmp / f"node{world.rank}", key, never, world)
    out["hit"] = [hit, None if value is None else value.tolist()]

    # 4. One eigendecomposition, on rank 0: rank 1 never calls whitening_from_stats.
    if world.rank == 1:
        def refuse(*a, **k):
            raise AssertionError("rank 1 computed the whitening")
        stats.whitening_from_stats = refuse
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    w = stats.whitening_from_stats(x.mean(0), torch.cov(x.T), 50) if world.is_main else None
    w = stats.share_whitening(world, w)
    torch.save({"mu": w.mu, "P": w.P, "W": w.W, "reg": w.regularisation}, tmp / f"whitening-rank{world.rank}.pt")

    distributed.shutdown(world)
    print(json.dumps(out))
    """
)


def _two_ranks(script: Path, *args: str) -> list[dict]:
    port = free_port()
    procs = []
    for rank in range(2):
        env = rank_env(rank, 2, port)
        procs.append(subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    return [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outs]


@pytest.mark.timeout(300)
def test_two_gloo_ranks_extract_to_rank0_stop_on_nan_and_share_one_whitening(tmp_path):
    from featurefakes import Items, Net

    from sslinv.distributed import World
    from sslinv.evaluate.features import Extractor, cached_features, extract, features_key

    # The entry of step 3 exists on rank 0's node only.
    key = features_key({"spec": "net"}, {"name": "items"}, {"crop": 8})
    cached_features(tmp_path / "node0", key, lambda: torch.arange(6.0).view(3, 2), World())
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    r0, r1 = _two_ranks(script, str(tmp_path))

    for n in (11, 1):  # rank 0 holds what one process extracts; rank 1 nothing
        one = extract(Extractor(Net(), torch.device("cpu")), Items(n), batch_size=2, workers=0, world=World())
        assert r0[f"extract{n}"] == [n, 8] and r1[f"extract{n}"] is None
        # Same rows in the same order; the values agree to rounding (a convolution's
        # kernel may depend on the batch's make-up and the thread count, e.g. on AVX-512).
        torch.testing.assert_close(torch.load(tmp_path / f"extract{n}-rank0.pt"), one, rtol=1e-5, atol=1e-6)

    for r in (r0, r1):
        assert "net gave non-finite features" in r["nan"] and "the first img5.png" in r["nan"], r["nan"]
        assert "nothing was cached" in r["nan"] and r["nan_cached"] is False
    assert r0["hit"] == [True, [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]] and r1["hit"] == [True, None]
    assert not (tmp_path / "node1").exists()  # rank 1 neither wrote nor needed the entry

    w0, w1 = (torch.load(tmp_path / f"whitening-rank{r}.pt") for r in (0, 1))
    for name in ("mu", "P", "W"):
        assert w0[name].dtype == torch.float64 and torch.equal(w0[name], w1[name])  # bit-identical
    assert w0["reg"] == w1["reg"]


# -------------------------------------------- the commands under torchrun, 1 vs 2


def _cli(args: list[str], cache: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLINV_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-m", "sslinv", *args, "--json"], env=env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # only rank 0 printed


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_processes_match_one_for_the_feature_commands(tmp_path, image_folder):
    """Features on rank 0 only (causal3dident with a fusion, downstream) and whitening
    shared from rank 0 and applied on the device (realworld): the numbers of one process."""
    from test_causal3dident import write_causal3dident
    from test_downstream_data import write_cifar10
    from test_realworld import Painter, fake_coil100

    root = tmp_path / "data"
    write_causal3dident(root, per_class=(8, 3), classes=3)
    write_cifar10(root, per_batch=6, n_test=12)
    fake_coil100(root, Painter(varied=True), n=3)
    common = ["--data-root", str(root), "--resize", "32", "--crop-size", "32", "--workers", "0", "--device", "cpu"]
    commands = {
        "causal3dident": ["causal3dident", "--model", "random-tiny+random-tiny", "--target", "0", "--target", "class",
                          *common],
        "downstream": ["downstream", "--model", "random-tiny", "--dataset", "CIFAR10", "--probe", "knn", *common],
        "realworld": ["realworld", "--model", "random-tiny", "--dataset", "coil100", "--stats-data",
                      str(image_folder), "--stats-resize", "40", "--stats-crop-size", "32", *common],
    }
    for name, args in commands.items():
        one = _cli(args, tmp_path / f"{name}-1")
        two = _cli([*args, "--nproc-per-node", "2"], tmp_path / f"{name}-2")
        for a, b in zip(one["results"], two["results"], strict=True):
            for field in ("score", "r2", "similarity", "distance"):
                if field in a:
                    assert b[field] == pytest.approx(a[field], rel=1e-5, abs=1e-6), (name, field)
        rec = json.loads(Path(two["results"][0]["result_file"]).read_text())
        assert rec["environment"]["world_size"] == 2
