"""The one progress protocol (sslinv.reporting) and its rich implementation (cli.output)."""

from __future__ import annotations

import io
import warnings

import pytest
from rich.console import Console

from sslinv.cli import output
from sslinv.reporting import NullReporter, Reporter, human_duration, human_size, lazy_task


@pytest.fixture
def screen(monkeypatch) -> io.StringIO:
    """What the rich reporter draws on stderr, as a terminal would receive it."""
    buf = io.StringIO()
    monkeypatch.setattr(output, "stderr", Console(file=buf, force_terminal=True, width=200, color_system=None))
    return buf


def test_default_reporter_draws_nothing_and_forwards_warnings():
    rep = Reporter()
    bar = rep.bar("x", 10, "bytes")
    bar.advance(3)
    bar.update(completed=5, total=None, status="s")
    bar.close(keep=False)
    rep.task("y", 4)(1)
    rep.info("quiet")
    with pytest.warns(UserWarning, match="careful"):
        rep.warn("careful")


def test_null_reporter_keeps_messages():
    rep = NullReporter()
    rep.info("a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep.warn("b")
    assert rep.infos == ["a"] and rep.warnings == ["b"]


def test_lazy_task_shows_its_bar_on_first_call():
    calls = []

    class Recorder(Reporter):
        def task(self, description, total):
            calls.append((description, total))
            return lambda n: calls.append(n)

    step = lazy_task(Recorder(), "work", 3)
    assert calls == []
    step(0)
    step(2)
    assert calls == [("work", 3), 0, 2]


def test_rich_bars_for_every_unit_with_status(screen):
    rep = output.RichReporter(enabled=True)
    download = rep.bar("downloading a.zip", 2_000_000, "bytes")
    download.advance(1_000_000)
    files = rep.bar("copying b", None, "files")
    files.advance(7)
    files.close()  # an unknown total becomes the count reached
    epoch = rep.bar("epoch 1/2", 16, "steps", 4)
    epoch.update(completed=5, status="loss 3.1234  acc@1 12.0%")
    rep.task("features", 10)(4)
    progress = rep.progress
    assert [t.description for t in progress.tasks] == ["downloading a.zip", "copying b", "epoch 1/2", "features"]
    assert progress.tasks[1].total == 7 and progress.tasks[2].completed == 5
    epoch.close(keep=False)
    assert "epoch 1/2" not in [t.description for t in progress.tasks]
    rep.info("epoch 1/2  [done]")  # markup-looking text is printed as it is
    progress.refresh()
    rep.close()
    drawn = screen.getvalue()
    assert "1.0/2.0 MB" in drawn and "7/7" in drawn and "4/10" in drawn
    assert "loss 3.1234  acc@1 12.0%" in drawn and "epoch 1/2  [done]" in drawn


def test_rich_reporter_disabled_draws_nothing(screen):
    rep = output.RichReporter(enabled=False)
    rep.bar("x", 3).advance(1)
    rep.task("y", 3)(1)
    rep.info("hidden")
    rep.close()
    assert rep.progress is None and screen.getvalue() == ""


def test_human_formats():
    assert human_size(None) == "?" and human_size(999) == "999 B" and human_size(170_498_071) == "170.5 MB"
    assert human_duration(None) == "-" and human_duration(5) == "5s" and human_duration(125) == "2m05s"
    assert human_duration(3725) == "1h02m"
