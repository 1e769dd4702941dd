"""`sslinv report` and the precision of each result: shown, kept apart, warned about when mixed."""

from __future__ import annotations

import csv
import io
import json

import pytest
from report_results import write
from typer.testing import CliRunner

from sslinv.cli.main import app

MODELS = {"m-a": 0.9, "m-b": 0.7, "m-c": 0.5, "m-d": 0.6}
DOWN = {"m-a": 0.8, "m-b": 0.6, "m-c": 0.5, "m-d": 0.7}
WARNING = "this report mixes precisions"


def mode(precision: str, device: str = "cuda") -> dict:
    return {"device": device, "precision": precision}


def study(root, synthetic_precision: dict[str, str], downstream_precision: str = "fp32"):
    """Synthetic results keyed as the command keys them (device and precision at the top of
    the key), downstream ones as downstream does (under ``pipeline``)."""
    for m, level in MODELS.items():
        for t in ("rotation", "grayscale"):
            write(root, "synthetic", m, t, {"similarity": level, "distance": 1 - level},
                  settings=mode(synthetic_precision[m]))
        write(root, "downstream", m, "cls", {"metric": "accuracy", "score": DOWN[m]},
              settings={"pipeline": {"resize": 73, **mode(downstream_precision)}})
    return root / "results"


def invoke(*args):
    return CliRunner().invoke(app, ["report", *args], prog_name="sslinv")


def precision_warnings(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if WARNING in line]


def test_one_precision_no_warning_and_precision_shown_everywhere(tmp_path):
    results = study(tmp_path / "cache", dict.fromkeys(MODELS, "fp32"))
    res = invoke("--results", str(results), "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert precision_warnings(res) == [] and res.stderr == ""
    out = json.loads(res.stdout)
    assert out["precision_mixed"] is False
    assert out["precisions"] == {"fp32": {"downstream": list(MODELS), "synthetic": list(MODELS)}}
    assert {(r["device"], r["precision"]) for r in out["results"]} == {("cuda", "fp32")}
    assert {t["precision"] for t in out["tables"]} == {"fp32"}
    assert {(c["x_precision"], c["y_precision"]) for c in out["correlations"]} == {("fp32", "fp32")}
    rows = list(csv.DictReader(io.StringIO(invoke("--results", str(results), "--format", "csv").stdout)))
    assert len(rows) == 12 and {(r["device"], r["precision"]) for r in rows} == {("cuda", "fp32")}
    page = tmp_path / "r.html"
    assert invoke("--results", str(results), "--html", str(page)).exit_code == 0
    head = page.read_text().split("<section", 1)[0]
    assert all(f"{m} <span class=\"meta\">(fp32 on cuda)</span>" in head for m in MODELS)
    assert "mixes precisions" not in page.read_text()


def test_precisions_mixed_across_models_warn_once_with_a_flag(tmp_path):
    results = study(tmp_path / "cache", {**dict.fromkeys(MODELS, "fp32"), "m-d": "bf16"})
    res = invoke("--results", str(results), "--format", "json")
    assert res.exit_code == 0, res.stderr
    (line,) = precision_warnings(res)  # once, on one line
    assert line.startswith("warning: ")
    assert "fp32: downstream (m-a, m-b, m-c, m-d), synthetic (m-a, m-b, m-c); bf16: synthetic (m-d)" in line
    assert '"Precision" in docs/gpu.md' in line and "shared" not in line
    out = json.loads(res.stdout)
    assert out["precision_mixed"] is True
    assert out["precisions"]["bf16"] == {"synthetic": ["m-d"]}
    # m-d's bf16 runs are a settings group of their own, after the fp32 one.
    syn = [t for t in out["tables"] if t["command"] == "synthetic"]
    assert [(t["precision"], t["models"]) for t in syn] == [("fp32", ["m-a", "m-b", "m-c"]), ("bf16", ["m-d"])]
    page = tmp_path / "r.html"
    res = invoke("--results", str(results), "--html", str(page), "--format", "csv")
    assert res.exit_code == 0 and len(precision_warnings(res)) == 1
    text = page.read_text()
    head = text.split("<section", 1)[0]
    assert 'm-d <span class="meta">(fp32 on cuda, bf16 on cuda)</span>' in head  # downstream, synthetic
    assert 'm-a <span class="meta">(fp32 on cuda)</span>' in head
    assert '<p class="note precision">This report mixes precisions' in head
    assert "settings " in text and ", bf16, 1 models</span></h3>" in text


def test_precisions_mixed_across_correlated_commands(tmp_path):
    """Every model's invariance at bf16 against every model's transfer at fp32."""
    results = study(tmp_path / "cache", dict.fromkeys(MODELS, "bf16"), downstream_precision="fp32")
    res = invoke("--results", str(results), "--format", "json")
    (line,) = precision_warnings(res)
    assert "fp32: downstream (m-a, m-b, m-c, m-d); bf16: synthetic (m-a, m-b, m-c, m-d)" in line
    out = json.loads(res.stdout)
    assert out["precision_mixed"] is True
    corrs = out["correlations"]
    assert corrs and all((c["x_precision"], c["y_precision"]) == ("bf16", "fp32") for c in corrs)
    assert all(c["n_models"] == 4 and c["rho"] is not None for c in corrs)


def test_one_result_at_every_precision_is_kept_once_per_precision_in_a_fixed_order(tmp_path):
    """The report never picks between precisions: each is its own settings group, the most
    precise first, whatever the files' dates; ``--precision`` keeps one."""
    root = tmp_path / "cache"
    dates = {"fp16": "2026-01-01", "bf16": "2026-01-02", "tf32": "2026-01-03", "fp32": "2026-01-04"}
    values = {"fp32": 0.50, "tf32": 0.51, "bf16": 0.53, "fp16": 0.52}
    for p in ("fp16", "bf16", "tf32", "fp32"):  # written least precise and oldest first
        write(root, "synthetic", "m-a", "rotation", {"similarity": values[p], "distance": 1.0},
              created=dates[p] + "T00:00:00+00:00", settings=mode(p))
    results = root / "results"
    out = json.loads(invoke("--results", str(results), "--format", "json").stdout)
    assert [(t["precision"], t["rows"][0]["rotation"]) for t in out["tables"]] == [
        ("fp32", 0.50), ("tf32", 0.51), ("bf16", 0.53), ("fp16", 0.52)]
    assert [r["precision"] for r in out["results"]] == ["fp32", "tf32", "bf16", "fp16"]
    assert out["precision_mixed"] is True
    md = invoke("--results", str(results), "--format", "markdown").stdout
    assert [line.rsplit(", ", 1)[1] for line in md.splitlines() if line.startswith("### synthetic")] == [
        "fp32]", "tf32]", "bf16]", "fp16]"]  # each table's title names its precision
    assert [line for line in md.splitlines() if line.startswith("| m-a |")] == [
        "| m-a | 0.5000 |", "| m-a | 0.5100 |", "| m-a | 0.5300 |", "| m-a | 0.5200 |"]
    # Within one precision (and settings) the newest run wins, as always.
    bf16 = write(root, "synthetic", "m-a", "rotation", {"similarity": 0.55, "distance": 1.0},
                 created="2026-02-01T00:00:00+00:00", settings=mode("bf16"))
    assert bf16.exists() and len(list(bf16.parent.glob("*.json"))) == 4  # replaced the file of the 0.53 run
    res = invoke("--results", str(results), "--format", "json", "--precision", "fp32")
    assert res.exit_code == 0 and precision_warnings(res) == []
    out = json.loads(res.stdout)
    assert out["precision_mixed"] is False and [r["similarity"] for r in out["results"]] == [0.50]
    res = invoke("--results", str(results), "--format", "csv", "--precision", "bf16", "--precision", "fp16")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [(r["precision"], float(r["similarity"])) for r in rows] == [("bf16", 0.55), ("fp16", 0.52)]
    assert len(precision_warnings(res)) == 1


def test_unknown_precision_is_never_mixed(tmp_path):
    """Files that do not record a precision (written before it was keyed) are 'unknown'."""
    root = tmp_path / "cache"
    write(root, "synthetic", "old", "rotation", {"similarity": 0.4, "distance": 1.0})
    write(root, "synthetic", "new", "rotation", {"similarity": 0.5, "distance": 1.0}, settings=mode("bf16", "cpu"))
    res = invoke("--results", str(root / "results"), "--format", "json")
    assert res.exit_code == 0 and precision_warnings(res) == []
    out = json.loads(res.stdout)
    assert out["precision_mixed"] is False
    assert out["precisions"] == {"bf16": {"synthetic": ["new"]}, "unknown": {"synthetic": ["old"]}}
    assert {r["model"]: r["precision"] for r in out["results"]} == {"new": "bf16", "old": ""}
    page = tmp_path / "r.html"
    assert invoke("--results", str(root / "results"), "--html", str(page)).exit_code == 0
    head = page.read_text().split("<section", 1)[0]
    assert 'new <span class="meta">(bf16 on cpu)</span>' in head and "old</td>" in head


def test_unknown_precision_option_is_a_one_line_error(tmp_path):
    res = invoke("--results", str(tmp_path), "--precision", "fp64")
    assert res.exit_code == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Unknown precision 'fp64'" in res.stderr and "Did you mean" in res.stderr


@pytest.mark.parametrize("record, expected", [
    ({"key": {"device": "cuda", "precision": "bf16"}}, {"device": "cuda", "precision": "bf16"}),
    ({"key": {"pipeline": {"device": "cpu", "precision": "fp32"}}}, {"device": "cpu", "precision": "fp32"}),
    # Not in the key (an early file): the config and the environment say.
    ({"key": {}, "config": {"precision": "tf32"}, "environment": {"device": "cuda:1"}},
     {"device": "cuda", "precision": "tf32"}),
    ({"key": {}, "config": {"precision": None}, "environment": "?"}, {"device": "", "precision": ""}),
])
def test_device_and_precision_come_from_the_key(record, expected):
    from sslinv.report.collect import compute_of

    assert compute_of(record) == expected


def test_precision_order_is_the_runtime_one():
    from sslinv.report.collect import PRECISION_ORDER
    from sslinv.runtime import PRECISIONS

    assert PRECISION_ORDER == PRECISIONS
