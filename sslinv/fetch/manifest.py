"""Mirrors and manifests: point sslinv's downloads at a lab's own copies.

**Mirror** (``--mirror URL`` or ``SSLINV_MIRROR``, read by :func:`sslinv.paths.mirror`):
the scheme and host of every URL in sslinv's records are replaced by the mirror's, and
the mirror's own path (if any) is put in front of the URL's path; the query is kept.
Google Drive links, whose path holds no file name, become ``<mirror>/gdrive/<file id>``.
So ``--mirror http://data.lab:8000/sslinv`` turns
``https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz`` into
``http://data.lab:8000/sslinv/~kriz/cifar-10-python.tar.gz``. A local folder works the
same way (``--mirror file:///srv/mirror`` or ``--mirror /srv/mirror``: the file
``/srv/mirror/~kriz/cifar-10-python.tar.gz``), the common case on an air-gapped cluster.
``sslinv fetch-data --list --json --mirror URL`` prints every URL a mirror must serve.

**Manifest** (``--manifest FILE``, JSON or TOML): adds or overrides URLs and checksums of
datasets and zoo models; the archive type and the layout steps always come from
sslinv's own record. The smallest form names one archive per dataset::

    {"COIL100": {"url": "http://127.0.0.1:8000/coil-100.zip", "sha256": "<hex>"}}

Per entry: ``url`` (a string or a list: tried in order) or ``urls``; ``sha256`` /
``md5`` / ``sha1``; ``size``; ``filename``. For a dataset of several files, ``url``
applies to the file whose name matches the URL's last path component, or give
``"files": {"<file name>": {"url": ..., "sha256": ...}}``. A manifest URL replaces the
record's URLs (so a lab behind a firewall never reaches out) and is not rewritten by
``--mirror``; a manifest checksum replaces the published ones (a repackaged file), while
an entry without one keeps them (the same file, served from elsewhere). Entries may also
sit under top-level ``"datasets"`` / ``"models"`` tables. Model entries use the zoo name
(``"moco-v2": {"url": ..., "sha256": ...}``).
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import urllib.parse
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from sslinv.errors import UsageError
from sslinv.fetch.records import DATASETS, DatasetRecord, Resource, lookup
from sslinv.registry import did_you_mean

__all__ = ["Manifest", "ModelOverride", "load_manifest", "mirror_url", "with_mirror"]

_ENTRY_KEYS = {"url", "urls", "sha256", "md5", "sha1", "size", "filename", "files"}
_FILE_KEYS = _ENTRY_KEYS - {"files"}
_DRIVE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")


# ----------------------------------------------------------------------------- mirror


def _mirror_base(mirror: str) -> urllib.parse.SplitResult:
    """The mirror as a URL: ``http(s)://host/path``, ``file:///folder``, or a plain path to
    a local folder (absolute, ``~``, ``./``, ``../``, or an existing folder) as a file URL."""
    text = mirror.strip()
    m = urllib.parse.urlsplit(text.rstrip("/"))
    if m.scheme == "file":
        if m.netloc not in ("", "localhost"):
            raise UsageError(f"--mirror {mirror!r}: a file:// mirror must be local (file:///folder).")
        return m._replace(netloc="")
    if m.scheme and m.netloc:
        return m
    local = Path(text).expanduser()
    if text.startswith(("/", "~", "./", "../")) or local.is_dir():
        return urllib.parse.urlsplit(local.resolve().as_uri().rstrip("/"))
    raise UsageError(
        f"--mirror {mirror!r} is not a URL or a local folder; give e.g. http://data.lab:8000/sslinv, "
        "file:///srv/sslinv-mirror or /srv/sslinv-mirror."
    )


def mirror_url(url: str, mirror: str) -> str:
    """``url`` served from ``mirror`` instead (see the module docstring for the rule)."""
    m = _mirror_base(mirror)
    u = urllib.parse.urlsplit(url)
    path, query = u.path, u.query
    if u.hostname in _DRIVE_HOSTS:
        file_id = dict(urllib.parse.parse_qsl(u.query)).get("id") or posixpath.basename(u.path.rstrip("/"))
        path, query = f"/gdrive/{file_id}", ""
    if m.scheme == "file":
        query = ""  # a folder holds plain file names
    return urllib.parse.urlunsplit((m.scheme, m.netloc, m.path + path, query, ""))


def with_mirror(record: DatasetRecord, mirror: str | None) -> DatasetRecord:
    """The record with every URL rewritten to the mirror (unchanged when ``mirror`` is None)."""
    if not mirror:
        return record
    resources = tuple(
        dataclasses.replace(r, urls=tuple(mirror_url(u, mirror) for u in r.urls)) for r in record.resources
    )
    return dataclasses.replace(record, resources=resources)


# --------------------------------------------------------------------------- manifest


@dataclasses.dataclass(frozen=True)
class ModelOverride:
    urls: tuple[str, ...] = ()
    checksums: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Parsed overrides: dataset name -> entry, model name -> :class:`ModelOverride`."""

    path: Path | None = None
    datasets: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    models: Mapping[str, ModelOverride] = dataclasses.field(default_factory=dict)

    def apply(self, record: DatasetRecord) -> DatasetRecord:
        """``record`` with this manifest's URLs and checksums (layout unchanged)."""
        entry = self.datasets.get(record.name)
        if entry is None:
            return record
        return _apply_entry(record, entry, self.path)

    def has(self, record: DatasetRecord) -> bool:
        return record.name in self.datasets


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"Cannot read the manifest {path}: {e.strerror or e}.") from None
    is_toml = path.suffix.lower() == ".toml"
    try:
        if is_toml:
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)
    except (ValueError, ImportError) as e:
        kind = "TOML" if is_toml else "JSON"
        reason = " ".join(str(e).split())
        raise UsageError(
            f"The manifest {path} is not valid {kind} ({reason}). Give a .json file like "
            '{"COIL100": {"url": "http://mirror/coil-100.zip", "sha256": "<hex>"}}, or a .toml file '
            'with a [COIL100] table holding url = "..." and sha256 = "..." lines.'
        ) from None


def load_manifest(path: Path | str | None, models: Collection[str] = ()) -> Manifest:
    """Parse and check a manifest file (names, keys, checksums); None gives an empty one.

    ``models`` are the zoo model names an entry may override (``sslinv.models.zoo``'s,
    passed in by the caller: this package does not import ``sslinv.models``).
    """
    if path is None:
        return Manifest()
    path = Path(path).expanduser()
    data = _read(path)
    if not isinstance(data, dict):
        raise UsageError(f"The manifest {path} must hold a table of names, not a {type(data).__name__}.")
    entries: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("datasets", "models") and isinstance(value, dict) and not _looks_like_entry(value):
            entries.update(value)
        else:
            entries[key] = value

    datasets: dict[str, Mapping[str, Any]] = {}
    overrides: dict[str, ModelOverride] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise UsageError(f"Manifest {path}: the entry {name!r} must be a table such as "
                             '{"url": "...", "sha256": "..."}.')
        if name in models:
            overrides[name] = _model_override(name, entry, path)
            continue
        try:
            record = lookup(name)
        except UsageError:
            known = DATASETS.names() + list(models)
            raise UsageError(
                f"Manifest {path}: unknown dataset or model {name!r}.{did_you_mean(name, known)} "
                f"Datasets: {', '.join(DATASETS.names())}; models: sslinv fetch-data --list."
            ) from None
        _check_keys(entry, _ENTRY_KEYS, f"{path}: {name}")
        _apply_entry(record, entry, path)  # validate now, not halfway through a run
        datasets[record.name] = entry
    return Manifest(path, datasets, overrides)


def _looks_like_entry(value: dict) -> bool:
    return bool(set(value) & _ENTRY_KEYS)


def _check_keys(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise UsageError(
            f"Manifest {where}: unknown key(s) {', '.join(map(repr, unknown))}. "
            f"Allowed: {', '.join(sorted(allowed))}."
        )


def _urls(entry: Mapping[str, Any], where: str) -> tuple[str, ...]:
    raw = entry.get("urls", entry.get("url"))
    if raw is None:
        return ()
    urls = (raw,) if isinstance(raw, str) else tuple(raw) if isinstance(raw, list) else None
    if not urls or not all(isinstance(u, str) and urllib.parse.urlsplit(u).scheme for u in urls):
        raise UsageError(f"Manifest {where}: 'url' must be a URL or a list of URLs, not {raw!r}.")
    return urls


def _checksums(entry: Mapping[str, Any], where: str) -> dict[str, str]:
    from sslinv.fetch.download import normalise_expected

    try:
        return normalise_expected({k: entry.get(k) for k in ("sha256", "md5", "sha1")})
    except (ValueError, AttributeError) as e:
        raise UsageError(f"Manifest {where}: {e}.") from None


def _override(resource: Resource, entry: Mapping[str, Any], where: str, as_inner: bool = False) -> Resource:
    """``resource`` with the entry's URLs and checksums. ``as_inner``: the entry serves the
    archive a wrapper download holds (e.g. 101_ObjectCategories.tar.gz itself, not
    caltech-101.zip), which is then checked against that archive's own recorded hashes."""
    _check_keys(entry, _FILE_KEYS, where)
    changes: dict[str, Any] = {}
    if as_inner:
        resource = dataclasses.replace(
            resource, filename=resource.inner, size=None, sha256=resource.inner_sha256,
            md5=resource.inner_md5, sha1=None,
        )
    urls = _urls(entry, where)
    if urls:
        changes["urls"] = urls
    sums = _checksums(entry, where)
    if sums:  # a new checksum replaces the published ones: it may be a repackaged file
        changes.update(sha256=sums.get("sha256"), md5=sums.get("md5"), sha1=sums.get("sha1"))
        changes.update(inner_sha256=None, inner_md5=None)  # the lab's checksum vouches for it
    if "size" in entry:
        if not isinstance(entry["size"], int) or entry["size"] < 0:
            raise UsageError(f"Manifest {where}: 'size' must be a number of bytes.")
        changes["size"] = entry["size"]
    if "filename" in entry:
        name = entry["filename"]
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise UsageError(f"Manifest {where}: 'filename' must be a plain file name, not {name!r}.")
        changes["filename"] = name
    elif urls and resource.filename is None:
        base = posixpath.basename(urllib.parse.urlsplit(urls[0]).path)
        if base and "." in base:
            changes["filename"] = base
    return dataclasses.replace(resource, **changes)


def _apply_entry(record: DatasetRecord, entry: Mapping[str, Any], path: Path | None) -> DatasetRecord:
    where = f"{path}: {record.name}" if path else record.name
    resources = list(record.resources)
    names = [r.filename for r in resources]
    inner = {r.inner: i for i, r in enumerate(resources) if r.inner}
    files = entry.get("files")
    if files is not None:
        if not isinstance(files, dict):
            raise UsageError(f"Manifest {where}: 'files' must map file names to entries.")
        for fname, sub in files.items():
            if fname in inner:
                if not isinstance(sub, dict):
                    raise UsageError(f"Manifest {where}: files[{fname!r}] must be a table.")
                i = inner[fname]
                resources[i] = _override(resources[i], sub, f"{where}: {fname}", as_inner=True)
                continue
            if fname not in names:
                known = [n for n in names if n]
                raise UsageError(
                    f"Manifest {where}: {record.name} has no file {fname!r}.{did_you_mean(fname, known)} "
                    f"Its files: {', '.join(known) or '(one archive, unnamed: use url at the top level)'}."
                )
            if not isinstance(sub, dict):
                raise UsageError(f"Manifest {where}: files[{fname!r}] must be a table.")
            i = names.index(fname)
            resources[i] = _override(resources[i], sub, f"{where}: {fname}")
    top = {k: v for k, v in entry.items() if k != "files"}
    if top:
        if len(resources) == 1:
            index = 0
        else:
            base = posixpath.basename(urllib.parse.urlsplit(_urls(top, where)[0]).path) if _urls(top, where) else None
            named = top.get("filename", base)
            if named in inner:
                i = inner[named]
                resources[i] = _override(resources[i], top, where, as_inner=True)
                return dataclasses.replace(record, resources=tuple(resources))
            if named not in names:
                raise UsageError(
                    f"Manifest {where}: {record.name} has {len(resources)} files "
                    f"({', '.join(n for n in names if n)}); say which one with "
                    '"files": {"<file name>": {"url": ..., "sha256": ...}}, or use a URL ending '
                    "in that file name."
                )
            index = names.index(named)
        resources[index] = _override(resources[index], top, where)
    return dataclasses.replace(record, resources=tuple(resources))


def _model_override(name: str, entry: Mapping[str, Any], path: Path) -> ModelOverride:
    where = f"{path}: {name}"
    _check_keys(entry, {"url", "urls", "sha256", "md5", "sha1", "size", "filename"}, where)
    return ModelOverride(_urls(entry, where), _checksums(entry, where))
