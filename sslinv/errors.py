"""Errors a user can act on.

Every message names the fix. The CLI turns an ``SslinvError`` into one line on stderr
and the exit code of its class, with no traceback unless ``--verbose``.
"""

from __future__ import annotations


class SslinvError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class UsageError(SslinvError):
    """A bad option value or combination."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name that is not in a registry (model, transform, dataset...)."""


class DataNotFoundError(SslinvError):
    """A dataset or image folder that is missing or empty."""

    exit_code = 3


class BadImageError(SslinvError):
    """An image file that cannot be decoded."""

    exit_code = 3


class CheckpointError(SslinvError):
    """A checkpoint that is missing or has a layout sslinv does not know."""

    exit_code = 4


class DeviceError(SslinvError):
    """A device that was asked for but is not available."""

    exit_code = 5


class NotWritableError(SslinvError):
    """A cache or output folder that cannot be written (checked before any work starts)."""

    exit_code = 1
