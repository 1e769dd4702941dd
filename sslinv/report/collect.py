"""Read result files into tidy rows, one per (command, model, task, metric).

``report`` never recomputes: everything comes from the self-describing result files.
Runs with different protocol settings (pool, resize, crop, k, number of images...) get
different ``settings`` ids and are never merged into one cell; among runs with the same
settings the newest wins unless ``all_runs``.

A file that cannot be used (truncated, not a result object, no numbers, a metric that is
not a number) is never dropped silently: ``collect`` returns it with the reason, and
``report`` warns about each one (``--strict`` fails).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslinv import cache
from sslinv.results import scan_results

# Fields of a result key that name the model or the task, not the protocol settings.
_IDENTITY_FIELDS = {"model", "transform", "task", "dataset", "target", "k", "command"}

# Downstream probe fields chosen by the task's target type, not by the user.
_TASK_SOLVER = {"model", "max_iter", "tol"}

#: For each metric: does a larger value mean "more invariant" / "better"?
HIGHER_IS_BETTER = {"similarity": True, "similarity_reference": True, "distance": False, "score": True}


@dataclass(frozen=True)
class Row:
    """One finished run: a (command, model, task) under one protocol setting."""

    command: str
    model: str
    task: str
    values: dict[str, float | None]  # similarity, distance, similarity_reference, score
    score_metric: str | None  # what "score" is: accuracy, mean_per_class_accuracy, r2...
    settings: str  # short id of the protocol settings
    created: str
    path: str
    settings_detail: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: A synthetic run's per-parameter curves: {"values", "similarity", "distance"}, the
    #: grid values as the result file records them; None for other commands.
    curve: dict[str, list] | None = field(default=None, compare=False, hash=False)
    #: The architecture of the model, per member of a fusion (``resnet50``,
    #: ``vit_small_patch16_224+resnet50``); "" when the result file does not say.
    arch: str = field(default="", compare=False, hash=False)
    #: Where the numbers were computed: the device kind (``cpu``, ``cuda``) and the
    #: precision (``fp32``, ``tf32``, ``bf16``, ``fp16``); "" when the file does not say.
    #: Both are part of the result's key, so they are part of ``settings`` too.
    device: str = field(default="", compare=False, hash=False)
    precision: str = field(default="", compare=False, hash=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command, "model": self.model, "arch": self.arch, "device": self.device,
            "precision": self.precision, "task": self.task,
            **{m: self.values.get(m) for m in METRICS}, "score_metric": self.score_metric,
            "settings": self.settings, "created": self.created, "result_file": self.path,
        }


METRICS = ("similarity", "distance", "similarity_reference", "score")


def settings_of(record: dict[str, Any]) -> dict[str, Any]:
    """The protocol settings of a run: its cache key minus model and task identity.

    The requested ``--k`` (not the per-family k) is a setting of a synthetic run. Parts
    that follow from the task itself are identity too, so the tasks of one run share a
    table: the task's own dataset splits (an entry naming the task) and, downstream, the
    solver its target type picks (logistic or ridge, and the logistic-only limits).
    """
    key = record.get("key") or {}
    task = record.get("task")
    out = {k: v for k, v in key.items()
           if k not in _IDENTITY_FIELDS and not (isinstance(v, dict) and v.get("name") == task)}
    if record.get("command") == "synthetic":
        out["requested_k"] = (record.get("config") or {}).get("k")
    if record.get("command") == "downstream" and isinstance(out.get("probe"), dict):
        out["probe"] = {k: v for k, v in out["probe"].items() if k not in _TASK_SOLVER}
    return out


class BadRecord(ValueError):
    """A result file that does not hold usable numbers; the message says why."""


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def row_from_record(record: dict[str, Any], path: Path) -> Row:
    """The row of one result record; ``BadRecord`` when it cannot give one."""
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        raise BadRecord("has no metrics" if metrics is None else "its metrics are not an object")
    values: dict[str, float | None] = {}
    for m in METRICS:
        if m not in metrics:
            continue
        v = metrics[m]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise BadRecord(f"metric {m!r} is not a finite number: {json.dumps(v)[:40]}")
        values[m] = None if v is None else float(v)
    if not values:
        raise BadRecord("has no metrics (" + ", ".join(METRICS) + ")")
    if all(v is None for v in values.values()):
        raise BadRecord("every metric is null (a failed run?)")
    model, task, command = record.get("model"), record.get("task"), record.get("command")
    if not (isinstance(model, dict) and isinstance(model.get("spec"), str)):
        raise BadRecord("names no model")
    if not isinstance(task, str) or not isinstance(command, str):
        raise BadRecord("names no command or task")
    key = record.get("key")
    if not isinstance(key, dict):
        raise BadRecord("has no key")
    settings = settings_of(record)
    return Row(
        command=command,
        model=model["spec"],
        task=task,
        values=values,
        score_metric=metrics.get("metric") if "score" in values else None,
        settings=cache.key_hash(settings, length=8),
        created=str(record.get("created", "")),
        path=str(path),
        settings_detail=settings,
        curve=_curve(record) if command == "synthetic" else None,
        arch=_arch(model),
        **compute_of(record),
    )


def _arch(model: dict[str, Any]) -> str:
    """The architecture of each member of a model identity, joined as the spec is."""
    members = model.get("members")
    archs = [m.get("arch") for m in members if isinstance(m, dict)] if isinstance(members, list) else []
    if not archs:
        archs = [model.get("arch")]
    return "+".join(a for a in archs if isinstance(a, str))


def compute_of(record: dict[str, Any]) -> dict[str, str]:
    """The device kind and precision of a record: from its key (top level for synthetic and
    realworld, under ``pipeline`` for causal3dident and downstream), else from the config
    and the environment it records; "" for what it does not say."""
    key = record.get("key") or {}
    pipeline = key.get("pipeline") if isinstance(key.get("pipeline"), dict) else {}
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    env = record.get("environment") if isinstance(record.get("environment"), dict) else {}
    out = {}
    for name, fallback in (("device", env.get("device")), ("precision", config.get("precision"))):
        found = [v for v in (key.get(name), pipeline.get(name), fallback) if isinstance(v, str) and v]
        # The environment names the device itself ("cuda:0"); the key, its kind.
        out[name] = found[0].split(":")[0] if found else ""
    return out


def _curve(record: dict[str, Any]) -> dict[str, list] | None:
    """The grid values and per-value curves of a synthetic record, if they agree in length."""
    transform = record.get("transform")
    curves = record["metrics"].get("curves")
    if not (isinstance(transform, dict) and isinstance(curves, dict)):
        return None
    values = transform.get("values")
    out: dict[str, list] = {"values": values} if isinstance(values, list) and values else {}
    for m in ("similarity", "distance"):
        c = curves.get(m)
        if isinstance(c, list) and out and len(c) == len(values) and all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) for v in c):
            out[m] = c
    return out if "similarity" in out else None


def collect(
    roots: Iterable[Path],
    models: list[str] | None = None,
    commands: list[str] | None = None,
    tasks: list[str] | None = None,
    all_runs: bool = False,
    precisions: list[str] | None = None,
) -> tuple[list[Row], list[Skipped]]:
    """The rows of every usable result file under ``roots`` (filtered), and the files
    that were skipped with the reason.

    Runs of one (command, model, task) at two precisions are never merged or chosen
    between: the precision is part of the settings, so each keeps its own settings group
    (``precisions`` keeps only some). Rows are sorted by command, then precision (fp32,
    tf32, bf16, fp16, then anything else, then unknown), then settings, model and task.
    """
    rows: list[Row] = []
    skipped: list[Skipped] = []
    for root in roots:
        for path, record, problem in scan_results(root):
            if problem is None:
                try:
                    rows.append(row_from_record(record, path))
                    continue
                except BadRecord as exc:
                    problem = str(exc)
            skipped.append(Skipped(str(path), problem))
    if models:
        rows = [r for r in rows if r.model in models]
    if commands:
        rows = [r for r in rows if r.command in commands]
    if tasks:
        rows = [r for r in rows if r.task in tasks]
    if precisions:
        rows = [r for r in rows if r.precision in precisions]
    if all_runs:
        return sorted(rows, key=lambda r: (r.command, r.model, r.task, precision_rank(r.precision), r.created)), skipped
    newest: dict[tuple, Row] = {}
    for r in rows:
        ident = (r.command, r.model, r.task, r.settings)
        if ident not in newest or r.created > newest[ident].created:
            newest[ident] = r
    return sorted(newest.values(),
                  key=lambda r: (r.command, precision_rank(r.precision), r.settings, r.model, r.task)), skipped


#: The precisions in order from the most to the least precise (``sslinv.runtime.PRECISIONS``,
#: which this module does not import: it would bring torch).
PRECISION_ORDER = ("fp32", "tf32", "bf16", "fp16")


def precision_rank(precision: str) -> tuple[int, str]:
    """Sort key: the known precisions in ``PRECISION_ORDER``, then others by name, then "" (unknown)."""
    if precision in PRECISION_ORDER:
        return PRECISION_ORDER.index(precision), ""
    return (len(PRECISION_ORDER), precision) if precision else (len(PRECISION_ORDER) + 1, "")
