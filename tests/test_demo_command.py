"""`sslinv demo`: the finding's verdicts, and the whole pipeline at a tiny scale."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from sslinv import demo as demo_mod
from sslinv.cli.main import app
from sslinv.transforms import FAMILIES, get_family

SPATIAL = [n for n in FAMILIES.names() if get_family(n).kind == "spatial"]


def _inv(values: dict[tuple[str, str], float]) -> list[dict]:
    return [{"model": m, "transform": t, "kind": demo_mod._kind(t), "similarity": v} for (m, t), v in values.items()]


def _values(spatial_v, spatial_d, colour_v, colour_d) -> dict:
    out = {}
    for t, v, d in zip(SPATIAL, spatial_v, spatial_d):
        out[("demo-ventral", t)], out[("demo-dorsal", t)] = v, d
    for t, v, d in zip(demo_mod.COLOUR, colour_v, colour_d):
        out[("demo-ventral", t)], out[("demo-dorsal", t)] = v, d
    return out


def test_finding_shows_when_expected_model_wins_mean_and_majority():
    f = demo_mod.finding(_inv(_values([0.5] * 8, [0.4] * 8, [0.2] * 5, [0.3] * 5)), epochs=6, images=1024)
    assert f["shows"] is True
    assert f["spatial"]["wins"] == 8 and f["spatial"]["of"] == 8 and f["spatial"]["verdict"] == "shows"
    assert f["colour"]["more_invariant"] == "demo-dorsal" and f["colour"]["wins"] == 5
    assert f["colour"]["mean_similarity"] == {"demo-dorsal": pytest.approx(0.3), "demo-ventral": pytest.approx(0.2)}
    assert "Both halves" in f["note"]


def test_finding_in_part_and_not_at_all():
    # Spatial: ventral higher on the mean (one big win) but loses 7 of 8: in part.
    # Colour: ventral more invariant everywhere: does not show.
    f = demo_mod.finding(_inv(_values([0.9] + [0.30] * 7, [0.1] + [0.31] * 7, [0.5] * 5, [0.1] * 5)), 2, 1024)
    assert f["spatial"]["verdict"] == "shows in part" and f["spatial"]["shows"] is False
    assert f["colour"]["verdict"] == "does not show" and f["colour"]["wins"] == 0
    assert f["shows"] is False
    assert "2 epochs" in f["note"] and "1,024" in f["note"]


TINY = demo_mod.Recipe(pool_images=48, train_side=40, image_size=32, eval_resize=36, arch="resnet_tiny",
                       batch_size=16, lr=0.06, moco_k=16, moco_m=0.99)


def test_demo_end_to_end_json_rerun_and_report(tmp_path, monkeypatch):
    """The whole chain at a tiny scale: fresh cache -> JSON with every (model, transform);
    a rerun computes nothing; report lists every (model, task) once."""
    monkeypatch.setattr(demo_mod, "DEFAULT_RECIPE", TINY)
    cache = tmp_path / "cache"
    args = ["demo", "--json", "--epochs", "1", "--k", "2", "--num-images", "8", "--cache-dir", str(cache)]
    res = CliRunner().invoke(app, args, prog_name="sslinv")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)

    models = ["demo-default", "demo-ventral", "demo-dorsal"]
    assert list(out["models"]) == models
    assert out["models"]["demo-ventral"]["augment"] == ["resized_crop", "h_flip"]
    pairs = {(r["model"], r["transform"]) for r in out["invariances"]}
    assert pairs == {(m, t) for m in models for t in FAMILIES.names()}
    for r in out["invariances"]:
        assert {"model", "transform", "similarity"} <= set(r)
        assert -1 <= r["similarity"] <= 1
    assert {(r["model"], r["dataset"]) for r in out["realworld"]} == {
        (m, d) for m in models for d in ("demo-viewpoint", "demo-lighting")}
    scores = {(r["model"], r["dataset"]): r for r in out["downstream"]}
    assert set(scores) == {(m, d) for m in models for d in ("demo-classes", "demo-landmarks")}
    assert all(scores[(m, "demo-classes")]["metric"] == "accuracy" for m in models)
    assert all(0 <= scores[(m, "demo-classes")]["score"] <= 1 for m in models)
    assert out["finding"]["spatial"]["of"] == len(SPATIAL) and out["finding"]["colour"]["of"] == 5
    assert out["cached"] is False and out["settings"]["recipe"]["arch"] == "resnet_tiny"

    # A rerun finds every step finished and gives the same numbers.
    again = json.loads(CliRunner().invoke(app, args, prog_name="sslinv").stdout)
    assert again["cached"] is True
    assert again["invariances"] == out["invariances"] and again["downstream"] == out["downstream"]

    # The demo's results are ordinary result files: report lists each (model, task) once.
    rep = CliRunner().invoke(app, ["report", "--format", "csv", "--cache-dir", str(cache)], prog_name="sslinv")
    assert rep.exit_code == 0, rep.output
    rows = list(csv.DictReader(io.StringIO(rep.stdout)))
    keys = [(r["command"], r["model"], r["task"]) for r in rows]
    assert len(keys) == len(set(keys)) == 3 * (18 + 2 + 2)

    # The demo ends with the HTML report of its three models; the table output names it.
    page = cache / "demo" / "report.html"
    assert out["report"] == str(page) and all(m in page.read_text() for m in models)
    table = CliRunner().invoke(app, args[:1] + args[2:], prog_name="sslinv")
    assert table.exit_code == 0, table.output
    assert "central finding" in table.stdout and str(page) in table.stdout


def test_fewer_epochs_than_trained_says_what_to_pass(tmp_path, monkeypatch):
    from sslinv.errors import UsageError
    from sslinv.pretrain import loop, state

    def trained_longer(cfg, reporter=None):
        raise state.TrainedLongerError("run has 6 epochs", trained=6)

    monkeypatch.setattr(loop, "run", trained_longer)
    cfg = demo_mod.DemoConfig(cache_dir=tmp_path, epochs=2)
    with pytest.raises(UsageError, match="trained for 6 epochs, more than --epochs 2. Pass --epochs 6"):
        demo_mod._pretrain(cfg, "ventral", tmp_path, None)
