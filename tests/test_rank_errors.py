"""An error of one rank in the middle of a sharded pass stops every rank with it
(``sslinv.distributed.run_then_gather``): the same class (so the same exit code) and the
first failing rank's message, printed once by rank 0, instead of a rank that exits while
the others wait in the next collective until torchrun tears them down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ranks import free_port, rank_env
from test_synthetic import FAST, run_json

from sslinv import distributed
from sslinv.distributed import World
from sslinv.errors import BadImageError, DataNotFoundError, NonFiniteError, SslinvError, UsageError

# ------------------------------------------------------------- the helper, faked world


class FakeGather:
    """``all_gather_objects`` of a 2-rank world seen from rank 0: rank 1's part is given."""

    def __init__(self, other):
        self.other, self.calls = other, []

    def __call__(self, world, obj):
        self.calls.append(obj)
        return [obj, self.other]


def test_one_process_runs_the_pass_and_lets_its_errors_through(monkeypatch):
    monkeypatch.setattr(distributed, "all_gather_objects", lambda *a: pytest.fail("no gather for one process"))
    assert distributed.run_then_gather(World(), lambda: 5) == (5, [5])
    assert distributed.run_then_gather(World(), lambda: [1, 2], share=len) == ([1, 2], [2])
    original = BadImageError("Cannot read image a.jpg")

    def fail():
        raise original

    with pytest.raises(BadImageError) as info:
        distributed.run_then_gather(World(), fail)
    assert info.value is original and info.value.rank is None  # untouched, as without the helper


def test_parts_in_rank_order_when_every_rank_succeeds(monkeypatch):
    gather = FakeGather((None, 7))
    monkeypatch.setattr(distributed, "all_gather_objects", gather)
    value, parts = distributed.run_then_gather(World(0, 2), lambda: [1, 2, 3], share=len)
    assert value == [1, 2, 3] and parts == [3, 7]
    assert gather.calls == [(None, 3)]


@pytest.mark.parametrize("cls", [BadImageError, DataNotFoundError, NonFiniteError, UsageError])
def test_another_ranks_error_is_raised_here_with_its_class_and_message(monkeypatch, cls):
    name = f"{cls.__module__}:{cls.__qualname__}"
    monkeypatch.setattr(distributed, "all_gather_objects", FakeGather(((name, "Cannot read image b.jpg"), None)))
    with pytest.raises(cls, match=r"^Cannot read image b\.jpg$") as info:
        distributed.run_then_gather(World(0, 2), lambda: 1)
    assert type(info.value) is cls and info.value.rank == 1 and info.value.exit_code == cls.exit_code


def test_this_ranks_error_joins_the_gather_and_is_raised_as_it_was(monkeypatch):
    gather = FakeGather((None, 4))
    monkeypatch.setattr(distributed, "all_gather_objects", gather)
    original = DataNotFoundError("Dataset 'COIL100' not found")

    def fail():
        raise original

    with pytest.raises(DataNotFoundError) as info:
        distributed.run_then_gather(World(0, 2), fail)
    assert info.value is original and info.value.rank == 0  # its own traceback kept
    assert gather.calls == [(("sslinv.errors:DataNotFoundError", "Dataset 'COIL100' not found"), None)]


def test_the_first_failing_rank_wins_and_worker_tracebacks_are_unwrapped(monkeypatch):
    # As PyTorch re-raises a DataLoader worker's error: the class, the worker's traceback.
    wrapped = BadImageError("Caught BadImageError in DataLoader worker process 0.\nOriginal Traceback (most "
                            "recent call last):\n  File ...\nsslinv.errors.BadImageError: Cannot read image c.jpg\n")
    gather = FakeGather((("sslinv.errors:NonFiniteError", "NaN in d.jpg"), None))
    monkeypatch.setattr(distributed, "all_gather_objects", gather)

    def fail():
        raise wrapped

    with pytest.raises(BadImageError) as info:  # rank 0 failed too: its error comes first
        distributed.run_then_gather(World(0, 2), fail)
    assert info.value.rank == 0
    assert gather.calls[0][0] == ("sslinv.errors:BadImageError", "Cannot read image c.jpg")
    # Seen from rank 1 (both failed): rank 0's error, with rank 1's own as the cause.
    own = NonFiniteError("NaN in d.jpg")

    def fail_too():
        raise own

    monkeypatch.setattr(distributed, "all_gather_objects",
                        lambda world, obj: [(("sslinv.errors:BadImageError", "Cannot read image c.jpg"), None), obj])
    with pytest.raises(BadImageError, match="c.jpg") as info:
        distributed.run_then_gather(World(1, 2), fail_too)
    assert info.value.rank == 0 and info.value.__cause__ is own


def test_an_unknown_class_name_is_a_plain_sslinv_error(monkeypatch):
    monkeypatch.setattr(distributed, "all_gather_objects",
                        FakeGather((("sslinv.nowhere:Gone", "m1"), None)))
    with pytest.raises(SslinvError, match="m1") as info:
        distributed.run_then_gather(World(0, 2), lambda: 1)
    assert type(info.value) is SslinvError
    monkeypatch.setattr(distributed, "all_gather_objects", FakeGather((("builtins:SystemExit", "m2"), None)))
    with pytest.raises(SslinvError, match="m2"):  # never a class that is not an sslinv error
        distributed.run_then_gather(World(0, 2), lambda: 1)


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), KeyboardInterrupt()])
def test_other_exceptions_and_ctrl_c_are_not_exchanged(monkeypatch, exc):
    monkeypatch.setattr(distributed, "all_gather_objects", lambda *a: pytest.fail("gathered"))

    def fail():
        raise exc

    with pytest.raises(type(exc)):
        distributed.run_then_gather(World(0, 2), fail)


def test_cli_prints_a_shared_error_on_rank_0_only_and_others_with_their_rank(monkeypatch, capsys):
    from sslinv.cli.output import handle_errors

    def command(exc, verbose=False):
        raise exc

    cmd = handle_errors()(command)
    for rank, exc, expected in [
        (0, BadImageError("Cannot read image e.jpg"), "error: Cannot read image e.jpg"),
        (1, BadImageError("Cannot read image e.jpg"), ""),
        (1, DataNotFoundError("No images under /x"), "error: rank 1: No images under /x"),
    ]:
        if expected != "error: rank 1: No images under /x":
            exc.rank = 1  # raised on every rank by run_then_gather, where rank 1 failed
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        with pytest.raises(Exception) as info:
            cmd(exc)
        assert getattr(info.value, "exit_code", None) == 3
        assert " ".join(capsys.readouterr().err.split()) == expected


# ------------------------------------------------------------------ --nproc-per-node


def test_torchrun_ends_with_the_first_failed_workers_code_without_its_report(monkeypatch, capsys):
    import logging

    import torch.distributed.run as torch_run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from sslinv.launch import LaunchOptions, torchrun, torchrun_command

    agent = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    outcome: dict = {}

    def fake_run(args):
        assert args.nproc_per_node == "2" and args.training_script == "sslinv" and args.module
        if "failures" in outcome:  # as torch's agent reports the first failure
            agent.error("failed (exitcode: %s) local_rank: %s (pid: %s) of binary: %s", outcome["code"], 1, 7,
                        "python")
            raise ChildFailedError("sslinv", outcome["failures"])

    def failures(*codes: tuple[int, int]) -> dict:  # (rank, exit code) in the order they failed
        out = {}
        for t, (rank, code) in enumerate(codes):
            out[rank] = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=code, error_file="<N/A>")
            out[rank].timestamp = t
        return out

    monkeypatch.setattr(torch_run, "run", fake_run)
    argv = torchrun_command(LaunchOptions(nproc_per_node=2), ["synthetic", "--model", "x"])
    assert argv[1:3] == ["-m", "sslinv.launch"]
    args = argv[3:]
    assert torchrun(args) == 0
    outcome.update(code=3, failures=failures((1, 3), (0, -15)))  # rank 1's error; rank 0 stopped by torchrun
    assert torchrun(args) == 3
    assert "failed (exitcode" not in capsys.readouterr().err  # the workers printed the error line
    outcome.update(code=-9, failures=failures((0, -9), (1, -15)))  # killed (out of memory): the report stays
    with pytest.raises(ChildFailedError, match="Signal 9"):
        torchrun(args)
    assert "failed (exitcode: -9)" in capsys.readouterr().err
    assert not agent.filters


# ------------------------------------------------- two gloo ranks, `sslinv synthetic`

#: One rank of ``sslinv synthetic``, run through the CLI; the error it reports (class,
#: message, rank attribute) goes to a JSON file, the exit code is the process's.
RANK_CLI = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from sslinv.cli import output

    seen = []
    report = output._report

    def spy(exc, verbose):
        seen.append([type(exc).__name__, str(exc), exc.rank])
        report(exc, verbose)

    output._report = spy
    from sslinv.cli.main import app

    code = 0
    try:
        app(sys.argv[2:], prog_name="sslinv")
    except SystemExit as exc:
        code = exc.code
    Path(sys.argv[1]).write_text(json.dumps({"code": code, "seen": seen}))
    sys.exit(code)
    """
)


def _two_cli_ranks(tmp: Path, cache: Path, args: list[str]) -> list[tuple[dict, str]]:
    script = tmp / "rank_cli.py"
    script.write_text(RANK_CLI)
    port = free_port()
    procs = []
    try:
        for rank in range(2):
            env = rank_env(rank, 2, port, SSLINV_CACHE_DIR=str(cache))
            procs.append(subprocess.Popen([sys.executable, str(script), str(tmp / f"rank{rank}.json"), *args],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        # A rank left waiting in a collective would hang here: the timeout fails the test.
        errs = [p.communicate(timeout=90)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    out = []
    for rank, (p, err) in enumerate(zip(procs, errs)):
        report = json.loads((tmp / f"rank{rank}.json").read_text())
        assert report["code"] == p.returncode, err[-3000:]
        out.append((report, err))
    return out


def _corrupt_keeping_size_and_mtime(path: Path) -> None:
    """Damage ``path`` as a failing disk would: same size and time, so the pool's
    fingerprint (and the statistics cached on it) stay valid."""
    st = path.stat()
    path.write_bytes(b"\0" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.timeout(240)
def test_two_ranks_stop_together_on_an_unreadable_image_of_rank_1(cache_dir, image_folder, tmp_path):
    """Pool index 9 (class1/img_001.jpg) is in rank 1's shard (odd indices). 1. Fresh cache:
    rank 1 meets it in the statistics pass. 2. Statistics cached before the damage: rank 1
    meets it among the sampled images' clean views. Either way both ranks raise
    BadImageError naming the file and exit with 3, rank 0 alone prints it, nothing is cached."""
    bad = image_folder / "class1" / "img_001.jpg"
    common = ["synthetic", "--model", "random-tiny", "--data", str(image_folder), "--num-images", "all", "--k", "2",
              *FAST]

    # 1. In the statistics pass.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _corrupt_keeping_size_and_mtime(bad)
    ranks = _two_cli_ranks(fresh, fresh / "cache", [*common, "-t", "v_flip"])
    _check_both_stopped(ranks, bad)
    assert not [p for p in (fresh / "cache").rglob("*") if p.suffix in (".pt", ".json")]  # no statistics, no result

    # 2. Among the sampled images, the statistics cached while the file was readable.
    image_folder_2 = tmp_path / "pool2"
    from conftest import write_image_folder

    write_image_folder(image_folder_2)
    common = [a if a != str(image_folder) else str(image_folder_2) for a in common]
    bad = image_folder_2 / "class1" / "img_001.jpg"
    run_json(*common[1:], "-t", "h_flip")  # one process, this test's SSLINV_CACHE_DIR
    stats = list(cache_dir.glob("stats/*/*.pt"))
    _corrupt_keeping_size_and_mtime(bad)
    ranks = _two_cli_ranks(tmp_path, cache_dir, [*common, "-t", "v_flip"])
    _check_both_stopped(ranks, bad)
    assert list(cache_dir.glob("stats/*/*.pt")) == stats  # the statistics were reused
    assert not list(cache_dir.rglob("v_flip-*.json"))  # no result


def _check_both_stopped(ranks, bad: Path) -> None:
    for report, err in ranks:
        assert report["code"] == 3, err[-3000:]
        [(cls, message, where)] = report["seen"]
        assert cls == "BadImageError" and str(bad) in message and where == 1, report
        assert "Traceback" not in err and "Timeout" not in err, err[-3000:]
    (_, err0), (_, err1) = ranks
    lines = [line for line in err0.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(bad) in " ".join(err0.split()), err0[-3000:]
    assert "error:" not in err1, err1[-3000:]  # printed once, by rank 0
