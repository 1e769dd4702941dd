"""`sslinv report`: tables, formats, correlations and figures from result files."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from scipy.stats import permutation_test, spearmanr
from typer.testing import CliRunner

from sslinv import results
from sslinv.cli.main import app

MODELS = ["default", "ventral", "dorsal", "supervised"]
SYN = {  # similarity per model and transform
    "default": {"rotation": 0.50, "grayscale": 0.90},
    "ventral": {"rotation": 0.70, "grayscale": 0.60},
    "dorsal": {"rotation": 0.30, "grayscale": 0.95},
    "supervised": {"rotation": 0.40, "grayscale": 0.80},
}
DOWN = {"default": 0.91, "ventral": 0.88, "dorsal": 0.70, "supervised": 0.93}


def _write(root, command, model, task, metrics, created, settings=None, sha="a"):
    key = {"command": command, "model": {"spec": model, "sha256": sha}, "task": task, "resize": 256, **(settings or {})}
    record = {"key": key, "command": command, "created": created, "config": {"k": None},
              "model": {"spec": model}, "task": task, "metrics": metrics}
    results.write_result(results.result_path(root, command, model, task, key), record)


@pytest.fixture
def results_dir(tmp_path):
    root = tmp_path / "cache"
    for m in MODELS:
        for t, s in SYN[m].items():
            _write(root, "synthetic", m, t, {"similarity": s, "distance": 10 * (1 - s), "curves": {
                "similarity": [1.0, s, s - 0.1], "distance": [0.0, 1.0, 2.0]}}, "2026-01-01T00:00:00+00:00")
        _write(root, "downstream", m, "cifar10", {"metric": "accuracy", "score": DOWN[m]}, "2026-01-01T00:00:00+00:00")
    # A stale older run of the same cell (an earlier checkpoint), and a run under other settings.
    _write(root, "synthetic", "default", "rotation", {"similarity": 0.01, "distance": 99.0}, "2025-01-01T00:00:00+00:00",
           sha="old")
    _write(root, "synthetic", "default", "rotation", {"similarity": 0.77, "distance": 3.0}, "2026-02-01T00:00:00+00:00",
           settings={"resize": 128})
    return root / "results"


def invoke(*args):
    return CliRunner().invoke(app, ["report", *args], prog_name="sslinv")


def test_csv_lists_every_model_and_task_once_newest_wins(results_dir):
    res = invoke("--results", str(results_dir), "--format", "csv")
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    keys = [(r["command"], r["model"], r["task"], r["settings"]) for r in rows]
    assert len(keys) == len(set(keys))
    main = [r for r in rows if r["command"] == "synthetic" and r["model"] == "default" and r["task"] == "rotation"]
    # Two settings -> two lines, never merged; the stale 0.01 run is gone.
    assert sorted(float(r["similarity"]) for r in main) == [0.5, 0.77]
    assert {(r["model"], r["task"]) for r in rows if r["command"] == "downstream"} == {(m, "cifar10") for m in MODELS}


def test_all_runs_keeps_stale_runs(results_dir):
    res = invoke("--results", str(results_dir), "--format", "csv", "--all-runs")
    sims = [float(r["similarity"]) for r in csv.DictReader(io.StringIO(res.stdout))
            if r["model"] == "default" and r["task"] == "rotation"]
    assert sorted(sims) == [0.01, 0.5, 0.77]


def test_json_correlations_match_scipy(results_dir):
    res = invoke("--results", str(results_dir), "--format", "json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    corr = {(c["x"], c["y"]): c for c in out["correlations"]}
    # Only the main settings group has all four models.
    tables = [t for t in out["tables"] if t["command"] == "synthetic" and len(t["models"]) == 4]
    assert len(tables) == 1
    for t in ("rotation", "grayscale"):
        c = [c for (x, y), c in corr.items() if x == f"synthetic:{t}" and y == "downstream:cifar10" and c["n_models"] == 4]
        assert len(c) == 1
        xs, ys = [SYN[m][t] for m in c[0]["models"]], [DOWN[m] for m in c[0]["models"]]
        assert c[0]["rho"] == pytest.approx(spearmanr(xs, ys).statistic)
        # Four models: the exact p over all 24 orderings, not the t approximation.
        exact = permutation_test((xs,), lambda a, ys=ys: spearmanr(a, ys).statistic, permutation_type="pairings",
                                 n_resamples=np.inf)
        assert c[0]["p_value"] == pytest.approx(exact.pvalue) and c[0]["p_method"] == "exact"
    # The other settings group has one model: refused politely, not computed.
    small = [c for c in out["correlations"] if c["n_models"] < 3]
    assert small and all(c["rho"] is None and "at least 3" in c["note"] for c in small)


def test_filters_and_formats(results_dir, tmp_path):
    res = invoke("--results", str(results_dir), "--model", "ventral", "--command", "synthetic", "--format", "markdown")
    assert res.exit_code == 0
    assert "| ventral |" in res.stdout and "dorsal" not in res.stdout
    res = invoke("--results", str(results_dir), "--format", "latex", "--metric", "distance", "-o", str(tmp_path / "t.tex"))
    assert res.exit_code == 0
    tex = (tmp_path / "t.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\textbf{" in tex
    res = invoke("--results", str(results_dir))
    assert res.exit_code == 0 and "Spearman" in res.stdout


def test_best_value_is_highlighted_per_column(results_dir):
    md = invoke("--results", str(results_dir), "--command", "synthetic", "--format", "markdown").stdout
    assert "| ventral | **0.7000** |" in md or "**0.7000**" in md  # best rotation similarity
    md = invoke("--results", str(results_dir), "--command", "synthetic", "--format", "markdown", "--metric", "distance").stdout
    assert "**3.0000**" in md or "**0.5000**" in md  # lowest distance is best


def test_screen_tables_keep_settings_in_title_and_transpose_wide_tables():
    from rich.console import Console

    from sslinv.report.tables import Table, to_rich

    tasks = [f"t{i}" for i in range(6)]
    wide = Table("synthetic", "similarity", "whitened cosine", "abcd1234", {}, ["m1", "m2"], tasks,
                 {(m, t): (0.1 * i if m == "m1" else 0.05 * i) for m in ("m1", "m2") for i, t in enumerate(tasks)})
    console = Console(width=60, record=True, color_system=None)
    for t in to_rich([wide]):
        console.print(t)
    text = console.export_text()
    assert "[settings abcd1234]" in text  # not eaten as rich markup
    header = next(line for line in text.splitlines() if "transform" in line)
    assert "m1" in header and "m2" in header  # models are columns, transforms rows
    assert sum(line.lstrip("│ ").startswith("t") for line in text.splitlines()) == 6
    assert "…" not in text


def test_plots_are_svg_files_with_every_kind_of_figure(results_dir, tmp_path, monkeypatch):
    import builtins
    import xml.etree.ElementTree as ET

    real = builtins.__import__

    def no_matplotlib(name, *a, **k):  # the figures need no plotting library
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    res = invoke("--results", str(results_dir), "--plot", str(tmp_path / "fig"))
    assert res.exit_code == 0, res.stderr
    files = sorted((tmp_path / "fig").iterdir())
    names = [p.name for p in files]
    assert all(n.endswith(".svg") for n in names)
    for prefix in ("profile-", "correlation-synthetic-", "scatter-synthetic-"):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    # These files record curves but not the parameter values: no curve on a made-up axis.
    assert not any(n.startswith("curves-") for n in names)
    assert sum(n.startswith("profile-") for n in names) == 5  # 4 models + the 1-model settings group
    for p in files:
        assert ET.parse(p).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_errors(tmp_path):
    res = invoke("--results", str(tmp_path / "none"))
    assert res.exit_code == 3 and "No results folder" in res.stderr
    (tmp_path / "empty").mkdir()
    assert invoke("--results", str(tmp_path / "empty")).exit_code == 3
    res = invoke("--results", str(tmp_path / "empty"), "--command", "synthtic")
    assert res.exit_code == 2 and "Did you mean 'synthetic'" in res.stderr


def test_reads_real_synthetic_results(cache_dir, image_folder):
    run = CliRunner().invoke(app, ["synthetic", "--model", "random-tiny", "--data", str(image_folder), "-t", "h_flip",
                                   "--num-images", "3", "--resize", "64", "--crop-size", "56", "--workers", "0",
                                   "--device", "cpu", "--json"])
    assert run.exit_code == 0, run.stderr
    out = json.loads(invoke("--format", "json").stdout)
    (row,) = out["results"]
    assert row["model"] == "random-tiny" and row["task"] == "h_flip"
    assert row["arch"] == "resnet_tiny"  # read from the model identity
    assert (row["device"], row["precision"]) == ("cpu", "fp32")  # read from the result's key
    assert out["precision_mixed"] is False and out["tables"][0]["precision"] == "fp32"
    assert row["similarity"] == pytest.approx(json.loads(run.stdout)["results"][0]["similarity"])


def test_each_model_shows_its_architecture_per_member(tmp_path):
    """The architecture of every member comes from the result file's model identity."""
    root = tmp_path / "cache"
    members = [{"name": "dino-vits16", "arch": "vit_small_patch16_224"}, {"name": "default", "arch": "resnet50"}]
    key = {"command": "synthetic", "model": {"spec": "dino-vits16+default"}, "task": "rotation"}
    record = {"key": key, "command": "synthetic", "created": "2026-01-01T00:00:00+00:00", "config": {},
              "model": {"spec": "dino-vits16+default", "members": members}, "task": "rotation",
              "metrics": {"similarity": 0.5, "distance": 1.0}}
    results.write_result(results.result_path(root, "synthetic", "dino-vits16+default", "rotation", key), record)
    _write(root, "synthetic", "old", "rotation", {"similarity": 0.4, "distance": 2.0}, "2026-01-01T00:00:00+00:00")
    out = json.loads(invoke("--results", str(root / "results"), "--format", "json").stdout)
    archs = {r["model"]: r["arch"] for r in out["results"]}
    assert archs == {"dino-vits16+default": "vit_small_patch16_224+resnet50", "old": ""}
    page = tmp_path / "r.html"
    assert invoke("--results", str(root / "results"), "--html", str(page)).exit_code == 0
    assert "(vit_small_patch16_224+resnet50)" in page.read_text()
