"""One small generic registry: duplicates are errors, did-you-mean, case folding, aliases.

The key is what the user types (``--model ventral``), the folder name in the cache and
the key in result files (one name per thing). :meth:`Registry.get` takes the key as it
is; :meth:`Registry.lookup` also accepts other spellings of it (case, ``-`` and ``_``
ignored: ``cifar-10``, ``CIFAR10``) and registered aliases (old names, the reference's
folder names), and always returns the entry under its one key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from sslinv.errors import UnknownNameError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    """A ' Did you mean ...?' suffix for the closest choices, or ''."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def fold(name: str) -> str:
    """The spelling-insensitive form of a name: case folded, ``-``, ``_`` and spaces dropped."""
    return "".join(c for c in name.strip().casefold() if c not in "-_ ")


class Registry(Generic[T]):
    """Maps names to entries; ``kind`` is used in error messages ("model", "transform"),
    ``hint`` (e.g. where to see the names) is appended to them."""

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T] = {}
        self._folded: dict[str, str] = {}  # fold(name or alias) -> key

    def register(self, name: str, entry: T, aliases: Iterable[str] = ()) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._claim(name, name)
        self._entries[name] = entry
        for alias in aliases:
            self.alias(alias, name)
        return entry

    def alias(self, alias: str, name: str) -> None:
        """Accept ``alias`` (in any spelling) for ``name`` in :meth:`lookup`."""
        if name not in self._entries:
            raise ValueError(f"alias {alias!r} of unknown {self.kind} {name!r}")
        self._claim(alias, name)

    def _claim(self, spelling: str, name: str) -> None:
        key = fold(spelling)
        owner = self._folded.setdefault(key, name)
        if owner != name:
            raise ValueError(f"{self.kind} {spelling!r} of {name!r} is already taken by {owner!r}")

    def _unknown(self, name: str) -> UnknownNameError:
        names = self.names()
        hint = f" {self.hint}" if self.hint else ""
        return UnknownNameError(
            f"Unknown {self.kind} {name!r}.{did_you_mean(name, names)} Known: {', '.join(names)}.{hint}"
        )

    def get(self, name: str) -> T:
        """The entry registered as exactly ``name``; UnknownNameError with a did-you-mean."""
        try:
            return self._entries[name]
        except KeyError:
            raise self._unknown(name) from None

    def key(self, name: str) -> str:
        """The registered name for ``name`` in any accepted spelling, or an alias."""
        if name in self._entries:
            return name
        key = self._folded.get(fold(name))
        if key is None:
            raise self._unknown(name)
        return key

    def lookup(self, name: str) -> T:
        """The entry for ``name`` in any accepted spelling, or an alias (see :meth:`key`)."""
        return self._entries[self.key(name)]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())
