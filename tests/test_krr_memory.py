"""Kernel ridge memory: the in-place build keeps the numbers, the estimate bounds the
measured peak, and a run that would not fit is refused naming the --max-train that does."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sslinv.errors import UsageError
from sslinv.probes import krr


def reference_sq_dists(a, b):
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)).clamp(min=0.0)


def test_in_place_distances_and_blocked_predictions_are_bit_identical(monkeypatch):
    monkeypatch.setattr(krr, "PREDICT_ROWS", 7)  # many blocks, one of them ragged
    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, 9, generator=g, dtype=torch.float64)
    b = torch.randn(23, 9, generator=g, dtype=torch.float64)
    assert torch.equal(krr.sq_dists(a, b), reference_sq_dists(a, b))
    same = reference_sq_dists(a, a)
    same.fill_diagonal_(0.0)
    assert torch.equal(krr.sq_dists(a), same)
    duals = [torch.randn(23, 2, generator=g, dtype=torch.float64) for _ in range(3)]
    D = krr.sq_dists(a, b)
    for got, dual in zip(krr.predict_blocks(D, 0.1, duals), duals):
        torch.testing.assert_close(got, torch.exp(D * -0.1) @ dual, rtol=1e-14, atol=1e-14)


def test_estimate_grows_quadratically_and_depends_on_the_solver():
    small = krr.peak_bytes(10_000, 1000, 64)
    big = krr.peak_bytes(20_000, 1000, 64)
    assert 3.5 < big / small < 4.1
    assert krr.peak_bytes(20_000, 1000, 64, solver="eigh") > big
    # The protocol's default: 20,480 training images fit a 16 GiB GPU now (about 14 GB before).
    assert krr.peak_bytes(20_480, 40_960, 2048, 10) < 12 * 2**30


def test_refusal_names_the_max_train_that_fits():
    limit = 2 * 2**30
    with pytest.raises(UsageError, match=r"--max-train \d+") as err:
        krr.check_memory(20_480, 40_960, 2048, 10, available=limit)
    msg = str(err.value)
    assert "\n" not in msg and "20480 training images" in msg and "2.0 GiB is free" in msg
    fits = int(re.search(r"--max-train (\d+)", msg).group(1))
    assert fits % 100 == 0 and 1000 < fits < 20_480
    assert krr.peak_bytes(fits, 40_960, 2048, 10) <= limit < krr.peak_bytes(fits + 100, 40_960, 2048, 10)
    assert krr.check_memory(fits, 40_960, 2048, 10, available=limit) <= limit


def test_evaluate_refuses_before_any_work():
    X = np.zeros((500, 8), np.float32)
    with pytest.raises(UsageError, match="--max-train"):
        krr.evaluate(X, np.zeros(500), X[:10], np.zeros(10), memory_limit=2**20)


def test_no_size_fits_says_so():
    with pytest.raises(UsageError, match="more memory"):
        krr.check_memory(1000, 10**7, 2048, available=2**20)


def test_available_memory_on_cpu_is_the_ram_left():
    from sslinv.cpus import available_ram

    got = krr.available_memory("cpu")
    assert 0 < got and abs(got - available_ram()) < 2**30


MEASURE = textwrap.dedent("""
    import sys
    import numpy as np
    from sslinv.probes import krr

    def status(key):  # bytes
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    n, m, d = 6000, 500, 64
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n + m, d)).astype(np.float32)
    Y = rng.standard_normal((n + m, 2))
    krr.evaluate(X[:200], Y[:200], X[200:300], Y[200:300], gammas=[1e-3], alphas=[1e-4])  # warm up
    # The peak of this call alone: reset the high-water mark to the resident size now
    # (the warm-up's own peak, which varies with the machine's state, does not count).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    krr.evaluate(X[:n], Y[:n], X[n:], Y[n:], gammas=[1e-3], alphas=[1e-4])
    print(status("VmHWM") - before, krr.peak_bytes(n, m, d, 2, n_alphas=1))
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self (Linux)")
def test_estimate_bounds_the_measured_peak():
    out = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, check=True)
    measured, estimate = map(int, out.stdout.split())
    assert measured <= estimate <= 1.6 * measured, (measured, estimate)
