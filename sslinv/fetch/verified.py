"""Verified downloads: which checksum a file must match, and the one download function.

:func:`fetch_file` is what every download of sslinv goes through: the datasets of
``fetch-data`` (:mod:`sslinv.fetch.install`) and the model zoo (``sslinv.models.load``
calls it, then converts the checkpoint; this package never imports ``models``).

Checksums, strongest first (:func:`expected_checksums`): one given by the user
(``--sha256``, a manifest), none at all with ``--trust``, the published one (a record,
or a manifest entry), the sha256 recorded at the first download, else none. A download
with nothing to check against is trusted on first use: its sha256 is printed and
recorded in ``<cache>/fetch/sha256.json`` (:class:`RecordedHashes`), and every later
download of that file must match it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslinv.cache import lock, read_json, write_json
from sslinv.fetch import download as _download
from sslinv.fetch.download import essential, hash_file, mismatches, normalise_expected
from sslinv.fetch.manifest import mirror_url
from sslinv.paths import recorded_hashes_path
from sslinv.reporting import NullReporter, Reporter, human_size

__all__ = ["Fetched", "RecordedHashes", "expected_checksums", "fetch_file", "now", "record_first_use"]


def now() -> str:
    """The current UTC time, to the second (ISO 8601), for records and markers."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RecordedHashes:
    """sha256 of downloads that have no published checksum (trust on first use).

    One JSON file (``<cache>/fetch/sha256.json``), keyed ``dataset/<NAME>/<file>`` or
    ``model/<name>/<file>``; written atomically under a lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_cache(cls, cache: Path) -> RecordedHashes:
        return cls(recorded_hashes_path(cache))

    def _load(self) -> dict[str, Any]:
        try:
            data = read_json(self.path)
        except (OSError, ValueError):  # missing or unreadable: nothing recorded yet
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._load().get(key)

    def put(self, key: str, sha256: str, size: int, source: str) -> None:
        with lock(self.path):
            data = self._load()
            data[key] = {"sha256": sha256, "size": size, "source": source, "recorded": now()}
            write_json(self.path, data)

    def entries(self) -> dict[str, Any]:
        return self._load()

    def restore(self, before: dict[str, Any], keys: set[str]) -> None:
        """Put ``keys`` back as they were in ``before`` (absent if they were): the hashes
        recorded by an install that then failed are not trusted later."""
        with lock(self.path):
            data = self._load()
            for key in keys:
                if key in before:
                    data[key] = before[key]
                else:
                    data.pop(key, None)
            write_json(self.path, data)


def expected_checksums(
    recorded: RecordedHashes,
    key: str,
    *,
    given: Mapping[str, str] | None = None,
    given_label: str = "given",
    trust: bool = False,
    published: Mapping[str, str] | None = None,
    published_label: str = "published",
) -> tuple[dict[str, str], str]:
    """The digests a file must match, and where they come from (shown to the user)."""
    if given:
        return normalise_expected(given), given_label
    if trust:
        return {}, "trusted (--trust)"
    if published:
        return normalise_expected(published), f"{published_label} {'+'.join(published)}"
    rec = recorded.get(key)
    if rec:
        return {"sha256": rec["sha256"]}, f"sha256 recorded {str(rec.get('recorded', ''))[:10]}"
    return {}, "none published"


def record_first_use(
    recorded: RecordedHashes, key: str, sha256: str, size: int, source: str, reporter: Reporter, what: str
) -> None:
    """Record the sha256 of a file that had nothing to be checked against, and say so."""
    recorded.put(key, sha256, size, source)
    reporter.info(
        f"{what} has no published checksum; its sha256 is {sha256} ({human_size(size)}). Recorded in "
        f"{recorded.path}: later downloads must match it (override with --sha256 HEX or --trust)."
    )


@dataclass(frozen=True)
class Fetched:
    """A file on disk and how it was checked.

    ``downloaded`` is False when the file was already at its destination (used as it is;
    hashed only when there is a checksum to compare with); then ``mismatch`` lists ``(algo, expected, actual)`` where it differs from the
    expected digests, for the caller to decide (the zoo warns and uses it).
    """

    path: Path
    source: str
    size: int
    digests: dict[str, str] = field(repr=False)
    check: str
    downloaded: bool
    mismatch: tuple[tuple[str, str, str], ...] = ()


def fetch_file(
    urls: Sequence[str],
    dest: Path,
    *,
    key: str,
    cache: Path,
    what: str,
    given: Mapping[str, str] | None = None,
    given_label: str = "given",
    trust: bool = False,
    published: Mapping[str, str] | None = None,
    published_label: str = "published",
    mirror: str | None = None,
    reporter: Reporter | None = None,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> Fetched:
    """``dest``, downloaded from the first of ``urls`` that works unless already there.

    The download is resumable, retried and verified before it gets its name
    (:func:`sslinv.fetch.download.download`); ``mirror`` rewrites every URL's host. A
    file with nothing to check against has its sha256 recorded (``key`` in
    :class:`RecordedHashes`). ``what`` names the file in messages. Raises
    :class:`~sslinv.errors.ChecksumError` for a download that does not match and
    :class:`~sslinv.errors.FetchError` when no URL served it.
    """
    dest = Path(dest)
    reporter = reporter or NullReporter()
    recorded = RecordedHashes.in_cache(cache)
    want, check = expected_checksums(recorded, key, given=given, given_label=given_label, trust=trust,
                                     published=published, published_label=published_label)
    if dest.is_file():  # placed there by hand, or an earlier download: checked, not replaced
        want = essential(want)
        digests = hash_file(dest, ["sha256", *sorted(a for a in want if a != "sha256")], reporter,
                            f"verifying {dest.name}") if want else {}
        bad = tuple(mismatches(digests, want))
        return Fetched(dest, str(dest), dest.stat().st_size, digests, check, False, bad)

    sources = tuple(mirror_url(u, mirror) for u in urls) if mirror else tuple(urls)
    got = _download.download(sources, dest, expected=want, reporter=reporter, retries=retries, backoff=backoff,
                   timeout=timeout, description=what)
    if not want:
        record_first_use(recorded, key, got.digests["sha256"], got.size, got.url, reporter, what)
        check = check if trust else "sha256 recorded now"
    return Fetched(got.path, got.url, got.size, got.digests, check, True)
