"""Small result files for the report tests, in the layout the commands write.

Synthetic records carry the real parameter grid of their family (``FAMILIES``), so the
tests can compare the report's axes with the parameters in the file.
"""

from __future__ import annotations

from pathlib import Path

from sslinv import results

CREATED = "2026-01-01T00:00:00+00:00"


def write(root: Path, command: str, model: str, task: str, metrics, created: str = CREATED,
          settings: dict | None = None, extra: dict | None = None) -> Path:
    key = {"command": command, "model": {"spec": model, "sha256": "a"}, "task": task, "resize": 73,
           **(settings or {})}
    record = {"key": key, "command": command, "created": created, "config": {"k": 8},
              "model": {"spec": model}, "task": task, "metrics": metrics, **(extra or {})}
    path = results.result_path(root, command, model, task, key)
    results.write_result(path, record)
    return path


def synthetic(root: Path, model: str, transform: str, level: float, k: int = 8, resize: int = 73,
              crop: int = 64) -> Path:
    """A synthetic result with the family's real grid; the curve falls with the distance
    from the identity, scaled by ``level`` (a model's invariance)."""
    from sslinv.transforms import get_family

    grid = get_family(transform).grid(k, resize, crop)
    ident = grid.identity if grid.identity is not None else 0
    sim = [1.0 if i == ident else level - 0.01 * abs(i - ident) for i in range(grid.k)]
    dist = [0.0 if i == ident else 10 * (1 - s) for i, s in enumerate(sim)]
    metrics = {"similarity": sum(sim) / len(sim), "distance": sum(dist) / len(dist),
               "curves": {"similarity": sim, "distance": dist}, "num_images": 4, "skipped_images": []}
    transform_rec = {"name": transform, "kind": get_family(transform).kind, "k": grid.k,
                     "identity_index": grid.identity, "values": grid.values, "params": grid.params}
    return write(root, "synthetic", model, transform, metrics, settings={"resize": resize, "crop": crop},
                 extra={"transform": transform_rec})


def study(root: Path, models: dict[str, float], transforms: list[str], downstream: dict[str, dict[str, float]],
          realworld: dict[str, dict[str, float]] | None = None) -> Path:
    """A whole small study: ``models`` maps each model to its invariance level; returns
    the results folder."""
    for m, level in models.items():
        for t in transforms:
            synthetic(root, m, t, level)
        for task, scores in downstream.items():
            write(root, "downstream", m, task, {"metric": "accuracy", "score": scores[m]})
        for task, sims in (realworld or {}).items():
            write(root, "realworld", m, task, {"similarity": sims[m], "distance": 1 - sims[m],
                                               "similarity_reference": sims[m]})
    return root / "results"
