"""The root ``sslinv`` app. Subcommands live in one module each; none imports torch at
module level, so ``--help`` and shell completion answer at once."""

from __future__ import annotations

import os
import sys
import warnings

# Before torch is imported (OpenMP reads it once): the model's CPU threads sleep when
# idle instead of spinning, so the DataLoader workers that decode and render get the
# cores. On 2 CPU cores a synthetic run is about 6% faster; a bare forward pass 2%
# slower (benchmarks/synthetic_e2e.py, docs/gpu.md). A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.23 carries its own copy of click (Abort and Exit are typer's own)
    from typer._click import exceptions as click_errors
    from typer.exceptions import Abort
except ImportError:  # pragma: no cover - older typer on click
    from click import exceptions as click_errors
    from click.exceptions import Abort

from sslinv import __version__
from sslinv.cli.causal3dident import causal3dident
from sslinv.cli.demo import demo
from sslinv.cli.downstream import downstream
from sslinv.cli.fetch_data import fetch_data
from sslinv.cli.pretrain import pretrain
from sslinv.cli.realworld import realworld
from sslinv.cli.report import report
from sslinv.cli.synthetic import synthetic


class SslinvGroup(TyperGroup):
    """The root group: option errors (``--k 0``, an unknown option) become one line on
    stderr in sslinv's error style with exit 2, as sslinv's own errors do, instead of
    click's framed box; Python warnings raised while a command runs print as one
    ``warning:`` line each (only their text is replaced, so code that records warnings,
    e.g. ``pytest.warns``, still sees them)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        from sslinv.cli.output import error

        def one_line(message, category, filename, lineno, line=None) -> str:
            return f"warning: {' '.join(str(message).split())}\n"

        previous = warnings.formatwarning
        warnings.formatwarning = one_line
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except click_errors.ClickException as e:
            if not standalone_mode:
                raise
            message = " ".join(e.format_message().split())
            if not message.endswith("."):
                message += "."
            ctx = getattr(e, "ctx", None)
            if isinstance(e, click_errors.UsageError) and ctx is not None:
                message += f" See: {ctx.command_path} --help"
            error(message)
            sys.exit(e.exit_code)
        except Abort:
            if not standalone_mode:
                raise
            error("aborted.")
            sys.exit(1)
        finally:
            warnings.formatwarning = previous
        if not standalone_mode:
            return rv
        # Non-standalone click returns an Exit's code (typer.Exit(3), --help's 0) as the value.
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=SslinvGroup,
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


def keep_freed_memory(env: dict[str, str] | None = None) -> bool:
    """Make glibc's malloc serve blocks up to 32 MiB from its heap and keep freed memory
    for reuse (``mallopt``: ``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``); True if done.

    A forward pass on the CPU frees and allocates its activations again at every batch.
    By default each large block is a fresh ``mmap`` whose pages fault in again: a
    ResNet-18 forward at 112 px spends 15% of its CPU time in the kernel, and runs 15%
    faster with the blocks reused (benchmarks/synthetic_e2e.py). The price is a resident
    size that stays at its peak. Left alone where the user tunes malloc (``MALLOC_*``,
    ``GLIBC_TUNABLES``) or outside glibc.
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in env or any(k.startswith("MALLOC_") for k in env):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False


def main() -> None:
    keep_freed_memory()
    try:
        app(prog_name="sslinv")
    except SystemExit as e:
        _exit(e.code)
    _exit(0)


def _exit(code: object) -> None:
    """Leave with ``code`` (``SystemExit``'s meaning) without the interpreter's teardown
    once torch is loaded: unloading it takes about 0.4 s of every command, which batch
    scripts pay many times. Threads are stopped and joined, exit handlers run and the
    streams are flushed first, as a normal exit would."""
    if "torch" not in sys.modules:
        raise SystemExit(code)
    import atexit
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    # What the interpreter does first at exit: stop thread pools left open (a loader's,
    # after an error) and join the other non-daemon threads.
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(status)
