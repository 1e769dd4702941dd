"""What the process may really use: RAM (and below, CPUs and /dev/shm) from fake
/proc and /sys/fs/cgroup trees."""

from __future__ import annotations

from pathlib import Path

from sslinv import cpus


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


MEMINFO = "MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n"


def test_available_ram_reads_meminfo(tmp_path):
    write(tmp_path, "proc/meminfo", MEMINFO)
    assert cpus.available_ram(tmp_path) == 20_000_000 * 1024


def test_available_ram_is_capped_by_cgroup_v2_limit(tmp_path):
    write(tmp_path, "proc/meminfo", MEMINFO)
    write(tmp_path, "sys/fs/cgroup/memory.max", str(8 * 2**30))
    write(tmp_path, "sys/fs/cgroup/memory.current", str(3 * 2**30))
    assert cpus.available_ram(tmp_path) == 5 * 2**30
    write(tmp_path, "sys/fs/cgroup/memory.max", "max")
    assert cpus.available_ram(tmp_path) == 20_000_000 * 1024


def test_available_ram_cgroup_v1_and_its_no_limit_value(tmp_path):
    write(tmp_path, "proc/meminfo", MEMINFO)
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", str(4 * 2**30))
    write(tmp_path, "sys/fs/cgroup/memory/memory.usage_in_bytes", str(2**30))
    assert cpus.available_ram(tmp_path) == 3 * 2**30
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712")
    assert cpus.available_ram(tmp_path) == 20_000_000 * 1024


def test_available_ram_of_this_machine_is_positive():
    assert cpus.available_ram() > 0
