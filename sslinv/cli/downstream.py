"""`sslinv downstream`: transfer by linear (or k-NN) probes on frozen features."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from sslinv.cli import options as o
from sslinv.cli.common import check_crop, emit, evaluation_command
from sslinv.cli.output import stdout

PROBE = "Probe"


class Probe(str, Enum):
    linear = "linear"
    knn = "knn"


def complete_dataset(incomplete: str) -> list[str]:
    from sslinv.data.downstream import dataset_names

    return [n for n in ("all", *dataset_names()) if n.startswith(incomplete.lower())]


@evaluation_command(skip_bad=False)
def downstream(
    rt,
    json_: bool,
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset", "-d",
            help="cifar10, caltech101, flowers, 300w, celeba or leeds_sports_pose (repeatable), "
            "or 'all' for every one present under the data root. Built in (no download, used by "
            "sslinv demo): demo-classes, demo-landmarks.",
            autocompletion=complete_dataset, rich_help_panel=o.RUN,
        ),
    ],
    probe: Annotated[
        Probe,
        typer.Option("--probe", help="linear: logistic / ridge regression with the weight decay chosen by "
                     "cross-validation (the paper's protocol); knn: weighted 20-NN on cosine similarity "
                     "(DINO's; classification only).", rich_help_panel=PROBE),
    ] = Probe.linear,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds on trainval.",
                                       rich_help_panel=PROBE)] = 5,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the cross-validation folds.", rich_help_panel=PROBE)] = 0,
    wd_shift: Annotated[
        Optional[int],
        typer.Option("--wd-shift", help="Shift c of the weight-decay grid 10^(-6+2c) .. 10^(5+2c) "
                     "[default: number of fused models - 1; the paper used 2 for its 3x-wide model].",
                     show_default=False, rich_help_panel=PROBE),
    ] = None,
    max_iter: Annotated[int, typer.Option("--max-iter", min=1, help="L-BFGS iterations per weight decay "
                                          "(logistic regression; scikit-learn's default, as the paper).",
                                          rich_help_panel=PROBE)] = 100,
    knn_k: Annotated[int, typer.Option("--knn-k", min=1, help="Neighbours of the k-NN probe.", rich_help_panel=PROBE)] = 20,
    knn_temperature: Annotated[float, typer.Option("--knn-temperature", min=1e-6, help="Temperature of the "
                                                   "k-NN vote weights exp(cos / T).", rich_help_panel=PROBE)] = 0.07,
    split_seed: Annotated[int, typer.Option("--split-seed", help="Seed of the splits the protocol derives "
                                            "(Caltech101 30 per class, 300W 30/30/40, LSP 60/40; 0 reproduces "
                                            "the reference's files).", rich_help_panel=o.DATA)] = 0,
    split_dir: Annotated[
        Optional[Path],
        typer.Option("--split-dir", help="Folder with Caltech101 train.txt / test.txt split files \\[default: "
                     "<data-root>/Caltech101 when it holds them (fetch-data installs the reference's), else "
                     "a seeded 30-per-class draw, with a warning].", show_default=False, rich_help_panel=o.DATA),
    ] = None,
    resize: Annotated[int, typer.Option("--resize", min=1, help="Shorter side after resizing.", rich_help_panel=o.DATA)] = 224,
    crop_size: Annotated[int, typer.Option("--crop-size", min=1, help="Centre crop size.", rich_help_panel=o.DATA)] = 224,
) -> None:
    """Measure how well a model's frozen features transfer: linear probes on six datasets.

    Classification (cifar10, caltech101, flowers): multinomial logistic regression; landmark regression (300w, celeba, leeds_sports_pose): ridge regression, R^2. The weight decay is chosen among 45 values by 5-fold cross-validation on trainval, then the probe is refit on trainval and scored on test (Ericsson et al. 2021, protocol section 5). Features are extracted once per model, layer and dataset split and cached; fused models (a+b+c) reuse their members' features, and a rerun with identical inputs prints the finished result at once.

    Example: sslinv downstream --model default+ventral+dorsal --dataset all
    """
    from sslinv.errors import UsageError
    from sslinv.evaluate.downstream import DownstreamConfig, run

    check_crop(resize, crop_size)
    if split_dir is not None and not split_dir.is_dir():
        raise UsageError(f"--split-dir {split_dir} is not a folder (it should hold train.txt and test.txt).")
    cfg = DownstreamConfig(
        runtime=rt,
        datasets=list(dataset),
        probe=probe.value,
        resize=resize,
        crop=crop_size,
        folds=folds,
        seed=seed,
        split_seed=split_seed,
        split_dir=split_dir,
        wd_shift=wd_shift,
        max_iter=max_iter,
        knn_k=knn_k,
        knn_temperature=knn_temperature,
    )
    emit("downstream", run, cfg, json_, lambda results: {"probe": probe.value}, render_table)


METRIC_NAMES = {"accuracy": "accuracy", "mean_per_class_accuracy": "mean per-class acc.", "r2": "R^2"}


def render_table(model: str, results) -> None:
    from rich.table import Table

    table = Table(title=f"{model}: {results[0].probe} probe", title_justify="left")
    table.add_column("dataset")
    table.add_column("metric")
    table.add_column("test score", justify="right")
    table.add_column("weight decay", justify="right")
    table.add_column("trainval / test", justify="right")
    table.add_column("", style="dim")
    for r in results:
        score = f"{100 * r.score:.2f}" if r.metric != "r2" else f"{r.score:.4f}"
        wd = "" if r.wd is None else f"{r.wd:.3g}"
        table.add_row(r.dataset, METRIC_NAMES.get(r.metric, r.metric), score, wd,
                      f"{r.n_trainval} / {r.n_test}", "cached" if r.cached else "")
    stdout.print(table)
    stdout.print(
        "[dim]Accuracies in %, R^2 as a fraction. The CV curve over the 45 weight decays is in "
        f"each result file under {results[0].result_file.rsplit('/', 3)[0]}.[/]",
        highlight=False,
    )
