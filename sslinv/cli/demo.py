"""`sslinv demo`: pretrain three tiny models on built-in data and run the whole study."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from sslinv.cli import options as o
from sslinv.cli.output import handle_errors, is_main_rank, print_json, progress_reporter, stderr, stdout


@handle_errors()
def demo(
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Pretraining epochs per model (1,024 images each); "
                                        "more epochs make the finding clearer.", rich_help_panel=o.RUN)] = 6,
    k: Annotated[int, typer.Option("--k", min=2, help="Parameter values per synthetic transformation.",
                                   rich_help_panel=o.RUN)] = 8,
    num_images: Annotated[int, typer.Option("--num-images", min=2, help="Pool images transformed per synthetic transformation.",
                                            rich_help_panel=o.RUN)] = 64,
    force: Annotated[bool, typer.Option("--force", help="Recompute every step (retrain the three demo models).",
                                        rich_help_panel=o.RUN)] = False,
    json_: o.Json = False,
    verbose: o.Verbose = False,
    cache_dir: o.CacheDir = None,
    device: o.Device = None,
    workers: o.Workers = None,
) -> None:
    """Run the whole study in minutes on a CPU: no downloads, nothing to prepare.

    Pretrains three MoCo v2 models (ResNet-18 at 64 px) with the paper's default, ventral (crop and flip) and dorsal (colour jitter, grey-scale, blur) augmentations on the built-in painted images, measures their invariance to the 18 synthetic transformations and to real-world-style changes of viewpoint and lighting, probes them on a classification and a landmark task, and checks the paper's central finding: ventral more invariant to spatial transformations, dorsal to colour ones. Every step is cached: a rerun prints the results at once. The models are ordinary named models (demo-default, demo-ventral, demo-dorsal) that every command accepts.

    Example: sslinv demo
    """
    from sslinv.demo import DemoConfig, run

    cfg = DemoConfig(cache_dir=o.cache_root(cache_dir), epochs=epochs, k=k, num_images=num_images,
                     device=device, workers=workers, force=force)
    from sslinv.cache import refreshing

    with refreshing(force):
        result = run(cfg, RichStages(enabled=is_main_rank()))
    if json_:
        print_json(result.summary())
        return
    render(result)


class _Titled:
    """A reporter that prints its stage's title before its first message or bar, so a
    stage found finished prints nothing."""

    def __init__(self, inner, title: str) -> None:
        self.inner, self.title, self.shown = inner, title, False

    def _show(self) -> None:
        if not self.shown and self.inner.enabled:
            stderr.print(f"[bold]{self.title}[/]", highlight=False)
        self.shown = True

    def bar(self, description: str, total: int | None, unit: str = "items", completed: int = 0):
        self._show()
        return self.inner.bar(description, total, unit, completed)

    def task(self, description: str, total: int):
        return self.bar(description, total).advance

    def warn(self, message: str) -> None:
        self._show()
        self.inner.warn(message)

    def info(self, message: str) -> None:
        self._show()
        self.inner.info(message)


class RichStages:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @contextlib.contextmanager
    def train(self, name: str) -> Iterator[Any]:
        with progress_reporter(self.enabled) as reporter:
            yield reporter

    @contextlib.contextmanager
    def evaluate(self, title: str) -> Iterator[Any]:
        from rich.markup import escape

        with progress_reporter(self.enabled) as reporter:
            yield _Titled(reporter, escape(title))


# ----------------------------------------------------------------------------- output


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _table(title: str, first: str, rows: dict[str, dict[str, float | None]], models: list[str],
           extra: dict[str, str] | None = None, digits: int = 3, higher_is_better: bool = True):
    """Rows are tasks, columns models; the best value in each row in bold."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column(first)
    if extra is not None:
        t.add_column("kind", style="dim")
    for m in models:
        t.add_column(m.removeprefix("demo-"), justify="right")
    for task, values in rows.items():
        finite = [v for v in values.values() if v is not None]
        best = (max if higher_is_better else min)(finite) if len(finite) > 1 else None
        cells = [f"[bold green]{_fmt(values.get(m), digits)}[/]" if best is not None and values.get(m) == best
                 else _fmt(values.get(m), digits) for m in models]
        t.add_row(task, *([extra.get(task, "")] if extra is not None else []), *cells)
    return t


def render(result) -> None:
    models = list(result.models)
    syn: dict[str, dict[str, float | None]] = {}
    kinds: dict[str, str] = {}
    for r in result.invariances:
        syn.setdefault(r["transform"], {})[r["model"]] = r["similarity"]
        kinds[r["transform"]] = r["kind"]
    stdout.print(_table("Synthetic invariance: similarity (1 = invariant)", "transform", syn, models, kinds))
    rw: dict[str, dict[str, float | None]] = {}
    for r in result.realworld:
        rw.setdefault(r["dataset"], {})[r["model"]] = r["similarity"]
    stdout.print(_table("Real-world-style invariance: similarity (1 = invariant)", "dataset", rw, models))
    ds: dict[str, dict[str, float | None]] = {}
    for r in result.downstream:
        label = f"{r['dataset']} ({'accuracy %' if r['metric'] == 'accuracy' else 'R^2'})"
        ds.setdefault(label, {})[r["model"]] = r["score"] * (100 if r["metric"] == "accuracy" else 1)
    stdout.print(_table("Downstream: linear probe, test score", "dataset", ds, models, digits=2))

    f = result.finding
    colour = {True: "green", False: "yellow"}
    stdout.print("[bold]The paper's central finding at this scale[/]", highlight=False)
    for group in ("spatial", "colour"):
        g = f[group]
        stdout.print(f"  [{colour.get(g.get('shows'), 'yellow')}]{g['text']}[/]", highlight=False)
    stdout.print(f"  {f['note']}", highlight=False)
    how = "every step was cached" if result.cached else f"finished in {result.seconds:.0f} s"
    stdout.print(f"[dim]{how}. Models: {', '.join(models)} (any command takes them by name).[/]", highlight=False)
    stdout.print(f"The report (tables, figures, correlations; open it in a browser): {result.report}", highlight=False)
