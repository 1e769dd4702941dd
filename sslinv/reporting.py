"""The progress protocol between a command's ``run(cfg, reporter)`` and the CLI.

``run`` functions report through these three callbacks; the CLI passes a rich
implementation (``sslinv.cli.output.RichReporter``, rank 0 only). This default does
nothing but forward warnings, so ``run`` can be called from Python without a console.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable


class Reporter:
    """Progress callbacks the CLI plugs in (rank 0 only); the defaults do nothing."""

    def task(self, description: str, total: int) -> Callable[[int], None]:
        return lambda n: None

    def warn(self, message: str) -> None:
        warnings.warn(message, stacklevel=2)

    def info(self, message: str) -> None:
        pass


def lazy_task(reporter: Reporter, description: str, total: int) -> Callable[[int], None]:
    """A progress callback whose bar appears on its first call, so work found in the
    cache shows no empty bar. Call it with 0 to show the bar when the work starts."""
    advance: Callable[[int], None] | None = None

    def step(n: int) -> None:
        nonlocal advance
        if advance is None:
            advance = reporter.task(description, total)
        advance(n)

    return step
