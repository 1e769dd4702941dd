"""How downloads and extraction report progress, without depending on a console.

``run(cfg, reporter)`` receives any object with these methods; the CLI passes rich
progress bars (bytes, speed, ETA), tests pass :class:`NullReporter` or a recorder.
"""

from __future__ import annotations

from typing import Protocol


class Bar(Protocol):
    def advance(self, n: int) -> None: ...

    def reset(self, completed: int, total: int | None) -> None: ...

    def close(self) -> None: ...


class Reporter(Protocol):
    def bar(self, description: str, total: int | None, unit: str = "bytes", completed: int = 0) -> Bar: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


class _NullBar:
    def advance(self, n: int) -> None:
        pass

    def reset(self, completed: int, total: int | None) -> None:
        pass

    def close(self) -> None:
        pass


class NullReporter:
    """Reports nothing; collects warnings and infos so callers (and tests) can read them."""

    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def bar(self, description: str, total: int | None, unit: str = "bytes", completed: int = 0) -> Bar:
        return _NullBar()

    def info(self, message: str) -> None:
        self.infos.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


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
