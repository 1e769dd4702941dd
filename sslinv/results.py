"""The result-file schema: one self-describing JSON file per (command, model, task).

A result file holds the full configuration, the model and dataset identity (checkpoint
sha256, pool fingerprint), versions, device, world size and time, plus the numbers.
``report`` needs nothing else. Files are named by a hash of the inputs that determine the
numbers (``key``), so a rerun with identical inputs finds the finished result.
"""

from __future__ import annotations

import datetime as _dt
import platform
import warnings
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from sslinv import cache, paths

SCHEMA = "sslinv.result/1"


def result_path(cache_root: Path, command: str, model_spec: str, task: str, key: dict[str, Any]) -> Path:
    name = f"{paths.safe_name(task)}-{cache.key_hash(key)}.json"
    return paths.results_dir(cache_root) / command / paths.safe_name(model_spec) / name


def find_finished(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The finished result at ``path`` if it was computed from exactly ``key``.

    A file that is there but is no result object (truncated, ``[]``, ``null``, a
    string, another schema) is a miss with a ``CacheWarning``: it is computed again.
    """
    if not path.exists():
        return None
    record, problem = _read_record(path)
    if problem is not None:
        unusable(path, problem)
        return None
    if cache.canonical_json(record.get("key")) != cache.canonical_json(key):
        return None
    return record


def unusable(path: Path, problem: str) -> None:
    """Warn that the result file at ``path`` cannot be reused and is computed again."""
    warnings.warn(f"Result file {path} cannot be reused ({problem}); computing it again.",
                  cache.CacheWarning, stacklevel=3)


def _read_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)`` for a result file of this schema, else ``(None, why not)``."""
    try:
        record = cache.read_json(path)
    except ValueError:
        return None, "not valid JSON (truncated or overwritten?)"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not isinstance(record, dict):
        return None, f"holds a JSON {_json_type(record)}, not a result object"
    if record.get("schema") != SCHEMA:
        found = record.get("schema")
        return None, ("not an sslinv result file (no schema)" if found is None
                      else f"schema {found!r}, this sslinv reads {SCHEMA!r}")
    return record, None


def config_dump(cfg: Any) -> dict[str, Any]:
    """A command's config as the JSON-able ``config`` of its result files: paths as
    strings, nested dataclasses as dicts, except those whose class sets ``INLINE = True``
    (the runtime settings every command embeds), whose fields are inlined."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value) and getattr(value, "INLINE", False):
            out.update(config_dump(value))
            continue
        if is_dataclass(value):
            value = config_dump(value)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


def environment(device: str, world_size: int) -> dict[str, Any]:
    import numpy
    import torch

    import sslinv

    env = {
        "sslinv": sslinv.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),  # not imported: that costs a second
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": device,
        "world_size": world_size,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_result(path: Path, record: dict[str, Any]) -> None:
    cache.write_json(path, {"schema": SCHEMA, **record})


def iter_results(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every readable result file under ``root`` (sorted by path)."""
    for p, record, problem in scan_results(root):
        if problem is None:
            yield p, record


def scan_results(root: Path) -> Iterator[tuple[Path, dict[str, Any] | None, str | None]]:
    """Every JSON file under ``root`` (sorted by path) as ``(path, record, problem)``:
    ``problem`` is None for a result file of this schema, else why it cannot be read as
    one (and ``record`` is None)."""
    for p in sorted(Path(root).rglob("*.json")):
        yield p, *_read_record(p)


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", type(None): "null", bool: "boolean"}.get(type(value), "number")
