"""Console output shared by the commands: errors, progress, JSON.

Human-facing output (progress, warnings, errors) goes to stderr; tables and ``--json``
go to stdout, so ``sslinv ... --json | jq`` works. Only rank 0 prints.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console

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
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
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
                if kwargs.get(verbose_param):
                    stderr.print_exception(show_locals=False)
                error(str(exc))
                raise typer.Exit(exc.exit_code) from None
            except KeyboardInterrupt:
                error("interrupted; finished results are kept, nothing half-written was left.")
                raise typer.Exit(130) from None

        return wrapper  # type: ignore[return-value]

    return deco


class RichReporter:
    """Progress bars on stderr for ``run(cfg, reporter)`` (silent on ranks other than 0).

    The bars start with the first task, so a command that fails early prints nothing
    but its error line.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = None

    def _start(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
        )
        self.progress.start()
        return self.progress

    def task(self, description: str, total: int) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        progress = self.progress or self._start()
        task_id = progress.add_task(description, total=total)
        return lambda n: progress.advance(task_id, n)

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


@contextlib.contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[RichReporter]:
    reporter = RichReporter(enabled and is_main_rank())
    try:
        yield reporter
    finally:
        reporter.close()
