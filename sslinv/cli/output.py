"""Console output shared by the commands: errors, progress, JSON.

Human-facing output (progress, warnings, errors) goes to stderr; tables and ``--json``
go to stdout, so ``sslinv ... --json | jq`` works. Only rank 0 prints, except an error
that only some ranks raised: each of those prints it, its rank prefixed.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console

from sslinv.reporting import Bar, Reporter

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True)


def is_main_rank() -> bool:
    from sslinv.distributed import world_from_env

    return world_from_env().is_main


def error(message: str) -> None:
    from rich.markup import escape

    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    from rich.markup import escape

    if is_main_rank():
        stderr.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_json(payload: Any) -> None:
    if is_main_rank():
        from sslinv.cache import dumps

        sys.stdout.write(dumps(payload, indent=2) + "\n")
        sys.stdout.flush()


def handle_errors(verbose_param: str = "verbose") -> Callable[[F], F]:
    """Turn SslinvError into one line on stderr and its exit code (traceback with --verbose)."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from sslinv.errors import SslinvError

            try:
                return fn(*args, **kwargs)
            except SslinvError as exc:
                _report(exc, bool(kwargs.get(verbose_param)))
                raise typer.Exit(exc.exit_code) from None
            except KeyboardInterrupt:
                error("interrupted; finished results are kept, nothing half-written was left.")
                raise typer.Exit(130) from None

        return wrapper  # type: ignore[return-value]

    return deco


def _report(exc: Exception, verbose: bool) -> None:
    """The error line (and with ``verbose`` the traceback) of ``exc`` on this rank.

    Under torchrun an error that every rank raised together (``exc.rank`` set by
    ``sslinv.distributed.run_then_gather``) is printed once, by rank 0, as with one
    process; its traceback by the rank where it happened. Any other error is printed by
    each rank that raised it, its rank prefixed: only that rank may know it.
    """
    from sslinv.distributed import world_from_env
    from sslinv.errors import from_worker

    world = world_from_env()
    message = str(from_worker(exc))  # one line, also for errors of loader workers
    if not world.is_distributed:
        if verbose:
            stderr.print_exception(show_locals=False)
        error(message)
        return
    shared = getattr(exc, "rank", None) is not None
    if verbose and (not shared or exc.rank == world.rank):
        stderr.print_exception(show_locals=False)
    if not shared:
        error(f"rank {world.rank}: {message}")
    elif world.is_main:
        error(message)


class RichReporter(Reporter):
    """The rich implementation of ``sslinv.reporting.Reporter`` for every command:
    progress bars on stderr (silent on ranks other than 0).

    One layout for all bars: description, bar, count (sizes for bytes), transfer speed
    for bytes or elapsed time otherwise, time remaining, and the bar's status text (a
    training loss, say). The bars start with the first one, so a command that fails early
    prints nothing but its error line.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = None

    def _start(self):
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        def by_unit(for_bytes: ProgressColumn, otherwise: ProgressColumn) -> ProgressColumn:
            class Column(ProgressColumn):
                def render(self, task):
                    return (for_bytes if task.fields.get("unit") == "bytes" else otherwise).render(task)

            return Column()

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            by_unit(DownloadColumn(), MofNCompleteColumn()),
            by_unit(TransferSpeedColumn(), TimeElapsedColumn()),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=stderr,
        )
        self.progress.start()
        return self.progress

    def bar(self, description: str, total: int | None, unit: str = "items", completed: int = 0) -> Bar:
        if not self.enabled:
            return super().bar(description, total, unit, completed)
        return _RichBar(self.progress or self._start(), description, total, unit, completed)

    def warn(self, message: str) -> None:
        warn(message)

    def info(self, message: str) -> None:
        from rich.markup import escape

        if self.enabled:
            stderr.print(escape(message), highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class _RichBar:
    def __init__(self, progress, description: str, total: int | None, unit: str, completed: int) -> None:
        self.progress = progress
        self.id = progress.add_task(description, total=total, completed=completed, unit=unit, status="")

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.id, n)

    def update(self, *, completed: int | None = None, total: int | None = None, status: str | None = None) -> None:
        fields = {} if status is None else {"status": status}
        self.progress.update(self.id, completed=completed, total=total, **fields)

    def close(self, keep: bool = True) -> None:
        if not keep:
            self.progress.remove_task(self.id)
            return
        task = next(t for t in self.progress.tasks if t.id == self.id)
        if task.total is None:
            self.progress.update(self.id, total=task.completed)
        self.progress.stop_task(self.id)


@contextlib.contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[RichReporter]:
    reporter = RichReporter(enabled and is_main_rank())
    try:
        yield reporter
    finally:
        reporter.close()
