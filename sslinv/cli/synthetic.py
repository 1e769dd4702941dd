"""`sslinv synthetic`: invariance to synthetic transformations."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sslinv.cli import options as o
from sslinv.cli.common import check_crop, emit, evaluation_command
from sslinv.cli.output import stdout


def expand_transforms(names: list[str]) -> list[str]:
    """``all`` -> every family; duplicates dropped, order kept."""
    out: list[str] = []
    for name in names:
        for n in o.TRANSFORM_NAMES if name == "all" else (name,):
            if n not in out:
                out.append(n)
    return out


@evaluation_command(skip_bad=True)
def synthetic(
    rt,
    json_: bool,
    transform: Annotated[
        list[str],
        typer.Option(
            "--transform", "-t",
            help="A transformation family (repeatable), or 'all' for the 18 of the paper.",
            autocompletion=o.complete_transform, rich_help_panel=o.RUN,
        ),
    ],
    k: Annotated[
        Optional[int],
        typer.Option("--k", min=2, help="Coarsen each grid to about k parameter values (at least 2; two-valued "
                     "families stay at 2; translation and shear take floor(sqrt(k))^2, resized_crop "
                     "floor(k^(1/4))^4: one crop below k = 16) \\[default: the paper's, 256 for most].",
                     show_default=False, rich_help_panel=o.RUN),
    ] = None,
    data: Annotated[
        Optional[str],
        typer.Option("--data", help="Statistics pool and image source: an image folder (class/*.jpg or flat), "
                     "or 'demo' for the built-in pool \\[default: <data-root>/imagenet/val].",
                     show_default=False, autocompletion=o.complete_data, rich_help_panel=o.DATA),
    ] = None,
    num_images: Annotated[
        str, typer.Option("--num-images", help="Distinct pool images to transform, or 'all'.", rich_help_panel=o.DATA)
    ] = "1000",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the image sample.", rich_help_panel=o.DATA)] = 0,
    resize: Annotated[int, typer.Option("--resize", min=1, help="Shorter side after resizing.", rich_help_panel=o.DATA)] = 256,
    crop_size: Annotated[int, typer.Option("--crop-size", min=1, help="Centre crop size.", rich_help_panel=o.DATA)] = 224,
    render: o.RenderOpt = o.Render.pil,
) -> None:
    """Measure how invariant a model's features are to synthetic transformations.

    For each sampled image and each parameter of a transformation family, the features of the transformed view are compared with those of the clean view: Mahalanobis distance and cosine similarity in the whitened feature space of the statistics pool (Ericsson et al. 2021, protocol section 2). Finished results are cached: a rerun with the same inputs prints them at once.

    Example: sslinv synthetic --model default --transform grayscale
    """
    from sslinv.evaluate.synthetic import SyntheticConfig, run

    check_crop(resize, crop_size)
    cfg = SyntheticConfig(
        runtime=rt,
        transforms=expand_transforms(transform),
        data=data,
        k=k,
        num_images=o.parse_count(num_images, "--num-images"),
        seed=seed,
        resize=resize,
        crop=crop_size,
        render=render.value,
    )
    emit("synthetic", run, cfg, json_, lambda results: {
        "dataset": results[0].record.get("dataset"),
        "render": _render(results),
        "num_images": results[0].num_images,  # measured: the sample less the skipped images
        "num_sampled": results[0].record["key"]["num_images"],
        "skipped_images": results[0].record["metrics"].get("skipped_images", []),
        "statistics": results[0].record.get("statistics"),
    }, render_table)


def render_table(model: str, results) -> None:
    from rich.table import Table

    first = results[0].record
    skipped = len(first["metrics"].get("skipped_images", []))
    title = (
        f"{model} on {first['dataset']['name']} ({results[0].num_images} images"
        + (f", {skipped} unreadable skipped" if skipped else "")
        + f", {first['key']['resize']}/{first['key']['crop']}"
        + (", views rendered on the device" if _render(results) == "device" else "")
        + ")"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("transform")
    table.add_column("k", justify="right")
    table.add_column("similarity", justify="right")
    table.add_column("distance", justify="right")
    table.add_column("", style="dim")
    for r in results:
        fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
        table.add_row(r.transform, str(r.k), fmt(r.similarity), fmt(r.distance), "cached" if r.cached else "")
    stdout.print(table)
    stdout.print(
        "[dim]similarity: mean cosine of whitened features (1 = invariant); distance: mean "
        "Mahalanobis distance (0 = invariant). Curves per parameter are in the result files "
        f"under {results[0].result_file.rsplit('/', 3)[0]}.[/]",
        highlight=False,
    )


def _render(results) -> str:
    """How the views were made: result keys name only device rendering."""
    return results[0].record["key"].get("render", "pil")
