"""`report --html`, `--plot`, and result files that cannot be used (through the CLI)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from report_results import study, write
from typer.testing import CliRunner

from sslinv.cli.main import app

MODELS = {"m-a": 0.9, "m-b": 0.7, "m-c": 0.5, "m-d": 0.6}
TRANSFORMS = ["rotation", "translation", "resized_crop", "h_flip", "posterize"]
DOWN = {"cls": {"m-a": 0.8, "m-b": 0.6, "m-c": 0.5, "m-d": 0.7}, "marks": {"m-a": 0.1, "m-b": 0.3, "m-c": 0.2, "m-d": 0.4}}
REAL = {"view": {"m-a": 0.6, "m-b": 0.5, "m-c": 0.3, "m-d": 0.4}}


# A result file's opening, up to its metrics.
HEAD = '{"schema": "sslinv.result/1", "command": "synthetic", "model": {"spec": "m-a"}, "task": "x", "key": {}, '


@pytest.fixture
def results_dir(tmp_path):
    return study(tmp_path / "cache", MODELS, TRANSFORMS, DOWN, REAL)


def invoke(*args):
    return CliRunner().invoke(app, ["report", *args], prog_name="sslinv")


def one_line_error(res, code: int, *needles: str) -> None:
    assert res.exit_code == code, (res.exit_code, res.output)
    err = res.stderr.strip()
    assert "Traceback" not in res.stderr and len(err.splitlines()) == 1, res.stderr
    for n in needles:
        assert n in err, err


def test_html_is_one_self_contained_page(results_dir, tmp_path):
    page = tmp_path / "out" / "report.html"
    res = invoke("--results", str(results_dir), "--html", str(page))
    assert res.exit_code == 0, res.stderr
    text = page.read_text()
    # Nothing outside the file: no script, no stylesheet or image link, no URL but the SVG namespace.
    assert "<script" not in text.lower() and "<link" not in text.lower() and "<img" not in text.lower()
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"(?:href|src)=\"(?!#)", text)  # only links inside the page
    # The header names the models, tasks, settings groups and version.
    import sslinv

    head = text[: text.index("<section")]
    assert all(m in head for m in MODELS) and all(t in head for t in [*TRANSFORMS, "cls", "marks", "view"])
    assert f"sslinv {sslinv.__version__}" in head and "Settings groups" in head
    # Every figure is inline SVG, well-formed, and the kinds asked for are there.
    figs = re.findall(r'<figure class="fig" id="fig-([^"]+)">(<svg.*?</svg>)', text, flags=re.DOTALL)
    names = [n for n, _ in figs]
    for _, s in figs:
        ET.fromstring(s)
    assert sum(n.startswith("profile-") for n in names) == len(MODELS)
    assert {f"curves-{t}" for t in TRANSFORMS} <= {n.rsplit("-", 1)[0] for n in names}
    assert any(n.startswith("correlation-synthetic-") for n in names)
    assert any(n.startswith("scatter-synthetic-") for n in names)
    # The best value per row is marked: rotation's most invariant model.
    row = re.search(r"<tr><td>rotation</td>(.*?)</tr>", text).group(1)
    best = re.findall(r'<td class="best">([\d.]+)</td>', row)
    assert len(best) == 1 and float(best[0]) == max(float(v) for v in re.findall(r">([\d.]+)</td>", row))


def test_every_rho_in_the_page_comes_with_n_and_p(results_dir, tmp_path):
    page = tmp_path / "r.html"
    assert invoke("--results", str(results_dir), "--html", str(page)).exit_code == 0
    text = page.read_text()
    # In the matrices, each rho is followed by n and the exact p (4 models).
    cells = re.findall(r">([+-]\d\.\d\d)</text><text[^>]*>n=(\d+) p=([\d.e-]+)</text>", text)
    assert cells and all(n == "4" for _, n, _ in cells)
    assert all(float(p) >= 0.083 for _, _, p in cells)  # never below 2/4! (two digits shown)
    # Scatter plots: one labelled point per model.
    scatter = re.search(r'id="fig-scatter-[^"]+">(<svg.*?</svg>)', text, flags=re.DOTALL).group(1)
    assert all(f">{m}</text>" in scatter for m in MODELS) and "n = 4" in scatter


def test_curve_axes_in_the_figures_are_the_parameters(results_dir, tmp_path):
    """Each rotation point sits at its angle; each translation cell is one (dx, dy)."""
    from sslinv.transforms import get_family

    out = tmp_path / "fig"
    assert invoke("--results", str(results_dir), "--plot", str(out)).exit_code == 0
    rot = next(out.glob("curves-rotation-*.svg")).read_text()
    angles = [p["angle"] for p in get_family("rotation").grid(8, 73, 64).params]
    tips = re.findall(r"rotation angle, degrees: ([-\d.e]+)", rot)
    assert [float(a) for a in tips[: len(angles)]] == pytest.approx(angles, rel=1e-3)
    assert ">degrees<" not in rot and "rotation angle, degrees</text>" in rot  # the axis title
    tr = next(out.glob("curves-translation-*.svg")).read_text()
    shifts = {tuple(p["translate"]) for p in get_family("translation").grid(8, 73, 64).params}
    found = {(float(a), float(b)) for a, b in re.findall(r"m-a, translation \(([-\d.e]+), ([-\d.e]+)\)", tr)}
    assert len(found) == len(shifts) == 4
    for got, want in zip(sorted(found), sorted(shifts)):
        assert got == pytest.approx(want, rel=1e-3)
    assert "shift dx" in tr and "shift dy" in tr


def test_screen_and_markdown_show_n_and_exact_p(results_dir):
    res = invoke("--results", str(results_dir), "--command", "synthetic", "--command", "downstream",
                 "--format", "markdown")
    assert res.exit_code == 0
    assert "| rho | n | p |" in res.stdout and "(exact)" in res.stdout
    res = invoke("--results", str(results_dir))
    assert res.exit_code == 0 and "(exact)" in res.stdout and "2/n!" in res.stdout


@pytest.mark.parametrize("content, reason", [
    ('{"schema": "sslinv.result/1", "metrics": {"similar', "not valid JSON"),
    ("[]", "holds a JSON array"),
    ("null", "holds a JSON null"),
    ('"text"', "holds a JSON string"),
    (HEAD[:-2] + "}", "has no metrics"),
    (HEAD + '"metrics": {"similarity": "high"}}', "metric 'similarity' is not a finite number"),
    (HEAD + '"metrics": {"similarity": null, "distance": null}}', "every metric is null"),
    (HEAD + '"metrics": {"similarity": NaN}}', "not a finite number"),
])
def test_unusable_result_files_are_skipped_with_a_warning_or_fail_with_strict(results_dir, tmp_path, content, reason):
    bad = results_dir / "synthetic" / "m-a" / "broken.json"
    bad.write_text(content)
    res = invoke("--results", str(results_dir), "--format", "json")
    assert res.exit_code == 0 and "Traceback" not in res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert any(str(bad) in w and reason in w for w in warnings), res.stderr
    assert any("skipped 1 result file(s)" in w for w in warnings)
    out = json.loads(res.stdout)
    assert out["skipped"] == [{"result_file": str(bad), "reason": out["skipped"][0]["reason"]}]
    assert len(out["results"]) == len(MODELS) * (len(TRANSFORMS) + len(DOWN) + len(REAL))  # the good ones all there
    # The page lists the skipped file too.
    page = tmp_path / "r.html"
    assert invoke("--results", str(results_dir), "--html", str(page)).exit_code == 0
    assert "1 result file(s) skipped" in page.read_text()
    one_line_error(invoke("--results", str(results_dir), "--strict"), 3, "--strict", str(bad), reason)


def test_output_paths_of_the_wrong_kind_are_one_line_errors(results_dir, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    one_line_error(invoke("--results", str(results_dir), "--plot", str(a_file)), 2, "--plot takes a folder", str(a_file))
    one_line_error(invoke("--results", str(results_dir), "-f", "csv", "-o", str(tmp_path)), 2,
                   "--output takes a file", str(tmp_path))
    one_line_error(invoke("--results", str(results_dir), "--html", str(tmp_path)), 2, "--html takes a file")
    one_line_error(invoke("--results", str(results_dir), "--html", str(a_file / "r.html")), 2,
                   f"{a_file} is a file, not a folder")
    one_line_error(invoke("--results", str(results_dir), "-f", "csv", "-o", str(a_file / "r.csv")), 2,
                   f"{a_file} is a file, not a folder")
    one_line_error(invoke("--results", str(results_dir), "-o", str(tmp_path / "t.txt")), 2,
                   "--output writes csv, markdown, latex or json")
    assert a_file.read_text() == "x" and not (tmp_path / "t.txt").exists()


def test_page_without_correlations_or_curves(tmp_path):
    """Two models and no curves: tables only, and the page says why there is no rho."""
    root = tmp_path / "cache"
    for m, v in (("x", 0.5), ("y", 0.6)):
        write(root, "realworld", m, "view", {"similarity": v, "distance": 1 - v})
        write(root, "downstream", m, "cls", {"metric": "accuracy", "score": v})
    page = tmp_path / "r.html"
    res = invoke("--results", str(root / "results"), "--html", str(page))
    assert res.exit_code == 0, res.stderr
    text = page.read_text()
    assert "<figure" not in text and "needs at least 3 models" in text


def test_a_tie_marks_no_best_value():
    from sslinv.report.html import table_html
    from sslinv.report.tables import Table

    t = Table("synthetic", "similarity", "whitened cosine", "s", {}, ["a", "b", "c"], ["resized_crop", "rotation"],
              {("a", "resized_crop"): 1.0, ("b", "resized_crop"): 1.0, ("c", "resized_crop"): 0.5,
               ("a", "rotation"): 0.2, ("b", "rotation"): 0.3, ("c", "rotation"): 0.1})
    assert t.best("resized_crop") is None and t.best("rotation") == "b"
    assert table_html(t).count('class="best"') == 1


def test_tasks_of_one_downstream_run_share_a_table(tmp_path):
    """The task's own splits and the solver its target picks do not split the table."""
    root = tmp_path / "cache"
    probe = {"kind": "linear", "folds": 5, "seed": 0}
    for m, v in (("x", 0.5), ("y", 0.6)):
        for task, solver in (("cls", {"model": "logistic", "max_iter": 100, "tol": 1e-4}), ("marks", {"model": "ridge"})):
            write(root, "downstream", m, task, {"metric": "accuracy", "score": v},
                  settings={"probe": {**probe, **solver}, "test": {"name": task, "fingerprint": task + m}})
        write(root, "downstream", m, "cls", {"metric": "accuracy", "score": v}, settings={"probe": {**probe, "folds": 3}})
    out = json.loads(invoke("--results", str(root / "results"), "--format", "json").stdout)
    tables = sorted((t["settings_detail"]["probe"]["folds"], t["tasks"]) for t in out["tables"])
    assert tables == [(3, ["cls"]), (5, ["cls", "marks"])]  # other user settings still apart
