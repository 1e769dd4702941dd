"""The prepared first-GPU check runs end to end on the CPU (``--device cpu --quick``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_quick_on_cpu(tmp_path):
    env = {**os.environ, "SSLINV_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick"], check=False, capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    table = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    checks = " ".join(line.split("|")[1] for line in table)
    for name in ("synthetic", "statistics pass", "PIL in-process", "device renderer", "pretrain step",
                 "kernel ridge", "logistic probe", "gloo: 2 processes vs 1"):
        assert name in checks, (name, out.stdout)
    # Two processes (gloo on the CPU, NCCL on GPUs) give one process's numbers.
    assert "| same numbers |" in out.stdout, out.stdout
    assert "PIL views (job)" in checks and "device views (job)" in checks, out.stdout  # synthetic both ways
    assert "FAILED" not in out.stdout and "0 failed" in out.stdout
