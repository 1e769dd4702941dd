"""The root ``sslinv`` app. Subcommands live in one module each; none imports torch at
module level, so ``--help`` and shell completion answer at once."""

from __future__ import annotations

from typing import Annotated

import typer

from sslinv import __version__
from sslinv.cli.synthetic import synthetic
from sslinv.cli.realworld import realworld
from sslinv.cli.causal3dident import causal3dident
from sslinv.cli.downstream import downstream
from sslinv.cli.fetch_data import fetch_data
from sslinv.cli.pretrain import pretrain
from sslinv.cli.report import report
from sslinv.cli.demo import demo

app = typer.Typer(
    name="sslinv",
    help="What has a self-supervised image model become invariant to, and does that explain "
    "how it transfers? (Ericsson, Gouk & Hospedales, arXiv 2111.11398)",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("synthetic", no_args_is_help=True)(synthetic)
app.command("realworld", no_args_is_help=True)(realworld)
app.command("causal3dident", no_args_is_help=True)(causal3dident)
app.command("downstream", no_args_is_help=True)(downstream)
app.command("fetch-data", no_args_is_help=True)(fetch_data)
app.command("pretrain", no_args_is_help=True)(pretrain)
app.command("report")(report)
app.command("demo")(demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sslinv {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Measure invariances of self-supervised image models and relate them to transfer."""


def main() -> None:
    app(prog_name="sslinv")
