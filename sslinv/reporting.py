"""The one progress protocol between a command's ``run(cfg, reporter)`` and the CLI.

Every command reports through a :class:`Reporter`: progress bars (:meth:`Reporter.bar`,
counted in items, steps, files or bytes, with an optional status text such as a
training loss), one-line messages (:meth:`Reporter.info`) and warnings
(:meth:`Reporter.warn`). The CLI passes the rich implementation
(``sslinv.cli.output.RichReporter``, rank 0 only). This default draws nothing and
forwards warnings to :mod:`warnings`, so ``run`` can be called from Python without a
console; :class:`NullReporter` keeps the messages instead, for callers and tests that
read them.

Who uses what: the evaluations draw item bars (``task``, ``lazy_task``); ``pretrain``
draws one step bar per epoch whose status shows loss, accuracy, learning rate,
throughput and ETA, and says each finished epoch in one line; ``fetch-data`` draws byte
bars per downloaded, hashed or unpacked file and file bars per copied folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Protocol


class Bar(Protocol):
    """One progress bar, as :meth:`Reporter.bar` returns it."""

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done."""

    def update(self, *, completed: int | None = None, total: int | None = None, status: str | None = None) -> None:
        """Set the units done, the total (``None`` keeps it) or the status text."""

    def close(self, keep: bool = True) -> None:
        """Finished: the bar stays on screen with its final count, or goes (``keep=False``)."""


class _NullBar:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, *, completed: int | None = None, total: int | None = None, status: str | None = None) -> None:
        pass

    def close(self, keep: bool = True) -> None:
        pass


class Reporter:
    """Progress callbacks the CLI plugs in (rank 0 only); the defaults draw nothing."""

    def bar(self, description: str, total: int | None, unit: str = "items", completed: int = 0) -> Bar:
        """A new bar of ``total`` units (``None``: unknown yet); ``unit`` is ``"items"``,
        ``"steps"``, ``"files"`` or ``"bytes"`` (shown as sizes with a transfer speed)."""
        return _NullBar()

    def task(self, description: str, total: int) -> Callable[[int], None]:
        """A bar of ``total`` items, as the function that advances it."""
        return self.bar(description, total).advance

    def warn(self, message: str) -> None:
        warnings.warn(message, stacklevel=2)

    def info(self, message: str) -> None:
        pass


class NullReporter(Reporter):
    """Draws nothing; keeps infos and warnings so callers (and tests) can read them."""

    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def info(self, message: str) -> None:
        self.infos.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


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


# ------------------------------------------------------------------------------ formats


def human_size(n: int | None) -> str:
    """``170498071`` -> ``'170.5 MB'`` (decimal units, as download tools show them)."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # unreachable


def human_duration(seconds: float | None) -> str:
    """``3725`` -> ``'1h02m'``, ``125`` -> ``'2m05s'``, ``None`` -> ``'-'``."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
