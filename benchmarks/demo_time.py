"""Wall time of ``sslinv demo`` in a fresh cache, against the issue's 10-minute budget.

Runs ``sslinv demo --json`` twice in a new temporary cache (the first run computes
everything, the second must only read results) and prints, for the first run, the time
per step (data, pretraining, synthetic, real-world, downstream), the total against the
budget (ratio <= 1.0 passes), the rerun's time, and whether the paper's finding showed.

    python benchmarks/demo_time.py                 # the default demo
    python benchmarks/demo_time.py --epochs 3      # any extra arguments go to sslinv demo
    python benchmarks/demo_time.py --keep DIR      # use (and keep) DIR as the cache
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 600.0  # "under 10 minutes on 2 CPU cores"


def timed_demo(cache: Path, extra: list[str]) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "sslinv", "demo", "--json", "--cache-dir", str(cache), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"sslinv demo failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="Cache folder to use and keep (must not exist yet).")
    args, extra = ap.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.keep or Path(tmp) / "cache"
        if cache.exists():
            sys.exit(f"{cache} exists: the benchmark needs a fresh cache.")
        first_s, first = timed_demo(cache, extra)
        again_s, again = timed_demo(cache, extra)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"sslinv demo {' '.join(extra)} on {cpus} CPU core(s), fresh cache")
    for step, s in first["steps"].items():
        print(f"  {step:<11} {s:7.1f} s")
    print(f"  {'total':<11} {first_s:7.1f} s (process wall time)")
    print(f"budget {BUDGET_S:.0f} s: ratio {first_s / BUDGET_S:.2f} ({'within' if first_s <= BUDGET_S else 'OVER'})")
    print(f"rerun: {again_s:.1f} s, everything cached: {again['cached']}")
    f = first["finding"]
    for group in ("spatial", "colour"):
        print(f"  {f[group]['text']}")
    print(f"  {f['note']}")


if __name__ == "__main__":
    main()
