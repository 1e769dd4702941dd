"""Errors a user can act on: one hierarchy and one exit-code table.

Every message names the fix. The CLI turns an ``SslinvError`` into one line on stderr
and the exit code of its class, with no traceback unless ``--verbose``. Batch scripts
can tell the causes apart by the code (:data:`EXIT_CODES`, also in the README)::

    SslinvError 1
    ├── UsageError 2
    │   └── UnknownNameError 2
    ├── DataNotFoundError 3
    │   └── ManualDownloadError 3
    ├── BadImageError 3
    ├── BadResultError 3
    ├── CheckpointError 4
    ├── DeviceError 5
    ├── NonFiniteError 1
    ├── FetchError 6
    │   ├── ChecksumError 7
    │   └── UnsafeArchiveError 8
    └── NotWritableError 1
"""

from __future__ import annotations

#: Every exit code of the ``sslinv`` command and what it means (the README's table).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "other sslinv error, e.g. a cache folder that cannot be written (checked before any work starts), or non-finite features",
    2: "bad usage: an unknown name (model, transform, dataset) or a bad option value",
    3: "missing, damaged or unreadable data (an image, a truncated latents file), or (`report --strict`) an unusable result file",
    4: "checkpoint missing (also a path that does not exist), unloadable, of an unknown layout or with NaN/Inf weights",
    5: "device not available",
    6: "download or archive failure",
    7: "checksum mismatch (nothing was kept)",
    8: "unsafe archive: a member would land outside its folder (nothing was kept)",
    130: "interrupted (Ctrl-C)",
}


class SslinvError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` is what the CLI returns."""

    exit_code = 1
    #: Under torchrun: the rank where it was raised, once every rank raises it
    #: (``sslinv.distributed.run_then_gather``); the CLI then prints it on rank 0 only.
    rank: int | None = None


def from_worker(exc: SslinvError) -> SslinvError:
    """The original error of a DataLoader worker, as it was raised there.

    PyTorch re-raises an error of a worker process in the main process as the same class
    with its whole worker traceback as the message ("Caught BadImageError in DataLoader
    worker process 0. Original Traceback ..."). That traceback ends with the original
    ``module.Class: message``: the message is taken from there. Any other error is
    returned as it is.
    """
    text = str(exc)
    if not (text.startswith("Caught ") and " in DataLoader worker process" in text.split("\n", 1)[0]):
        return exc
    cls = type(exc)
    tail = f"{cls.__module__}.{cls.__qualname__}: "
    at = text.rfind("\n" + tail)
    if at < 0:
        return exc
    original = cls(text[at + 1 + len(tail):].strip())
    original.__cause__ = exc
    return original


class UsageError(SslinvError):
    """A bad option value or combination."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name that is not in a registry (model, transform, dataset...)."""


class DataNotFoundError(SslinvError):
    """A dataset or image folder that is missing or empty."""

    exit_code = 3


class ManualDownloadError(DataNotFoundError):
    """A dataset that sslinv cannot download by itself; the message says what to do."""


class BadImageError(SslinvError):
    """An image file that cannot be decoded."""

    exit_code = 3


class BadResultError(SslinvError):
    """A result file that cannot be used (truncated, not a result, no numbers)."""

    exit_code = 3


class CheckpointError(SslinvError):
    """A checkpoint that is missing or has a layout sslinv does not know."""

    exit_code = 4


class DeviceError(SslinvError):
    """A device that was asked for but is not available."""

    exit_code = 5


class NonFiniteError(SslinvError):
    """Features that hold NaN or Inf although the weights are finite. Nothing was cached."""

    exit_code = 1


class FetchError(SslinvError):
    """A download or an archive that failed (network, server, format)."""

    exit_code = 6


class ChecksumError(FetchError):
    """A file whose hash is not the published (or recorded) one. Nothing was kept."""

    exit_code = 7


class UnsafeArchiveError(FetchError):
    """An archive member that would land outside the target folder. Nothing was kept."""

    exit_code = 8


class NotWritableError(SslinvError):
    """A cache or output folder that cannot be written (checked before any work starts)."""

    exit_code = 1
