"""What the four evaluations share: the runtime settings and the skeleton of ``run``.

- ``Runtime``: model, feature layer, architecture (``--arch``), fusion, device, precision, batch size, workers,
  skip-bad, force, cache and data roots; embedded in every command's config
  (``cfg.runtime``), built from the shared options by ``sslinv.cli.options``.
- ``results.config_dump`` writes any command config into its result files with these
  settings inlined, so the ``config`` of a result file reads as before.
- ``start``: the preamble of every ``run``: world, device, process group, workers.
- ``reuse_or_compute``: finished results with identical inputs are read back (unless
  ``--force``), the rest are computed and written, one result file each.
- ``Result`` and ``record``: one path from a result record to a command's result, and the
  fields every result record has.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sslinv import distributed, results
from sslinv.distributed import World


@dataclass
class Runtime:
    """The settings every evaluation shares (the CLI's shared options)."""

    model: str
    cache_dir: Path
    data_root: Path
    layer: str = "backbone"
    arch: str | None = None  # --arch: architecture of the checkpoint files given
    fuse: str = "cat"
    device: str | None = None
    precision: str = "fp32"
    batch_size: int | None = None  # None: by device (runtime.default_batch_size), set in start()
    workers: int | None = None
    skip_bad: bool = False
    force: bool = False

    #: ``results.config_dump`` inlines these settings into a command's ``config``.
    INLINE: ClassVar[bool] = True


# ------------------------------------------------------------------------- session


@dataclass(frozen=True)
class Session:
    """Where a run happens: the torchrun world, the model's device, decoding workers."""

    world: World
    device: Any  # torch.device
    workers: int

    def environment(self) -> dict[str, Any]:
        return results.environment(str(self.device), self.world.world_size)


def start(rt: Runtime) -> Session:
    """World and device: join the process group, set the precision, choose the number of
    workers, and fill in ``rt.batch_size`` when it is None (256 on a GPU, 64 on the CPU),
    so the result file records the batch size used. The command skeleton
    (``sslinv.cli.common``) leaves the group at the end."""
    from sslinv.runtime import default_batch_size, default_workers, resolve_device, set_precision

    world = distributed.world_from_env()
    device = resolve_device(rt.device, world)
    if rt.batch_size is None:
        rt.batch_size = default_batch_size(device)
    # TF32, when asked for, only around the model's forward pass (Extractor): the
    # renderer, whitening and probes stay in true fp32.
    set_precision("fp32" if rt.precision == "tf32" else rt.precision)
    distributed.init(world, device)
    workers = default_workers(device) if rt.workers is None else rt.workers
    return Session(world, device, workers)


# -------------------------------------------------------------------------- results


#: Annotations of ``Result`` fields that must hold numbers, and the types accepted.
_NUMERIC: dict[str, tuple[type, ...]] = {
    "float": (int, float),
    "float | None": (int, float, type(None)),
    "int": (int,),
    "int | None": (int, type(None)),
}


@dataclass(kw_only=True)
class Result(ABC):
    """A command's result, read from its record (fresh or from a finished result file).

    Subclasses add their fields and say in ``read`` how a record fills them.
    """

    result_file: str
    cached: bool
    record: dict[str, Any] = field(repr=False, default_factory=dict)

    @staticmethod
    @abstractmethod
    def read(record: dict[str, Any]) -> dict[str, Any]:
        """The subclass's fields from a result record."""

    @classmethod
    def from_record(cls, record: dict[str, Any], path: Path, cached: bool):
        return cls(**cls.read(record), result_file=str(path), cached=cached, record=record)

    @classmethod
    def reuse(cls, record: dict[str, Any], path: Path):
        """The cached result of a finished record, or None (with a warning) when the
        record lacks a field or holds a non-numeric metric: it is computed again."""
        try:
            result = cls.from_record(record, path, cached=True)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            results.unusable(path, f"no {exc} field" if isinstance(exc, KeyError) else f"a field of the wrong type: {exc}")
            return None
        for f in fields(result):
            allowed = _NUMERIC.get(str(f.type))
            value = getattr(result, f.name)
            if allowed is not None and not (isinstance(value, allowed) and not isinstance(value, bool)):
                results.unusable(path, f"{f.name} is {value!r}, not a number")
                return None
            if isinstance(value, float) and not math.isfinite(value):  # never served as a result
                results.unusable(path, f"{f.name} is {value!r}, not a finite number")
                return None
        return result

    def summary(self) -> dict[str, Any]:
        """The result's own fields, then where its file is and whether it was cached."""
        own = [f.name for f in fields(self) if f.name not in ("result_file", "cached", "record")]
        return {**{k: getattr(self, k) for k in own}, "result_file": self.result_file, "cached": self.cached}


R = TypeVar("R", bound=Result)


@dataclass
class Task:
    """One result file to find or compute: ``name`` names the file (and the result),
    ``key`` holds every input its numbers depend on, ``item`` is the command's own."""

    name: str
    key: dict[str, Any]
    item: Any = None
    path: Path = field(default=Path())


def reuse_or_compute(
    rt: Runtime,
    session: Session,
    command: str,
    tasks: Sequence[Task],
    result: type[R],
    compute: Callable[[list[Task]], Iterable[tuple[Task, dict[str, Any]]]],
) -> list[R]:
    """The results of ``tasks``, in order, on rank 0 ([] on the other ranks).

    A finished result file computed from exactly a task's key is read back (unless
    ``--force``; rank 0 decides for every rank); one that does not validate (not a
    result object, a missing field, a non-numeric metric) is computed again, with a
    warning. The others go to ``compute(todo)``,
    which every rank runs (extraction is sharded) and which yields ``(task, record)``
    on rank 0 as each is done; each record is written at once.
    """
    world = session.world
    done: dict[str, R] = {}
    todo: list[Task] = []
    for task in tasks:
        task.path = results.result_path(rt.cache_dir, command, rt.model, task.name, task.key)
        found = None
        if world.is_main and not rt.force and (rec := results.find_finished(task.path, task.key)) is not None:
            found = result.reuse(rec, task.path)
        found = distributed.broadcast_object(world, None if found is None else found.record)
        if found is not None:
            done[task.name] = result.from_record(found, task.path, cached=True)
        else:
            todo.append(task)
    if todo:
        for task, rec in compute(todo):
            results.write_result(task.path, rec)
            done[task.name] = result.from_record(rec, task.path, cached=False)
    if not world.is_main:
        return []
    return [done[t.name] for t in tasks if t.name in done]


def record(cfg: Any, command: str, key: dict[str, Any], session: Session, *, model: dict[str, Any],
           dataset: dict[str, Any], task: str, seconds: Any, **fields_: Any) -> dict[str, Any]:
    """A result record: inputs (key, config, model, dataset), the command's own fields,
    then the environment and the time taken."""
    return {
        "key": key,
        "command": command,
        "created": results.now(),
        "config": results.config_dump(cfg),
        "model": model,
        "dataset": dataset,
        "task": task,
        **fields_,
        "environment": session.environment(),
        "seconds": seconds,
    }
