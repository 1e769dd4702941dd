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
