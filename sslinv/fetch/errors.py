"""Errors of ``sslinv fetch-data``: each names the file, the cause and the fix.

Exit codes continue those of :mod:`sslinv.errors` (1 generic, 2 usage, 3 data not
found, 4 checkpoint, 5 device), so batch scripts can tell a network failure from a
tampered file from an unsafe archive.
"""

from __future__ import annotations

from sslinv.errors import DataNotFoundError, SslinvError


class FetchError(SslinvError):
    """A download or an archive that failed (network, server, format)."""

    exit_code = 6


class ChecksumError(FetchError):
    """A file whose hash is not the published (or recorded) one. Nothing was kept."""

    exit_code = 7


class UnsafeArchiveError(FetchError):
    """An archive member that would land outside the target folder. Nothing was kept."""

    exit_code = 8


class ManualDownloadError(DataNotFoundError):
    """A dataset that sslinv cannot download by itself; the message says what to do."""
