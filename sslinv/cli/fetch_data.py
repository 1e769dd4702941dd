"""`sslinv fetch-data`: verified, resumable, safe downloads of the datasets and the model zoo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sslinv.cli import options as o
from sslinv.cli.output import handle_errors, print_json, progress_reporter, stdout
from sslinv.fetch.records import DATASETS  # no torch: the help lists the registry

FETCH = "Fetch"
SOURCES = "Sources and checksums"


def complete_dataset(incomplete: str) -> list[str]:
    return [n for n in DATASETS.names() if n.lower().startswith(incomplete.lower())]


def complete_zoo_model(incomplete: str) -> list[str]:
    from sslinv.models.zoo import MODELS

    names = ["all", *(n for n, r in MODELS.items() if r.kind == "download")]
    return [n for n in names if n.startswith(incomplete)]


@handle_errors()
def fetch_data(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(
            help=f"Datasets to fetch (case-insensitive): {', '.join(DATASETS.names())}.",
            autocompletion=complete_dataset, show_default=False,
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Fetch every dataset (manual ones print what to do).",
                                       rich_help_panel=FETCH)] = False,
    list_: Annotated[bool, typer.Option("--list", help="Show every dataset and zoo model: size, licence, "
                                        "whether it is present and verified, whether it needs a manual "
                                        "download. Makes no network request.", rich_help_panel=FETCH)] = False,
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help="A zoo model to download, verify and convert now (repeatable; "
                     "'all' for every one). Models are otherwise fetched on first use by any command.",
                     autocompletion=complete_zoo_model, rich_help_panel=FETCH, show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if the dataset is verified; replace "
                                        "an incomplete folder.", rich_help_panel=FETCH)] = False,
    keep_downloads: Annotated[bool, typer.Option("--keep-downloads", help="Keep the downloaded archives "
                                                 "(in <data-root>/.sslinv-fetch/downloads) after unpacking.",
                                                 rich_help_panel=FETCH)] = False,
    from_: Annotated[
        Optional[list[Path]],
        typer.Option("--from", help="Use these local files or folders instead of downloading (repeatable): "
                     "the archives, a folder holding them, or an unpacked folder. Needed for imagenet.",
                     rich_help_panel=SOURCES, show_default=False),
    ] = None,
    mirror: Annotated[
        Optional[str],
        typer.Option("--mirror", help="A base URL that replaces the host of every download URL (a lab "
                     "mirror), or a local folder laid out the same way (file:///srv/mirror or /srv/mirror) "
                     "\\[default: $SSLINV_MIRROR, else the official URLs].",
                     rich_help_panel=SOURCES, show_default=False),
    ] = None,
    manifest: Annotated[
        Optional[Path],
        typer.Option("--manifest", help='A JSON or TOML file of URL/checksum overrides, e.g. '
                     '{"COIL100": {"url": "http://host/coil-100.zip", "sha256": "..."}}.',
                     rich_help_panel=SOURCES, show_default=False),
    ] = None,
    sha256: Annotated[
        Optional[list[str]],
        typer.Option("--sha256", help="Require this sha256 (HEX, or FILE=HEX for one file of a dataset), "
                     "overriding the published or recorded one.", rich_help_panel=SOURCES, show_default=False),
    ] = None,
    trust: Annotated[bool, typer.Option("--trust", help="Accept the files whatever their checksum, and "
                                        "record their sha256 for next time.", rich_help_panel=SOURCES)] = False,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Retries per URL after transient errors "
                                         "(with exponential backoff; progress resets the count).",
                                         rich_help_panel=SOURCES)] = 4,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for a server before "
                                           "retrying.", rich_help_panel=SOURCES)] = 60.0,
    json_: o.Json = False,
    verbose: o.Verbose = False,
    cache_dir: o.CacheDir = None,
    data_root: o.DataRoot = None,
) -> None:
    """Download, verify and unpack the datasets and public checkpoints sslinv reads.

    Each file is checked against its published checksum (or the sha256 recorded at its first download), unpacked safely into a staging folder, arranged as the loaders read it, checked by the loader, and only then put in place under <data-root>/<NAME>. Interrupted downloads resume; a dataset already verified is not downloaded again.

    Examples: sslinv fetch-data COIL100 ALOI | sslinv fetch-data --list | sslinv fetch-data imagenet --from ~/Downloads | sslinv fetch-data --model moco-v2
    """
    # -- config -------------------------------------------------------------------------
    from sslinv import paths
    from sslinv.errors import UsageError
    from sslinv.fetch.install import FetchConfig, resolve_names, run

    cache = paths.cache_dir(cache_dir)
    root = paths.data_root(data_root, cache)
    base = paths.mirror(mirror)
    if list_:
        render_list(root, cache, base, manifest, json_)
        return
    records = resolve_names(names or [], all_)
    models = _expand_models(model or [])
    if not records and not models:
        raise UsageError("Name a dataset (or --all), a --model, or use --list to see what is available.")
    o.cache_root(cache_dir)
    if records:
        from sslinv.cache import require_writable

        require_writable(root, "--data-root (or set SSLINV_DATA_ROOT)", what="data root")
    cfg = FetchConfig(
        datasets=tuple(r.name for r in records),
        models=tuple(models),
        data_root=root,
        cache_dir=cache,
        sources=tuple(Path(p).expanduser() for p in (from_ or ())),
        mirror=base,
        manifest=manifest,
        sha256=tuple(sha256 or ()),
        trust=trust,
        force=force,
        keep_downloads=keep_downloads,
        zoo=tuple(_zoo_names()),
        retries=retries,
        timeout=timeout,
    )
    for src in cfg.sources:
        if not src.exists():
            raise UsageError(f"--from {src}: no such file or folder.")

    # -- run ----------------------------------------------------------------------------
    fetch_model = None
    if cfg.models:  # imports torch: only when models are asked for
        from sslinv.models.load import fetch_weights as fetch_model
    with progress_reporter() as reporter:
        outcomes = run(cfg, reporter, fetch_model)

    # -- render -------------------------------------------------------------------------
    if json_:
        print_json({"command": "fetch-data", "data_root": str(root), "results": [x.to_json() for x in outcomes]})
    else:
        render_outcomes(outcomes)
    failed = [x for x in outcomes if x.status == "failed"]
    if failed:
        from sslinv.cli.output import error

        for x in failed:
            error(x.message if x.message.startswith(f"{x.name}:") else f"{x.name}: {x.message}")
        raise typer.Exit(failed[0].exit_code or 1)


def _zoo_names() -> list[str]:
    from sslinv.models.zoo import MODELS

    return MODELS.names()


def _expand_models(names: list[str]) -> list[str]:
    from sslinv.errors import UsageError
    from sslinv.models.zoo import MODELS, UNSUPPORTED

    downloadable = [n for n, r in MODELS.items() if r.kind == "download"]
    out: list[str] = []
    for name in names:
        for n in downloadable if name == "all" else [name]:
            if n not in MODELS and n not in UNSUPPORTED:
                MODELS.get(n)  # raises with did-you-mean
            if n in MODELS and MODELS.get(n).kind != "download":
                raise UsageError(
                    f"Model {n!r} has nothing to download ({MODELS.get(n).kind} model). "
                    f"Downloadable: {', '.join(downloadable)}."
                )
            if n not in out:
                out.append(n)
    return out


# ------------------------------------------------------------------------------ render


def render_outcomes(outcomes) -> None:
    from rich.table import Table

    from sslinv.reporting import human_size

    table = Table(title_justify="left", show_lines=False)
    table.add_column("name")
    table.add_column("status")
    table.add_column("files (sha256, check)")
    table.add_column("contents")
    table.add_column("path", overflow="fold")
    for x in outcomes:
        files = "\n".join(
            f"{f['file']}  {human_size(f.get('size'))}  {str(f.get('sha256') or '')[:12]}  ({f.get('check', '')})"
            for f in x.files
        )
        counts = ", ".join(f"{k} {v:,}" for k, v in (x.counts or {}).items())
        style = {"failed": "red", "installed": "green", "downloaded": "green", "converted": "green"}.get(x.status, "")
        note = x.message if x.status != "failed" else "see the error below"
        table.add_row(x.name, f"[{style}]{x.status}[/]" if style else x.status, files or f"[dim]{note}[/]",
                      counts, x.path)
    stdout.print(table)


def _list_payload(root: Path, cache: Path, mirror: str | None, manifest_path: Path | None) -> dict[str, Any]:
    from sslinv.fetch.install import dataset_status
    from sslinv.fetch.manifest import load_manifest, mirror_url, with_mirror
    from sslinv.models.zoo import MODELS, UNSUPPORTED
    from sslinv.paths import converted_path, zoo_file_path

    manifest = load_manifest(manifest_path, MODELS.names())
    datasets = []
    for name, record in DATASETS.items():
        effective = manifest.apply(with_mirror(record, mirror))
        status = dataset_status(record, root)
        datasets.append({
            "name": name,
            "title": record.title,
            "size": record.size,
            "size_note": record.size_note,
            "known_size": record.known_size,
            "licence": record.licence,
            "homepage": record.homepage,
            "manual": not effective.automatic,
            "instructions": record.manual or record.fallback or None,
            "status": status["state"],
            "detail": status["detail"],
            "counts": status["counts"],
            "path": status["path"],
            "files": [
                {"file": r.filename, "urls": list(r.urls), "size": r.size, "checksums": r.checksums}
                for r in effective.resources
            ],
        })
    models = []
    for name, rec in MODELS.items():
        if rec.kind != "download":
            continue
        converted = converted_path(cache, name)
        raw = zoo_file_path(cache, rec.filename or "")
        state = "converted" if converted.is_file() else "downloaded" if raw.is_file() else "not downloaded"
        override = manifest.models.get(name)
        url = override.urls[0] if override and override.urls else (
            mirror_url(rec.url, mirror) if mirror and rec.url else rec.url)
        models.append({"name": name, "description": rec.description, "url": url, "status": state,
                       "checksums": rec.checksums, "key_prefix": rec.key_prefix})
    unsupported = [{"name": n, "reason": why} for n, why in UNSUPPORTED.items()]
    return {"data_root": str(root), "datasets": datasets, "models": models, "unsupported_models": unsupported}


def render_list(root: Path, cache: Path, mirror: str | None, manifest: Path | None, json_: bool) -> None:
    from rich.table import Table

    from sslinv.reporting import human_size

    payload = _list_payload(root, cache, mirror, manifest)
    if json_:
        print_json(payload)
        return
    colours = {"verified": "green", "present": "green", "unchecked": "yellow", "incomplete": "red", "missing": "dim"}
    table = Table(title=f"Datasets under {root}", title_justify="left")
    for col in ("dataset", "size", "status", "download", "licence"):
        table.add_column(col, overflow="fold")
    for d in payload["datasets"]:
        size = (human_size(d["size"]) if d["size"] is not None else d["size_note"]
                or (f">{human_size(d['known_size'])}" if d["known_size"] else "?"))
        state = d["status"]
        if d["counts"]:
            state += " (" + ", ".join(f"{k} {v:,}" for k, v in d["counts"].items()) + ")"
        table.add_row(d["name"], size, f"[{colours.get(d['status'], '')}]{state}[/]",
                      "manual" if d["manual"] else "automatic", d["licence"])
    stdout.print(table)
    models = Table(title="Model zoo (fetched on first use, or with --model NAME)", title_justify="left")
    for col in ("model", "status", "description"):
        models.add_column(col, overflow="fold")
    for m in payload["models"]:
        models.add_row(m["name"], m["status"], m["description"])
    stdout.print(models)
    for u in payload["unsupported_models"]:
        stdout.print(f"[dim]unsupported: {u['name']}: {u['reason']}[/]", highlight=False)
    incomplete = [d for d in payload["datasets"] if d["status"] == "incomplete"]
    for d in incomplete:
        stdout.print(f"[red]{d['name']}[/]: {d['detail']}", highlight=False)
