"""Every location sslinv reads or writes, as pure functions.

This is the only module that reads ``SSLINV_*`` environment variables. Precedence,
highest first:

- cache root: ``--cache-dir`` option, then ``SSLINV_CACHE_DIR``, then the
  platformdirs user cache directory (``~/.cache/sslinv`` on Linux);
- data root: ``--data-root`` option, then ``SSLINV_DATA_ROOT``, then ``<cache>/data``;
- download mirror: ``--mirror`` option, then ``SSLINV_MIRROR``, then none (the official
  URLs). A mirror replaces the scheme and host of every download URL (``fetch-data`` and
  first-use model downloads; see ``sslinv.fetch.manifest.mirror_url``).
- start method of DataLoader workers: ``SSLINV_START_METHOD`` (``fork``, ``spawn`` or
  ``forkserver``), else Python's default (see ``sslinv.runtime.make_loader``).

Cache layout::

    <cache>/checkpoints/<name>.pth.tar     models known by name (--model ventral)
    <cache>/weights/<file>                 downloaded public weights (the model zoo), and
    <cache>/weights/<name>.backbone.pth    each converted once (+ .json sidecar)
    <cache>/fetch/sha256.json              sha256 of downloads without a published checksum
    <cache>/stats/<model>/<hash>.pt        feature mean and covariance (+ .json sidecar)
    <cache>/features/<model>/<hash>.pt     frozen features of a dataset split (+ .json sidecar)
    <cache>/results/<command>/<model>/*.json   one self-describing file per run
    <cache>/demo/<version>/                the built-in procedural demo image pool
    <cache>/demo/report.html               the HTML report `sslinv demo` ends with
    <cache>/pretrain/<name>/               a pretraining run: checkpoint.pth.tar (latest),
                                           log.jsonl, config.json, run.lock
    <cache>/data/                          default data root (fetch-data writes here)

Data-root layout written by ``fetch-data`` (keyed by the dataset's folder name)::

    <data-root>/<DIRNAME>/                     an installed dataset
    <data-root>/.sslinv-fetch/<DIRNAME>.json   what was installed (files, URLs, sha256s, counts)
    <data-root>/.sslinv-fetch/<DIRNAME>.lock   one fetch per dataset at a time
    <data-root>/.sslinv-fetch/downloads/<DIRNAME>/   downloads in progress (``.part``) or kept
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE_DIR = "SSLINV_CACHE_DIR"
ENV_DATA_ROOT = "SSLINV_DATA_ROOT"
ENV_MIRROR = "SSLINV_MIRROR"
ENV_START_METHOD = "SSLINV_START_METHOD"


def cache_dir(option: Path | str | None = None) -> Path:
    if option:
        return Path(option).expanduser()
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("sslinv", appauthor=False))


def data_root(option: Path | str | None = None, cache: Path | None = None) -> Path:
    if option:
        return Path(option).expanduser()
    env = os.environ.get(ENV_DATA_ROOT)
    if env:
        return Path(env).expanduser()
    return (cache if cache is not None else cache_dir()) / "data"


def mirror(option: str | None = None) -> str | None:
    """The base URL that replaces every download URL's host, or None for the official ones."""
    value = (option or os.environ.get(ENV_MIRROR) or "").strip()
    return value or None


def start_method() -> str | None:
    """The multiprocessing start method for loader workers, or None for Python's default."""
    value = os.environ.get(ENV_START_METHOD, "").strip().lower()
    return value or None


def checkpoints_dir(cache: Path) -> Path:
    return cache / "checkpoints"


def checkpoint_path(cache: Path, name: str) -> Path:
    return checkpoints_dir(cache) / f"{name}.pth.tar"


def weights_dir(cache: Path) -> Path:
    return cache / "weights"


def zoo_file_path(cache: Path, filename: str) -> Path:
    """``<cache>/weights/<filename>``: a zoo model's download, as published."""
    return weights_dir(cache) / filename


def converted_path(cache: Path, name: str) -> Path:
    """``<cache>/weights/<name>.backbone.pth``: a zoo model's backbone, converted once."""
    return weights_dir(Path(cache)) / f"{name}.backbone.pth"


def recorded_hashes_path(cache: Path) -> Path:
    """``<cache>/fetch/sha256.json``: sha256s recorded at first download (trust on first use)."""
    return Path(cache) / "fetch" / "sha256.json"


def stats_dir(cache: Path, model: str) -> Path:
    return cache / "stats" / safe_name(model)


def features_dir(cache: Path, model: str) -> Path:
    return cache / "features" / safe_name(model)


def results_dir(cache: Path) -> Path:
    return cache / "results"


def demo_dir(cache: Path, version: str) -> Path:
    return cache / "demo" / version


def demo_report(cache: Path) -> Path:
    return cache / "demo" / "report.html"


def fetch_dir(data_root: Path) -> Path:
    """``<data-root>/.sslinv-fetch``: downloads in progress, install markers, locks."""
    return Path(data_root) / ".sslinv-fetch"


def fetch_downloads_dir(data_root: Path, dirname: str) -> Path:
    return fetch_dir(data_root) / "downloads" / dirname


def fetch_marker_path(data_root: Path, dirname: str) -> Path:
    """The record of what ``fetch-data`` installed in ``<data-root>/<dirname>``."""
    return fetch_dir(data_root) / f"{dirname}.json"


def imagenet_val(root: Path) -> Path:
    return root / "imagenet" / "val"


# -- pretraining runs (sslinv pretrain) ----------------------------------------------------


def pretrain_dir(cache: Path, name: str) -> Path:
    """The folder of the pretraining run ``name``; its exported model is ``checkpoint_path``."""
    return Path(cache) / "pretrain" / safe_name(name)


def pretrain_checkpoint(cache: Path, name: str) -> Path:
    """The run's latest training checkpoint (model, optimiser, RNG states, position)."""
    return pretrain_dir(cache, name) / "checkpoint.pth.tar"


def pretrain_log(cache: Path, name: str) -> Path:
    """The run's JSON-lines log: one record per epoch and per ``--log-every-steps`` steps."""
    return pretrain_dir(cache, name) / "log.jsonl"


def pretrain_config(cache: Path, name: str) -> Path:
    """The run's full configuration as JSON."""
    return pretrain_dir(cache, name) / "config.json"


def pretrain_lock(cache: Path, name: str) -> Path:
    """The lock that keeps two jobs from training the same run (``cache.lock`` adds ``.lock``)."""
    return pretrain_dir(cache, name) / "run"


def imagenet_train(root: Path) -> Path:
    """The ILSVRC2012 training images, the default pretraining data."""
    return root / "imagenet" / "train"


def safe_name(name: str) -> str:
    """A model spec or path as one folder name (``a+b`` stays readable)."""
    keep = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)
    return keep.strip("._") or "model"
