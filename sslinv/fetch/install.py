"""``fetch-data``'s run: from nothing to a verified dataset folder (and zoo checkpoints).

For each dataset, in order (a contents page of :func:`fetch_dataset`):

1. **Already there?** The loader's ``verify`` (``sslinv.data.<module>``) checks the
   folder. A verified folder is left alone and no request is made (``--force`` refetches).
2. **Files**: each resource comes from ``--from`` (a file or a folder), from a previous
   run's download, or is downloaded (:mod:`sslinv.fetch.download`: resumable, retried,
   verified before the rename). Checksums, strongest first: ``--sha256``, the manifest's,
   the published ones in :mod:`sslinv.fetch.records`, the sha256 recorded at the first
   download (trust on first use: printed, stored in ``<cache>/fetch/sha256.json`` and
   required of every later download; :mod:`sslinv.fetch.verified`). ``--trust`` accepts
   any file and records its sha256.
3. **Layout**: the files are unpacked into a hidden staging folder beside the dataset
   (``<data-root>/.<DIRNAME>.fetch-*.tmp``), arranged as the loader reads them
   (:mod:`sslinv.fetch.layout`, :mod:`sslinv.fetch.imagenet`), and checked by the loader.
4. **Install**: the staging folder is renamed to ``<data-root>/<DIRNAME>`` (for imagenet,
   only ``val/`` is put in place: ``train/`` may live there too), and a marker
   ``<data-root>/.sslinv-fetch/<DIRNAME>.json`` records files, URLs, sha256s and counts.
   Downloads are deleted unless ``--keep-downloads``.

Any failure or interruption deletes the staging folder, so nothing half-finished ever
carries a dataset's name; a partial download stays as ``.part`` and is resumed.
One lock per dataset (``<data-root>/.sslinv-fetch/<DIRNAME>.lock``) keeps two jobs from
fetching the same dataset at once; the second then finds it verified. Everything kept
under the data root is keyed by the dataset's folder name (``DIRNAME``, see
:mod:`sslinv.paths`), so it outlives a change of the name typed.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import posixpath
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sslinv import __version__
from sslinv.cache import lock, write_json
from sslinv.errors import (
    ChecksumError,
    DataNotFoundError,
    FetchError,
    ManualDownloadError,
    SslinvError,
    UsageError,
)
from sslinv.fetch.download import essential, hash_file, mismatches
from sslinv.fetch.manifest import Manifest, load_manifest, with_mirror
from sslinv.fetch.records import DATASETS, DatasetRecord, Resource, lookup
from sslinv.fetch.verified import RecordedHashes, expected_checksums, fetch_file, now, record_first_use
from sslinv.paths import fetch_dir, fetch_downloads_dir, fetch_marker_path
from sslinv.reporting import NullReporter, Reporter

__all__ = [
    "FetchConfig",
    "Outcome",
    "dataset_status",
    "fetch_dataset",
    "loader_module",
    "marker_path",
    "run",
]


# ------------------------------------------------------------------------------ paths
# Everything under the data root is keyed by the dataset's folder name (its DIRNAME).


def downloads_dir(data_root: Path, record: DatasetRecord) -> Path:
    return fetch_downloads_dir(data_root, record.dirname)


def marker_path(data_root: Path, record: DatasetRecord) -> Path:
    """``<data-root>/.sslinv-fetch/<DIRNAME>.json``: what fetch-data installed there."""
    return fetch_marker_path(data_root, record.dirname)


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class FetchConfig:
    """What to fetch and how (built by the CLI from its options)."""

    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    data_root: Path = Path("data")
    cache_dir: Path = Path(".")
    sources: tuple[Path, ...] = ()  # --from
    mirror: str | None = None
    manifest: Path | None = None
    sha256: tuple[str, ...] = ()  # --sha256: "HEX" or "FILENAME=HEX"
    trust: bool = False
    force: bool = False
    keep_downloads: bool = False
    zoo: tuple[str, ...] = ()  # model names a --manifest may override (the CLI passes the zoo's)
    retries: int = 4
    timeout: float = 60.0
    backoff: float = 1.0


@dataclass
class Outcome:
    """What happened to one dataset or model (rendered by the CLI, or as JSON)."""

    kind: str  # "dataset" | "model"
    name: str
    status: str  # installed | verified | present | downloaded | converted | failed
    path: str = ""
    counts: dict[str, int] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -------------------------------------------------------------------------- overrides


def parse_sha256_options(values: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
    """``--sha256`` values -> (a bare HEX or None, {file name: HEX})."""
    bare: str | None = None
    named: dict[str, str] = {}
    for value in values:
        name, sep, hexdigest = value.rpartition("=")
        hexdigest = hexdigest.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
            raise UsageError(
                f"--sha256 {value!r}: give 64 hex digits, or FILE=HEX for one file of a dataset."
            )
        if sep:
            named[name.strip()] = hexdigest
        elif bare is not None:
            raise UsageError("--sha256 HEX was given twice; use FILE=HEX to name each file.")
        else:
            bare = hexdigest
    return bare, named


# ------------------------------------------------------------------------------ loader


def loader_module(record: DatasetRecord) -> ModuleType | None:
    """``sslinv.data.<module>`` (``DIRNAME``, ``verify``), or None if it is not installed."""
    name = f"sslinv.data.{record.module}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            return None
        raise


def _verify(record: DatasetRecord, folder: Path) -> dict[str, int] | None:
    """The loader's counts for ``folder``; None when no loader module exists."""
    module = loader_module(record)
    if module is None:
        return None
    counts = module.verify(Path(folder))
    return {str(k): int(v) for k, v in dict(counts).items()}


def dataset_status(record: DatasetRecord, data_root: Path) -> dict[str, Any]:
    """Whether a dataset is present and verified, without any network access.

    ``state``: ``verified`` (fetched by sslinv and passing the loader check), ``present``
    (passes the loader check, placed by hand), ``incomplete``, ``missing``, or
    ``unchecked`` (fetched by sslinv, but no loader module is installed to check it).
    """
    folder = Path(data_root) / record.dirname
    marker = marker_path(data_root, record)
    out: dict[str, Any] = {"path": str(folder), "counts": None, "detail": ""}
    if not _has_content(folder, record.managed):
        out["state"] = "missing"
        return out
    try:
        counts = _verify(record, folder)
    except SslinvError as e:
        out.update(state="incomplete", detail=str(e))
        return out
    if counts is None:
        out.update(state="unchecked" if marker.is_file() else "present",
                   detail=f"no loader module sslinv.data.{record.module} to check it")
        return out
    out.update(state="verified" if marker.is_file() else "present", counts=counts)
    return out


def _has_content(folder: Path, managed: tuple[str, ...]) -> bool:
    """Whether the part of ``folder`` that sslinv manages holds anything."""
    if managed:
        return any((folder / m).exists() for m in managed)
    try:
        with os.scandir(folder) as it:
            return any(not e.name.startswith(".") for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return False


# ------------------------------------------------------------------------------- files


@dataclass
class _File:
    resource: Resource
    path: Path
    digests: dict[str, str]
    check: str  # how it was verified
    source: str  # URL or local path
    downloaded: bool = False


class _Context:
    def __init__(self, cfg: FetchConfig, reporter: Reporter, manifest: Manifest) -> None:
        self.cfg = cfg
        self.reporter = reporter
        self.manifest = manifest
        self.recorded = RecordedHashes.in_cache(cfg.cache_dir)
        self.bare_sha, self.named_sha = parse_sha256_options(cfg.sha256)


def _file_key(record: DatasetRecord, index: int, res: Resource) -> str:
    """The key of a recorded sha256 (by folder name, as everything fetch-data keeps)."""
    return f"dataset/{record.dirname}/{res.filename or f'file{index}'}"


def _download_name(record: DatasetRecord, index: int, res: Resource) -> str:
    if res.filename:
        return res.filename
    for url in res.urls:
        base = posixpath.basename(urllib.parse.urlsplit(url).path)
        if base and "." in base:
            return base
    return f"{record.name}-{index}.download"


def _checksum_sources(ctx: _Context, record: DatasetRecord, index: int, res: Resource) -> dict[str, Any]:
    """Where a file's checksum comes from: ``--sha256`` (ignored with ``--trust``), then
    the record's (or the manifest's), then the sha256 recorded at the first download."""
    name = res.filename or _download_name(record, index, res)
    given = None
    if not ctx.cfg.trust and (name in ctx.named_sha or ctx.bare_sha):
        given = {"sha256": ctx.named_sha.get(name) or ctx.bare_sha}
    original = DATASETS.get(record.name).resources[index].checksums
    return {
        "given": given,
        "given_label": "--sha256",
        "trust": ctx.cfg.trust,
        "published": res.checksums,
        "published_label": "published" if res.checksums == original else "manifest",
    }


def _expected(ctx: _Context, record: DatasetRecord, index: int, res: Resource) -> tuple[dict[str, str], str]:
    """The checksums a file must match, and where they come from (for the report)."""
    return expected_checksums(ctx.recorded, _file_key(record, index, res),
                              **_checksum_sources(ctx, record, index, res))


def _candidates(ctx: _Context, record: DatasetRecord, index: int, res: Resource) -> list[Path]:
    """Local files that may be this resource: --from entries, earlier downloads, and (for
    imagenet) archives placed in the dataset folder as torchvision expects."""
    name = _download_name(record, index, res)
    out: list[Path] = []
    single = len(record.resources) == 1
    for src in ctx.cfg.sources:
        src = Path(src).expanduser()
        if src.is_file() and (src.name == res.filename or (single and res.filename is None) or (
            single and record.installer == "layout"
        )):
            out.append(src)
        elif src.is_dir() and (src / name).is_file():
            out.append(src / name)
        elif src.is_dir() and single and res.filename is None and res.extract:
            lone = _lone_archive(src)  # a folder holding the download, whatever its name
            if lone is not None:
                out.append(lone)
    out.append(downloads_dir(ctx.cfg.data_root, record) / name)
    if record.managed:  # e.g. imagenet/ILSVRC2012_img_val.tar, where torchvision wants it
        out.append(Path(ctx.cfg.data_root) / record.dirname / name)
    return [p for p in out if p.is_file()]


def _lone_archive(folder: Path) -> Path | None:
    """The one file directly in ``folder`` when it holds nothing else (hidden files
    aside) and is an archive: the download of a dataset whose archive name is not known,
    in the folder given with --from. A single file that is no archive sslinv can unpack
    is an error naming it (``extract.sniff``); a dataset unpacked holds many files."""
    from sslinv.fetch.extract import sniff

    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) != 1 or not entries[0].is_file():
        return None
    sniff(entries[0])
    return entries[0]


def _check_local(ctx: _Context, record: DatasetRecord, index: int, res: Resource, path: Path) -> _File:
    expected, check = _expected(ctx, record, index, res)
    expected = essential(expected)
    algos = ["sha256", *sorted(a for a in expected if a != "sha256")]
    digests = hash_file(path, algos, ctx.reporter, f"verifying {path.name}")
    bad = mismatches(digests, expected)
    if bad:
        raise ChecksumError(
            f"{path} failed its checksum ({check}): "
            + "; ".join(f"expected {a} {e}, got {g}" for a, e, g in bad)
            + ". Use the right file, or --sha256 HEX / --trust to accept this one."
        )
    if not expected or ctx.cfg.trust:
        _record(ctx, record, index, res, digests["sha256"], path.stat().st_size, str(path))
        check = "sha256 recorded now" if not ctx.cfg.trust else check
    return _File(res, path, digests, check, str(path))


def _record(ctx: _Context, record: DatasetRecord, index: int, res: Resource, sha: str, size: int, source: str) -> None:
    record_first_use(ctx.recorded, _file_key(record, index, res), sha, size, source, ctx.reporter,
                     f"{record.name}: {res.filename or Path(source).name}")


def _obtain(ctx: _Context, record: DatasetRecord, index: int, res: Resource) -> _File:
    """One resource as a verified local file (or a folder given with --from)."""
    for path in _candidates(ctx, record, index, res):
        try:
            return _check_local(ctx, record, index, res, path)
        except ChecksumError:
            if path.parent != downloads_dir(ctx.cfg.data_root, record):
                raise
            ctx.reporter.warn(f"{path} does not match; downloading it again.")
            path.unlink(missing_ok=True)

    tree = _tree_source(ctx, record, res)
    if tree is not None:
        return _File(res, tree, {}, "folder given with --from (no checksum)", str(tree))

    if not res.urls:
        raise _manual_error(ctx, record)
    dest = downloads_dir(ctx.cfg.data_root, record) / _download_name(record, index, res)
    try:
        got = fetch_file(
            res.urls, dest, key=_file_key(record, index, res), cache=ctx.cfg.cache_dir,
            what=f"{record.name}: {dest.name}", **_checksum_sources(ctx, record, index, res),
            reporter=ctx.reporter, retries=ctx.cfg.retries, timeout=ctx.cfg.timeout, backoff=ctx.cfg.backoff,
        )
    except ChecksumError:
        raise
    except FetchError as e:
        if record.fallback:
            raise FetchError(f"{e} {record.fallback}") from None
        raise
    return _File(res, got.path, got.digests, got.check, got.source, downloaded=True)


def _tree_source(ctx: _Context, record: DatasetRecord, res: Resource) -> Path | None:
    """A --from folder that stands for an archive, unpacked: for a one-archive dataset, a
    folder without the archive in it; for imagenet, a folder of the flat val images or an
    unpacked devkit."""
    sources = [Path(s).expanduser() for s in ctx.cfg.sources]
    folders = [s for s in sources if s.is_dir()]
    if record.installer == "imagenet":
        from sslinv.fetch import imagenet

        for folder in folders:
            if res.filename == imagenet.VAL_TAR:
                for cand in (folder, folder / "val"):
                    if imagenet.is_val_folder(cand):
                        return cand
            elif res.filename == imagenet.DEVKIT and imagenet.find_devkit_dir(folder) is not None:
                return folder
        return None
    archives = [r for r in record.resources if r.extract]
    if len(archives) != 1 or res is not archives[0]:
        return None
    for folder in folders:
        if not (res.filename and (folder / res.filename).is_file()):
            return folder
    return None


def _manual_error(ctx: _Context, record: DatasetRecord) -> ManualDownloadError:
    files = ", ".join(r.filename for r in record.resources if r.filename) or "the archive"
    what = record.manual or f"{record.name} has no download URL. {record.fallback}"
    return ManualDownloadError(
        f"{what} Then run: sslinv fetch-data {record.name} --from DIR (DIR holds {files}; "
        f"--from may also name the files one by one). The dataset will be installed in "
        f"{Path(ctx.cfg.data_root) / record.dirname}. A --manifest entry with a URL also works."
    )


# ---------------------------------------------------------------------------- install


def _staging(data_root: Path, name: str) -> Path:
    data_root.mkdir(parents=True, exist_ok=True)
    for stale in data_root.glob(f".{name}.fetch-*.tmp"):  # left by a killed run (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=data_root, prefix=f".{name}.fetch-", suffix=".tmp"))
    # mkdtemp makes the folder private (0700); a data root is often shared by a lab.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def _put_in_place(staging: Path, final: Path, shared: bool) -> None:
    """Rename the staged dataset into place (one rename when ``final`` is new)."""
    if not shared and not final.exists():
        os.replace(staging, final)
        return
    if not shared:
        trash = final.with_name(f".{final.name}.replaced-{os.getpid()}.tmp")
        os.replace(final, trash)
        os.replace(staging, final)
        shutil.rmtree(trash, ignore_errors=True)
        return
    final.mkdir(parents=True, exist_ok=True)
    for entry in sorted(staging.iterdir()):
        target = final / entry.name
        if target.exists() or target.is_symlink():
            trash = final / f".{entry.name}.replaced-{os.getpid()}.tmp"
            os.replace(target, trash)
            os.replace(entry, target)
            if trash.is_dir() and not trash.is_symlink():
                shutil.rmtree(trash, ignore_errors=True)
            else:
                trash.unlink(missing_ok=True)
        else:
            os.replace(entry, target)
    staging.rmdir()


def _file_info(f: _File) -> dict[str, Any]:
    size = f.path.stat().st_size if f.path.is_file() else None
    return {
        "file": f.resource.filename or f.path.name,
        "source": f.source,
        "sha256": f.digests.get("sha256"),
        "size": size,
        "check": f.check,
    }


def fetch_dataset(ctx: _Context, record: DatasetRecord) -> Outcome:
    """Fetch, verify, lay out and install one dataset (see the module docstring)."""
    cfg = ctx.cfg
    data_root = Path(cfg.data_root)
    final = data_root / record.dirname
    marker = marker_path(data_root, record)
    effective = ctx.manifest.apply(with_mirror(record, cfg.mirror))  # manifest URLs are not mirrored

    fetch_dir(data_root).mkdir(parents=True, exist_ok=True)
    with lock(fetch_dir(data_root) / record.dirname):
        # -- 1. already there? -------------------------------------------------------
        status = dataset_status(record, data_root)
        if status["state"] in ("verified", "present", "unchecked") and not cfg.force:
            return Outcome("dataset", record.name, status["state"], str(final), status["counts"],
                           message="already in place; nothing downloaded (use --force to fetch again)")
        if status["state"] == "incomplete" and not cfg.force:
            what = ", ".join(str(final / m) for m in record.managed) if record.managed else final
            raise FetchError(
                f"{what} exists but is incomplete: {status['detail']} Move it away, or rerun "
                f"with --force to replace it: sslinv fetch-data {record.name} --force"
            )

        # -- 2. files ------------------------------------------------------------------
        # A sha256 recorded on first use stands only if the install succeeds: a damaged or
        # unsafe archive's hash must not make the good one fail its checksum later.
        before = ctx.recorded.entries()
        keys = {_file_key(effective, i, res) for i, res in enumerate(effective.resources)}
        try:
            files = [_obtain(ctx, effective, i, res) for i, res in enumerate(effective.resources)]
        except BaseException:
            _forget_new_hashes(ctx, before, keys)
            raise

        # -- 3. layout into a staging folder, checked by the loader ---------------------
        staging = _staging(data_root, record.dirname)
        try:
            if record.installer == "imagenet":
                from sslinv.fetch import imagenet

                by_name = {f.resource.filename: f.path for f in files}
                imagenet.install(by_name[imagenet.VAL_TAR], by_name[imagenet.DEVKIT], staging, ctx.reporter)
            else:
                for f in files:
                    from sslinv.fetch.layout import apply_resource

                    apply_resource(f.resource, f.path, staging, ctx.reporter, f"{record.name}: {f.path.name}")
            try:
                counts = _verify(record, staging)
            except DataNotFoundError as e:
                raise FetchError(
                    f"{record.name}: after unpacking, the loader check failed: {e} The archive's "
                    f"layout is not what sslinv expects; nothing was installed under {final}."
                ) from None
            if counts is None:
                ctx.reporter.warn(
                    f"{record.name}: no loader module sslinv.data.{record.module} is installed, so "
                    "the layout could not be checked; installing it as unpacked."
                )
            _expected_counts(ctx, record, counts)
            # -- 4. install ---------------------------------------------------------------
            _put_in_place(staging, final, bool(record.managed))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            _forget_new_hashes(ctx, before, keys)
            raise

        infos = [_file_info(f) for f in files]
        write_json(marker, {
            "name": record.name,
            "path": str(final),
            "installed": now(),
            "sslinv": __version__,
            "counts": counts,
            "files": infos,
        })
        if not cfg.keep_downloads:
            _clean_downloads(downloads_dir(data_root, record), files)
        return Outcome("dataset", record.name, "installed", str(final), counts, infos)


def _forget_new_hashes(ctx: _Context, before: dict[str, Any], keys: set[str]) -> None:
    changed = {k for k in keys if ctx.recorded.entries().get(k) != before.get(k)}
    if changed:
        ctx.recorded.restore(before, changed)
        ctx.reporter.info("The sha256 recorded for it was forgotten: the install did not finish.")


def _clean_downloads(folder: Path, files: list[_File]) -> None:
    """Delete this dataset's downloads (and their lock files: we hold the dataset lock)."""
    for f in files:
        if f.downloaded or f.path.parent == folder:
            f.path.unlink(missing_ok=True)
    if folder.is_dir():
        for leftover in folder.glob("*.lock"):
            leftover.unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:  # something else is in there (a user's file, a .part): keep it
            pass


def _expected_counts(ctx: _Context, record: DatasetRecord, counts: dict[str, int] | None) -> None:
    module = loader_module(record)
    expected = getattr(module, "EXPECTED", None) if module is not None else None
    if not counts or not isinstance(expected, dict):
        return
    differ = {k: (counts.get(k), v) for k, v in expected.items() if counts.get(k) not in (None, v)}
    if differ:
        ctx.reporter.warn(
            f"{record.name}: "
            + ", ".join(f"{k} {got:,} (the full set has {want:,})" for k, (got, want) in differ.items())
        )


# -------------------------------------------------------------------------------- run


def resolve_names(names: list[str] | tuple[str, ...], all_: bool) -> list[DatasetRecord]:
    """Records for the names typed (case-insensitive), or every record with ``all_``."""
    if all_:
        return [record for _, record in DATASETS.items()]
    out: list[DatasetRecord] = []
    for name in names:
        record = lookup(name)
        if record not in out:
            out.append(record)
    return out


#: Fetches one zoo model (``sslinv.models.load.fetch_weights``): the CLI passes it in, as
#: this package never imports ``sslinv.models`` (models call :func:`fetch_file` instead).
FetchModel = Callable[..., dict[str, Any]]


def run(cfg: FetchConfig, reporter: Reporter | None = None, fetch_model: FetchModel | None = None) -> list[Outcome]:
    """Fetch every dataset and model in ``cfg``; one :class:`Outcome` each, failures included.

    Models (``cfg.models``) need ``fetch_model``, which downloads, verifies and converts one.
    """
    reporter = reporter or NullReporter()
    manifest = load_manifest(cfg.manifest, (*cfg.zoo, *cfg.models))
    ctx = _Context(cfg, reporter, manifest)
    records = resolve_names(cfg.datasets, False)
    if cfg.models and fetch_model is None:
        raise TypeError("run(cfg) with models needs fetch_model (sslinv.models.load.fetch_weights)")
    if ctx.bare_sha and len(records) + len(cfg.models) != 1:
        raise UsageError("--sha256 HEX applies to one file: fetch one dataset or model, or write FILE=HEX.")
    if ctx.bare_sha and records and len(records[0].resources) > 1:
        names = ", ".join(r.filename or "?" for r in records[0].resources)
        raise UsageError(f"{records[0].name} has several files ({names}); write --sha256 FILE=HEX.")
    if cfg.sources and len(records) + len(cfg.models) > 1:
        raise UsageError("--from applies to one dataset: fetch the datasets one at a time with --from.")
    if ctx.named_sha and records and not cfg.models:  # a misspelt FILE would be ignored silently
        known = {_download_name(r, i, res) for rec in records
                 for r in (rec, ctx.manifest.apply(with_mirror(rec, cfg.mirror)))
                 for i, res in enumerate(r.resources)}
        unknown = sorted(set(ctx.named_sha) - known)
        if unknown:
            raise UsageError(f"--sha256 {unknown[0]}=...: no file of {', '.join(r.name for r in records)} is called "
                             f"{unknown[0]!r}; its files are {', '.join(sorted(known))}.")

    outcomes: list[Outcome] = []
    for record in records:
        try:
            outcomes.append(fetch_dataset(ctx, record))
        except SslinvError as e:  # reported by the caller; the other datasets go on
            outcomes.append(Outcome("dataset", record.name, "failed", message=str(e), exit_code=e.exit_code))
    for name in cfg.models:
        assert fetch_model is not None
        outcomes.append(_fetch_model(ctx, name, fetch_model))
    return outcomes


def _fetch_model(ctx: _Context, name: str, fetch_model: FetchModel) -> Outcome:
    cfg = ctx.cfg
    override = ctx.manifest.models.get(name)
    expected = None
    if ctx.bare_sha:
        expected = {"sha256": ctx.bare_sha}
    try:
        info = fetch_model(
            name, cfg.cache_dir, reporter=ctx.reporter,
            urls=override.urls if override and override.urls else None,
            expected=expected or (dict(override.checksums) if override and override.checksums else None),
            mirror=cfg.mirror, trust=cfg.trust, force=cfg.force, retries=cfg.retries,
            timeout=cfg.timeout, backoff=cfg.backoff,
        )
    except SslinvError as e:
        return Outcome("model", name, "failed", message=str(e), exit_code=e.exit_code)
    return Outcome("model", name, info["status"], info["path"], files=[info["file"]], message=info.get("message", ""))
