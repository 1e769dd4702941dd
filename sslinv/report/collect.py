"""Read result files into tidy rows, one per (command, model, task, metric).

``report`` never recomputes: everything comes from the self-describing result files.
Runs with different protocol settings (pool, resize, crop, k, number of images...) get
different ``settings`` ids and are never merged into one cell; among runs with the same
settings the newest wins unless ``all_runs``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslinv import cache
from sslinv.results import iter_results

# Fields of a result key that name the model or the task, not the protocol settings.
_IDENTITY_FIELDS = {"model", "transform", "task", "dataset", "target", "k", "command"}

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command, "model": self.model, "task": self.task,
            **{m: self.values.get(m) for m in METRICS}, "score_metric": self.score_metric,
            "settings": self.settings, "created": self.created, "result_file": self.path,
        }


METRICS = ("similarity", "distance", "similarity_reference", "score")


def settings_of(record: dict[str, Any]) -> dict[str, Any]:
    """The protocol settings of a run: its cache key minus model and task identity.

    The requested ``--k`` (not the per-family k) is a setting of a synthetic run.
    """
    key = record.get("key") or {}
    out = {k: v for k, v in key.items() if k not in _IDENTITY_FIELDS}
    if record.get("command") == "synthetic":
        out["requested_k"] = (record.get("config") or {}).get("k")
    return out


def row_from_record(record: dict[str, Any], path: Path) -> Row | None:
    metrics = record.get("metrics") or {}
    values = {m: metrics[m] for m in METRICS if m in metrics and not isinstance(metrics[m], (dict, list))}
    if not values:
        return None
    settings = settings_of(record)
    return Row(
        command=record.get("command", "?"),
        model=(record.get("model") or {}).get("spec", "?"),
        task=record.get("task", "?"),
        values=values,
        score_metric=metrics.get("metric") if "score" in values else None,
        settings=cache.key_hash(settings, length=8),
        created=record.get("created", ""),
        path=str(path),
        settings_detail=settings,
    )


def collect(
    roots: Iterable[Path],
    models: list[str] | None = None,
    commands: list[str] | None = None,
    tasks: list[str] | None = None,
    all_runs: bool = False,
) -> list[Row]:
    rows: list[Row] = []
    for root in roots:
        for path, record in iter_results(root):
            row = row_from_record(record, path)
            if row is not None:
                rows.append(row)
    if models:
        rows = [r for r in rows if r.model in models]
    if commands:
        rows = [r for r in rows if r.command in commands]
    if tasks:
        rows = [r for r in rows if r.task in tasks]
    if all_runs:
        return sorted(rows, key=lambda r: (r.command, r.model, r.task, r.created))
    newest: dict[tuple, Row] = {}
    for r in rows:
        ident = (r.command, r.model, r.task, r.settings)
        if ident not in newest or r.created > newest[ident].created:
            newest[ident] = r
    return sorted(newest.values(), key=lambda r: (r.command, r.settings, r.model, r.task))
