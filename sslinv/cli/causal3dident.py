"""`sslinv causal3dident`: extrinsic invariance, read back from frozen features."""

from __future__ import annotations

from typing import Annotated

import typer

from sslinv.cli import options as o
from sslinv.cli.common import check_crop, emit, evaluation_command
from sslinv.cli.output import stdout

# Torch-free copies for --help and completion (tests check them against the loader).
LATENT_NAMES = (
    "pos_x", "pos_y", "pos_z", "rot_alpha", "rot_beta", "rot_gamma",
    "light", "obj_hue", "spot_hue", "bg_hue",
)
SOLVERS = ("auto", "cholesky", "eigh")


def complete_target(incomplete: str) -> list[str]:
    choices = ["all", "class", *(str(i) for i in range(len(LATENT_NAMES))), *LATENT_NAMES]
    return [c for c in choices if c.startswith(incomplete)]


def complete_solver(incomplete: str) -> list[str]:
    return [s for s in SOLVERS if s.startswith(incomplete)]


@evaluation_command(skip_bad=False)
def causal3dident(
    rt,
    json_: bool,
    target: Annotated[
        list[str],
        typer.Option(
            "--target", "-t",
            help="What to predict (repeatable): a latent column 0..9 or its name (0 pos_x, 1 pos_y, "
            "2 pos_z, 3 rot_alpha, 4 rot_beta, 5 rot_gamma, 6 light (spotlight position), 7 obj_hue, "
            "8 spot_hue, 9 bg_hue): kernel ridge, test R^2; 'class': logistic regression, test "
            "accuracy; 'all': every latent column, features extracted once.",
            autocompletion=complete_target, rich_help_panel=o.RUN,
        ),
    ],
    max_train: Annotated[
        str, typer.Option("--max-train", help="Training images used (seeded subset), or 'all'. Exact kernel "
                          "ridge costs O(n^3): on a CPU, 5000 takes minutes.", rich_help_panel=o.DATA)
    ] = "20480",
    max_test: Annotated[
        str, typer.Option("--max-test", help="Test images used (seeded subset), or 'all'.", rich_help_panel=o.DATA)
    ] = "40960",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the subsets and the CV folds.", rich_help_panel=o.DATA)] = 0,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.", rich_help_panel=o.RUN)] = 5,
    solver: Annotated[
        str, typer.Option("--solver", help="Kernel ridge solver: auto, cholesky (+ conjugate gradients when "
                          "well conditioned) or eigh (one eigendecomposition per gamma and fold). Same numbers.",
                          autocompletion=complete_solver, rich_help_panel=o.COMPUTE)
    ] = "auto",
    resize: Annotated[int, typer.Option("--resize", min=1, help="Shorter side after resizing.", rich_help_panel=o.DATA)] = 224,
    crop_size: Annotated[int, typer.Option("--crop-size", min=1, help="Centre crop size.", rich_help_panel=o.DATA)] = 224,
) -> None:
    """Measure how much of each Causal3DIdent latent variable a model's features keep.

    Frozen features of the training and test images (resize 224, centre crop 224) are standardised; an RBF kernel ridge regression, with alpha and gamma chosen by 5-fold cross-validation, predicts the chosen latent column; the test R^2 is reported (Ericsson et al. 2021, protocol section 4). Features are cached, so other targets and reruns cost no forward pass; finished results are cached too.

    Example: sslinv causal3dident --model default --target all --max-train 5000
    """
    from sslinv.errors import UsageError
    from sslinv.evaluate.causal3dident import Causal3DIdentConfig, parse_targets, run

    check_crop(resize, crop_size)
    if solver not in SOLVERS:
        raise UsageError(f"Unknown --solver {solver!r}. Use one of: {', '.join(SOLVERS)}.")
    parse_targets(target)  # a bad target fails before any data is read
    cfg = Causal3DIdentConfig(
        runtime=rt,
        targets=list(target),
        resize=resize,
        crop=crop_size,
        max_train=o.parse_count(max_train, "--max-train"),
        max_test=o.parse_count(max_test, "--max-test"),
        seed=seed,
        folds=folds,
        solver=solver,
    )
    emit("causal3dident", run, cfg, json_, lambda results: {
        "dataset": results[0].record.get("dataset"),
        "features": results[0].record.get("features"),
    }, render_table)


def render_table(model: str, results) -> None:
    from rich.table import Table

    first = results[0].record
    m = first["metrics"]
    title = f"{model} on Causal3DIdent ({m['num_train']} train / {m['num_test']} test images)"
    table = Table(title=title, title_justify="left")
    table.add_column("target")
    table.add_column("name")
    table.add_column("metric")
    table.add_column("test", justify="right")
    table.add_column("CV", justify="right")
    table.add_column("chosen", justify="left")
    table.add_column("", style="dim")
    for r in results:
        d = r.details
        if r.metric == "r2":
            cv, chosen = d.get("cv_r2"), f"alpha={d['alpha']:g} gamma={d['gamma']:g}"
        else:
            cv, chosen = d.get("cv_accuracy"), f"C={d['C']:g}"
        table.add_row(str(r.target), r.name, "R^2" if r.metric == "r2" else "accuracy",
                      f"{r.score:.4f}", "n/a" if cv is None else f"{cv:.4f}", chosen, "cached" if r.cached else "")
    stdout.print(table)
    stdout.print(
        "[dim]R^2 of an RBF kernel ridge regression on standardised features (1 = the latent "
        "is fully kept, ~0 = invariant to it); 'class': multinomial logistic regression accuracy. "
        f"Result files are under {results[0].result_file.rsplit('/', 2)[0]}.[/]",
        highlight=False,
    )
