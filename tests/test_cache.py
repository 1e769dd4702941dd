"""The cache: paths and env precedence, atomic writes, locks, keyed entries."""

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from sslinv import cache, paths


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("SSLINV_CACHE_DIR", raising=False)
    default = paths.cache_dir()
    assert default.name == "sslinv"
    monkeypatch.setenv("SSLINV_CACHE_DIR", str(tmp_path / "env"))
    assert paths.cache_dir() == tmp_path / "env"
    assert paths.cache_dir(tmp_path / "opt") == tmp_path / "opt"


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("SSLINV_DATA_ROOT", raising=False)
    assert paths.data_root(None, tmp_path / "c") == tmp_path / "c" / "data"
    monkeypatch.setenv("SSLINV_DATA_ROOT", str(tmp_path / "env"))
    assert paths.data_root(None, tmp_path / "c") == tmp_path / "env"
    assert paths.data_root(tmp_path / "opt", tmp_path / "c") == tmp_path / "opt"


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "sub" / "x.bin"
    with pytest.raises(RuntimeError):
        with cache.atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert not final.exists()
    assert list(final.parent.iterdir()) == []
    with cache.atomic_path(final) as tmp:
        tmp.write_bytes(b"whole")
    assert final.read_bytes() == b"whole"
    assert [p.name for p in final.parent.iterdir()] == ["x.bin"]


def test_atomic_dir(tmp_path):
    final = tmp_path / "pool"
    with pytest.raises(KeyboardInterrupt):
        with cache.atomic_dir(final) as tmp:
            (tmp / "a.txt").write_text("a")
            raise KeyboardInterrupt
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with cache.atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (final / "a.txt").read_text() == "a"


def _save(v, p):
    Path(p).write_text(json.dumps(v))


def _load(p):
    return json.loads(Path(p).read_text())


def test_cached_hits_and_misses_on_changed_inputs(tmp_path):
    calls = []

    def compute(v):
        def f():
            calls.append(v)
            return {"v": v}

        return f

    path = tmp_path / "entry.json"
    v, hit = cache.cached(path, {"a": 1}, compute(1), _save, _load)
    assert (v, hit) == ({"v": 1}, False)
    v, hit = cache.cached(path, {"a": 1}, compute(1), _save, _load)
    assert (v, hit) == ({"v": 1}, True)
    # A changed input is a miss even at the same path: the sidecar records the key.
    v, hit = cache.cached(path, {"a": 2}, compute(2), _save, _load)
    assert (v, hit) == ({"v": 2}, False)
    assert calls == [1, 2]
    assert cache.read_json(cache.sidecar(path))["key"] == {"a": 2}


def test_key_hash_is_order_independent():
    assert cache.key_hash({"a": 1, "b": [1, 2]}) == cache.key_hash({"b": [1, 2], "a": 1})
    assert cache.key_hash({"a": 1}) != cache.key_hash({"a": 2})


def _worker(path, counter_dir, q):
    def compute():
        (Path(counter_dir) / f"{os.getpid()}").write_text("computed")
        time.sleep(0.5)  # long enough that both processes overlap
        return {"pid": os.getpid()}

    value, hit = cache.cached(Path(path), {"k": 1}, compute, _save, _load)
    q.put((value, hit))


def test_concurrent_writers_compute_once(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    counter = tmp_path / "computed"
    counter.mkdir()
    path = tmp_path / "stats" / "entry.json"
    procs = [ctx.Process(target=_worker, args=(str(path), str(counter), q)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert len(list(counter.iterdir())) == 1  # computed once
    assert got[0][0] == got[1][0]  # both see the same value
    assert sorted(h for _, h in got) == [False, True]
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
