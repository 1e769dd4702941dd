"""`sslinv realworld`: invariance to real changes of viewpoint, light and blur."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sslinv.cli import options as o
from sslinv.cli.common import check_crop, emit, evaluation_command
from sslinv.cli.output import stdout


def complete_dataset(incomplete: str) -> list[str]:
    from sslinv.data.realworld import DEMO_NAMES, NAMES

    return [n for n in ("all", *NAMES, *DEMO_NAMES) if n.lower().startswith(incomplete.lower())]


@evaluation_command(skip_bad=True)
def realworld(
    rt,
    json_: bool,
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset", "-d",
            help="A real-world dataset (repeatable): COIL100, ALOI-viewpoint, ALOI-illumination, "
            "ALOI-temperature, ALOT-viewpoint, ALOT-illumination, ALOT-temperature, ExposureErrors, "
            "DaLI, Flickr1024, RealBlur; or 'all' for every one present under the data root. "
            "Built in (no download, used by sslinv demo): demo-viewpoint, demo-lighting.",
            autocompletion=complete_dataset, rich_help_panel=o.RUN,
        ),
    ],
    stats_data: Annotated[
        Optional[str],
        typer.Option(
            "--stats-data",
            help="Pool for the feature mean and covariance: an image folder (class/*.jpg or flat; "
            "an ImageNet root holding val/ means its val/), or 'demo'. Default: <data-root>/imagenet/val.",
            show_default=False, autocompletion=o.complete_data, rich_help_panel=o.DATA,
        ),
    ] = None,
    resize: Annotated[int, typer.Option("--resize", min=1, help="Shorter side of the real-world images after resizing.", rich_help_panel=o.DATA)] = 224,
    crop_size: Annotated[int, typer.Option("--crop-size", min=1, help="Centre crop of the real-world images.", rich_help_panel=o.DATA)] = 224,
    stats_resize: Annotated[
        int, typer.Option("--stats-resize", min=1, help="Resize of the statistics pool images (the reference's synthetic pipeline).", rich_help_panel=o.DATA)
    ] = 256,
    stats_crop: Annotated[
        int, typer.Option("--stats-crop-size", min=1, help="Centre crop of the statistics pool images.", rich_help_panel=o.DATA)
    ] = 224,
) -> None:
    """Measure how invariant a model's features are to real changes of view, light and blur.

    Each dataset is a set of groups (one object or scene under a real change). Per group, the whitened features of its views are compared pairwise: mean cosine similarity over pairs i != j and mean Mahalanobis distance over pairs i < j, then averaged over groups (Ericsson et al. 2021, protocol section 3). The reference's similarity also counts the pairs i == j; it is reported as 'ref. sim.' = (1 + (k-1) sim) / k. Statistics are those of the model on the pool (computed once and cached). Finished results are cached.

    Example: sslinv realworld --model default --dataset COIL100
    """
    from sslinv.evaluate.realworld import RealWorldConfig, expand_datasets, run

    check_crop(resize, crop_size)
    check_crop(stats_resize, stats_crop, "--stats-resize", "--stats-crop-size")
    expand_datasets(dataset)  # an unknown name fails here, with a did-you-mean
    cfg = RealWorldConfig(
        runtime=rt,
        datasets=list(dataset),
        stats_data=stats_data,
        resize=resize,
        crop=crop_size,
        stats_resize=stats_resize,
        stats_crop=stats_crop,
    )
    emit("realworld", run, cfg, json_, lambda results: {"statistics": results[0].record.get("statistics")},
         render_table)


def render_table(model: str, results) -> None:
    from rich.table import Table

    first = results[0].record
    stats = first["statistics"]
    title = (
        f"{model}: real-world invariance ({first['pipeline']['resize']}/{first['pipeline']['crop']}; "
        f"statistics over {stats.get('num_images', '?')} images of {stats['pool']['name']}, "
        f"{stats['resize']}/{stats['crop']})"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("dataset")
    table.add_column("groups", justify="right")
    table.add_column("images", justify="right", no_wrap=True)
    table.add_column("k", justify="right")
    table.add_column("similarity", justify="right")
    table.add_column("ref. sim.", justify="right")
    table.add_column("distance", justify="right")
    table.add_column("", style="dim")
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
    for r in results:
        skipped = len(r.record.get("metrics", {}).get("skipped_images", []))
        table.add_row(
            r.dataset, str(r.num_groups), f"{r.num_images}" + (f" ({skipped} skipped)" if skipped else ""), str(r.k), fmt(r.similarity), fmt(r.similarity_reference),
            fmt(r.distance), "cached" if r.cached else "",
        )
    stdout.print(table)
    stdout.print(
        "[dim]similarity: mean cosine of whitened views over pairs i != j (1 = invariant); "
        "ref. sim.: the reference's number, which also counts the k pairs i == j: "
        "(1 + (k-1) sim) / k; distance: mean Mahalanobis distance over pairs i < j "
        f"(0 = invariant). Per-group values are in the result files under "
        f"{results[0].result_file.rsplit('/', 2)[0]}.[/]",
        highlight=False,
    )
