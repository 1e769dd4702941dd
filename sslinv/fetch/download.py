"""HTTP downloads: streamed, resumable, retried, and verified before they get their name.

One call, :func:`download`, turns a list of URLs (the official one first, then mirrors)
into a verified file at ``dest``:

- **Streamed** to ``.<name>.part`` beside ``dest`` in 1 MiB chunks, hashed on the fly
  (sha256 always, plus md5/sha1 when a published checksum uses them), with a progress
  bar (bytes, speed, ETA).
- **Resumable**: a ``.part`` left by an interrupted run (Ctrl-C, a dropped connection, a
  killed job) is continued with an HTTP ``Range`` request; a server that ignores the
  range (``200`` instead of ``206``) or answers for another offset restarts the file.
- **Retried with exponential backoff** on transient errors (timeouts, resets,
  connections closed midway, HTTP 408/425/429/5xx, honouring ``Retry-After``). A
  failure that followed progress does not use up a retry: a flaky server that drops the
  connection every few hundred MB still finishes. Permanent errors (404, 403, an HTML
  page where a file was expected) move on to the next URL at once.
- **Verified before the rename**: the hashes are compared with the expected ones (full
  hex digests or published prefixes); a mismatch deletes the ``.part`` and raises
  :class:`ChecksumError` naming both hashes, so nothing is ever left under ``dest``
  that failed its check. A mismatch after a resumed download is retried once from zero
  (the old part may have come from a different file).
- **Google Drive**: the "can't scan this file for viruses" confirmation page of large
  files is recognised by its content (the ``download-form`` form of the current page,
  or the ``confirm=`` token and ``download_warning`` cookie of the older one) and
  followed; the quota-exceeded and sign-in pages become clear errors.

A file lock (``dest.lock``) makes a second process wait for the first instead of
writing the same ``.part``. Only the standard library is used (urllib), so proxies
configured through ``https_proxy`` etc. work as for any Python tool.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path

from sslinv import __version__
from sslinv.errors import ChecksumError, FetchError
from sslinv.reporting import NullReporter, Reporter, human_size

__all__ = [
    "ALGORITHMS",
    "Downloaded",
    "download",
    "drive_confirm_url",
    "essential",
    "hash_file",
    "mismatches",
    "normalise_expected",
    "part_path",
]

CHUNK = 1 << 20
ALGORITHMS = ("sha256", "md5", "sha1")
HEX_LENGTH = {"sha256": 64, "md5": 32, "sha1": 40}
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF = 60.0
MAX_HTML = 2 << 20
USER_AGENT = f"sslinv/{__version__} (dataset fetcher; Python urllib)"

# What Google Drive says when it will not serve a file (matched case-insensitively).
_DRIVE_QUOTA = ("too many users have viewed or downloaded this file", "download quota")
_DRIVE_SIGNIN = ("accounts.google.com/servicelogin", "you need access", "sign in to continue")


# --------------------------------------------------------------------------- checksums


def normalise_expected(expected: Mapping[str, str | None]) -> dict[str, str]:
    """Lower-cased expected digests; a value shorter than the full length is a prefix."""
    out = {}
    for algo, value in expected.items():
        if not value:
            continue
        if algo not in HEX_LENGTH:
            raise ValueError(f"unknown hash algorithm {algo!r}; known: {', '.join(ALGORITHMS)}")
        value = value.strip().lower()
        if not re.fullmatch(r"[0-9a-f]+", value) or not 6 <= len(value) <= HEX_LENGTH[algo]:
            raise ValueError(f"{algo} {value!r} is not a hex digest (or a prefix of 6+ digits)")
        out[algo] = value
    return out


def mismatches(digests: Mapping[str, str], expected: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``(algo, expected, actual)`` for every expected digest that ``digests`` does not match."""
    return [
        (algo, want, digests[algo])
        for algo, want in expected.items()
        if not digests[algo].startswith(want)
    ]


class _MultiHash:
    def __init__(self, algos: Sequence[str]) -> None:
        self.hashes = {a: hashlib.new(a) for a in algos}
        self.count = 0

    def update(self, data: bytes) -> None:
        for h in self.hashes.values():
            h.update(data)
        self.count += len(data)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self.hashes.items()}


def hash_file(
    path: Path, algos: Sequence[str] = ("sha256",), reporter: Reporter | None = None, description: str = ""
) -> dict[str, str]:
    """Hex digests of a file, read once for all ``algos`` (with a progress bar)."""
    path = Path(path)
    total = path.stat().st_size
    bar = (reporter or NullReporter()).bar(description or f"hashing {path.name}", total, "bytes")
    hasher = _MultiHash(algos)
    try:
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                hasher.update(block)
                bar.advance(len(block))
    finally:
        bar.close()
    return hasher.hexdigests()


def essential(expected: Mapping[str, str]) -> dict[str, str]:
    """The digests worth computing: a full sha256 makes a published md5/sha1 redundant
    (and md5 is the slowest of the three)."""
    if len(expected.get("sha256", "")) == HEX_LENGTH["sha256"]:
        return {"sha256": expected["sha256"]}
    return dict(expected)


def _algos_for(expected: Mapping[str, str]) -> list[str]:
    return ["sha256", *sorted(a for a in expected if a != "sha256")]


# ----------------------------------------------------------------------- Google Drive


class _PageParser(HTMLParser):
    """Collects forms (action + inputs), links and the title of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self.links: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"id": a.get("id", ""), "action": a.get("action", ""), "inputs": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _parse_page(html: str) -> _PageParser:
    parser = _PageParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - a broken page is still a page; use what was parsed
        pass
    return parser


def drive_confirm_url(html: str, base_url: str, cookies: Mapping[str, str] | None = None) -> str | None:
    """The URL that a Google Drive "can't scan for viruses" page would download, or None.

    Handles the current page (a ``<form id="download-form" action=...>`` with hidden
    ``id``/``export``/``confirm``/``uuid`` inputs, submitted with GET) and the older one
    (a link, or a ``download_warning`` cookie, carrying ``confirm=<token>``).
    """
    page = _parse_page(html)
    for form in page.forms:
        if form["id"] == "download-form" or "download" in form["action"]:
            if form["action"] and form["inputs"]:
                query = urllib.parse.urlencode(form["inputs"])
                action = urllib.parse.urljoin(base_url, form["action"])
                return f"{action}{'&' if '?' in action else '?'}{query}"
    for href in page.links:
        if "confirm=" in href and ("export=download" in href or "/uc" in href or "download" in href):
            return urllib.parse.urljoin(base_url, unescape(href))
    token = None
    for name, value in (cookies or {}).items():
        if name.startswith("download_warning"):
            token = value
    if token is None:
        m = re.search(r"confirm=([0-9A-Za-z_\-]+)", html)
        token = m.group(1) if m else None
    if token:
        parts = urllib.parse.urlsplit(base_url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query["confirm"] = token
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return None


def _describe_html(html: str, url: str) -> str:
    """Why an HTML page came back instead of the file, as advice."""
    low = html.lower()
    if any(s in low for s in _DRIVE_QUOTA):
        return (
            "Google Drive refuses the download: the file's download quota is exceeded. "
            "Try again in a day, or open the link in a browser, save the file and pass it "
            "with --from"
        )
    if any(s in low for s in _DRIVE_SIGNIN):
        return "the server asks for a sign-in; download the file in a browser and pass it with --from"
    title = " ".join(_parse_page(html).title.split())[:80]
    return (
        f"the server sent an HTML page{f' ({title!r})' if title else ''} instead of the file "
        "(the link may need a browser or a login); download it by hand and pass it with --from"
    )


# --------------------------------------------------------------------------- download


@dataclass(frozen=True)
class Downloaded:
    """A verified file: where it is, which URL served it, its size and digests."""

    path: Path
    url: str
    size: int
    digests: dict[str, str] = field(repr=False)
    resumed: bool = False


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _UrlFailed(Exception):
    """This URL cannot serve the file; try the next one."""


def part_path(dest: Path) -> Path:
    """Where the partial download of ``dest`` lives (a stable name, so it can be resumed)."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.part")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``'bytes 100-199/1000'`` -> ``(100, 1000)``; ``'bytes */1000'`` -> ``(None, 1000)``."""
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(float(value), MAX_BACKOFF) if value is not None else None
    except ValueError:
        return None


def download(
    urls: Sequence[str],
    dest: Path,
    *,
    expected: Mapping[str, str | None] | None = None,
    reporter: Reporter | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    description: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Downloaded:
    """Download the first of ``urls`` that works to ``dest``, verified against ``expected``.

    ``expected`` maps ``sha256``/``md5``/``sha1`` to a hex digest or a published prefix;
    an empty mapping verifies nothing but still returns the digests (the caller records
    the sha256). Raises :class:`ChecksumError` when a complete file does not match (after
    trying every URL), else :class:`FetchError` listing what each URL answered.
    """
    if not urls:
        raise FetchError(f"No URL to download {Path(dest).name} from.")
    dest = Path(dest)
    want = essential(normalise_expected(expected or {}))
    reporter = reporter or NullReporter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    from sslinv.cache import lock

    failures: list[str] = []
    checksum_error: ChecksumError | None = None
    with lock(dest):  # a second process waits here, then resumes or finds nothing to do
        for url in urls:
            try:
                return _download_url(
                    url, dest, want, reporter, retries, backoff, timeout, description or dest.name, sleep
                )
            except ChecksumError as e:
                checksum_error = e
                failures.append(f"{url}: checksum mismatch")
            except _UrlFailed as e:
                failures.append(f"{url}: {e}")
    if checksum_error is not None and len(urls) == 1:
        raise checksum_error
    if checksum_error is not None:
        raise ChecksumError(f"{checksum_error} Every URL failed: " + "; ".join(failures) + ".")
    error = FetchError(
        f"Could not download {dest.name}. " + "; ".join(failures) + ". Check the network "
        "connection and retry (a partial download is resumed), use --mirror or --manifest "
        "to point at a copy, or download the file yourself and pass it with --from."
    )
    error.failures = failures  # type: ignore[attr-defined]
    raise error


def _download_url(
    url: str,
    dest: Path,
    want: dict[str, str],
    reporter: Reporter,
    retries: int,
    backoff: float,
    timeout: float,
    description: str,
    sleep: Callable[[float], None],
) -> Downloaded:
    part = part_path(dest)
    resumed = part.exists() and part.stat().st_size > 0
    for fresh_start in (False, True):
        if fresh_start:
            if not resumed:
                break
            reporter.warn(f"{dest.name}: the resumed download does not match; downloading it again from the start.")
            part.unlink(missing_ok=True)
        digests, size = _fetch_to_part(url, part, _algos_for(want), reporter, retries, backoff, timeout, description, sleep)
        bad = mismatches(digests, want)
        if not bad:
            os.replace(part, dest)
            return Downloaded(dest, url, size, digests, resumed and not fresh_start)
        part.unlink(missing_ok=True)
        error = ChecksumError(
            f"{dest.name} from {url} failed its checksum: "
            + "; ".join(f"expected {algo} {exp}, got {got}" for algo, exp, got in bad)
            + ". The file was deleted; nothing was kept under its name. If the upstream file "
            "changed legitimately, rerun with --sha256 HEX (or --trust) to accept it."
        )
    raise error


def _fetch_to_part(
    url: str,
    part: Path,
    algos: list[str],
    reporter: Reporter,
    retries: int,
    backoff: float,
    timeout: float,
    description: str,
    sleep: Callable[[float], None],
) -> tuple[dict[str, str], int]:
    """Fill ``part`` with the whole body of ``url`` (resuming it); return digests and size."""
    job = _PartJob(part, algos, reporter, description, timeout)
    current, hops, failures = url, 0, 0
    try:
        while True:
            before = job.sync()
            try:
                follow = job.request(current)
            except _Transient as e:
                failures = 1 if job.hasher.count > before else failures + 1
                if failures > retries:
                    raise _UrlFailed(f"{e} (gave up after {retries} retries)") from None
                delay = e.retry_after if e.retry_after is not None else min(backoff * 2 ** (failures - 1), MAX_BACKOFF)
                done = part.stat().st_size if part.exists() else 0
                reporter.info(
                    f"{description}: {e}; retrying in {delay:.0f} s"
                    + (f" (resuming at {human_size(done)})" if done else "")
                )
                sleep(delay)
                continue
            if follow is None:
                return job.hasher.hexdigests(), job.hasher.count
            hops += 1  # a confirmation page pointed at the real download
            if hops > 3:
                raise _UrlFailed("too many confirmation pages")
            current = follow
    finally:
        job.close()


class _PartJob:
    """The state of one URL's download into ``part``: hashes so far, cookies, progress bar."""

    def __init__(self, part: Path, algos: list[str], reporter: Reporter, description: str, timeout: float) -> None:
        self.part = part
        self.algos = algos
        self.reporter = reporter
        self.description = description
        self.timeout = timeout
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.hasher = _MultiHash(algos)
        self.bar = None

    def sync(self) -> int:
        """Make the running hash cover exactly the bytes in ``part``; return that count."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        if self.hasher.count != offset:
            self.hasher = _MultiHash(self.algos)
            if offset:
                with open(self.part, "rb") as f:
                    while block := f.read(CHUNK):
                        self.hasher.update(block)
        return offset

    def restart(self) -> None:
        self.part.unlink(missing_ok=True)
        self.hasher = _MultiHash(self.algos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _show(self, completed: int, total: int | None) -> None:
        if self.bar is None:
            self.bar = self.reporter.bar(self.description, total, "bytes", completed)
        else:
            self.bar.update(completed=completed, total=total)

    def request(self, url: str) -> str | None:
        """One HTTP request appending to ``part``. Returns None when the file is complete,
        or the URL that a confirmation page points to. Raises _Transient / _UrlFailed."""
        offset = self.hasher.count
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = self.opener.open(urllib.request.Request(url, headers=headers), timeout=self.timeout)
        except urllib.error.HTTPError as e:
            with e:
                if e.code == 416 and offset:
                    _, total = _content_range(e.headers.get("Content-Range"))
                    if total == offset:
                        return None  # the part was already complete
                    self.restart()
                    raise _Transient("the server rejected the resume offset; restarting") from None
                if e.code in TRANSIENT_STATUS:
                    raise _Transient(f"HTTP {e.code} {e.reason}", _retry_after(e.headers)) from None
                raise _UrlFailed(f"HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            if urllib.parse.urlsplit(url).scheme == "file":  # a local mirror: retrying will not help
                reason = getattr(e.reason, "strerror", None) or e.reason
                raise _UrlFailed(f"cannot read the local file ({reason})") from None
            if isinstance(e.reason, socket.gaierror) and e.reason.errno != socket.EAI_AGAIN:
                raise _UrlFailed(f"unknown host ({e.reason})") from None  # retrying will not help
            if isinstance(e.reason, OSError):
                raise _Transient(f"connection failed ({e.reason})") from None
            raise _UrlFailed(f"cannot open the URL ({e.reason})") from None
        except ValueError as e:
            raise _UrlFailed(f"not a valid URL ({e})") from None
        except (OSError, http.client.HTTPException) as e:
            raise _Transient(f"connection failed ({type(e).__name__}: {e})") from None

        with response:
            return self._receive(url, response, offset)

    def _receive(self, url: str, response, offset: int) -> str | None:
        status = getattr(response, "status", None) or 200
        ctype = response.headers.get_content_type() if response.headers else ""
        if ctype == "text/html" and not urllib.parse.urlsplit(url).path.endswith((".html", ".htm")):
            try:
                html = response.read(MAX_HTML).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException) as e:
                raise _Transient(f"connection failed while reading a page ({e})") from None
            follow = drive_confirm_url(html, response.geturl(), {c.name: c.value for c in self.cookies})
            if follow and follow != url:
                return follow
            raise _UrlFailed(_describe_html(html, url))

        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:  # not the range asked for: start over
                self.restart()
                raise _Transient("the server answered a different range; restarting")
        else:
            if offset:  # the server ignored Range: this body is the whole file
                self.restart()
                offset = 0
            length = response.headers.get("Content-Length") if response.headers else None
            total = int(length) if length and length.isdigit() else None
        self._show(offset, total)

        with open(self.part, "ab") as f:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except http.client.IncompleteRead as e:
                    if e.partial:
                        self._append(f, e.partial)
                    raise _Transient(self._closed_early(total)) from None
                except (OSError, http.client.HTTPException) as e:
                    raise _Transient(f"the connection failed ({type(e).__name__}: {e})") from None
                if not chunk:
                    break
                self._append(f, chunk)
        if total is not None and self.hasher.count < total:
            raise _Transient(self._closed_early(total))
        return None

    def _append(self, f, chunk: bytes) -> None:
        f.write(chunk)
        self.hasher.update(chunk)
        if self.bar is not None:
            self.bar.advance(len(chunk))

    def _closed_early(self, total: int | None) -> str:
        return f"the connection closed after {human_size(self.hasher.count)}" + (
            f" of {human_size(total)}" if total else ""
        )
