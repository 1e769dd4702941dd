"""Download sources that moved (issue 14, items 22-25), and the CaltechDATA zip that
wraps the original Caltech-101 tarball: verified, unwrapped, the inner archive checked
against its own recorded hash."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from test_fetch_fakes import fake_caltech101, make_zip
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.errors import ChecksumError, FetchError
from sslinv.fetch.layout import apply_resource
from sslinv.fetch.progress import NullReporter
from sslinv.fetch.records import DATASETS


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def urls(name: str, index: int = 0) -> tuple[str, ...]:
    return DATASETS.get(name).resources[index].urls


# ------------------------------------------------------------------------- records


def test_caltech101_downloads_the_caltechdata_zip():
    res = DATASETS.get("Caltech101").resources[0]
    assert res.filename == "caltech-101.zip" and res.size == 137_414_764
    assert res.urls == ("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1",)
    assert res.sha256 == "331234750fc7f77520e50d9565e8b6907b03565e30320da1401130db08c61f91"
    assert res.inner == "101_ObjectCategories.tar.gz"
    assert res.inner_md5 == "b224c7392d521a49829488ab0f1120d9"
    assert res.inner_sha256 == "af6ece2f339791ca20f855943d8b55dd60892c0a25105fcd631ee3d6430f9926"
    assert not any("drive.google" in u or "vision.caltech.edu" in u for u in res.urls)


def test_moved_sources():
    assert urls("leeds_sports_pose") == ("https://sam.johnson.io/research/lsp_dataset.zip",)
    assert all(u.startswith("https://") for u in urls("COIL100"))
    for i in (0, 1):
        assert urls("Causal3DIdent", i)[0].startswith("https://zenodo.org/records/4784282/files/")
    celeba = urls("CelebA")
    assert celeba[1] == "https://s3.amazonaws.com/pytorch-tutorial-assets/img_align_celeba.zip"
    assert urls("ExposureErrors")[0].startswith("https://ln2.sync.com/") and "drive.google" in urls("ExposureErrors")[1]
    realblur = DATASETS.get("RealBlur").resources[0]
    assert realblur.filename == "RealBlur.tar.gz" and realblur.urls == ("https://cgdata.postech.ac.kr/sharing/YhKdbtvD0",)
    assert "RealBlur.zip" not in " ".join(realblur.urls)


# --------------------------------------------------------------- the wrapped tarball


@pytest.fixture(scope="module")
def wrapped():
    zip_bytes = fake_caltech101()["caltech-101.zip"]
    import io
    import zipfile

    inner = zipfile.ZipFile(io.BytesIO(zip_bytes)).read("caltech-101/101_ObjectCategories.tar.gz")
    return zip_bytes, inner


def images(staging: Path) -> int:
    return len(list((staging / "caltech101" / "101_ObjectCategories").glob("*/image_*.jpg")))


def _resource(inner: bytes):
    res = DATASETS.get("Caltech101").resources[0]
    return replace(res, inner_sha256=sha256(inner), inner_md5=hashlib.md5(inner).hexdigest())


def test_unwrap_checks_and_unpacks_the_inner_archive(tmp_path, wrapped):
    zip_bytes, inner = wrapped
    (tmp_path / "caltech-101.zip").write_bytes(zip_bytes)
    staging = tmp_path / "staging"
    staging.mkdir()
    n = apply_resource(_resource(inner), tmp_path / "caltech-101.zip", staging, NullReporter(), "Caltech101")
    assert n == 102 * 2 == images(staging)
    assert [p.name for p in staging.iterdir()] == ["caltech101"]  # no temporary left
    # The tarball itself (e.g. from an old lab copy) goes through the same check.
    (tmp_path / "101_ObjectCategories.tar.gz").write_bytes(inner)
    other = tmp_path / "other"
    other.mkdir()
    apply_resource(_resource(inner), tmp_path / "101_ObjectCategories.tar.gz", other, NullReporter(), "Caltech101")
    assert images(other) == 102 * 2


def test_unwrap_refuses_a_changed_inner_archive(tmp_path, wrapped):
    zip_bytes, inner = wrapped
    (tmp_path / "caltech-101.zip").write_bytes(zip_bytes)
    staging = tmp_path / "staging"
    staging.mkdir()
    res = DATASETS.get("Caltech101").resources[0]  # the real recorded hashes: the fake differs
    with pytest.raises(ChecksumError, match=r"101_ObjectCategories.tar.gz inside caltech-101.zip is not the "
                       r"recorded original \(expected sha256 af6ece2f"):
        apply_resource(res, tmp_path / "caltech-101.zip", staging, NullReporter(), "Caltech101")
    assert list(staging.iterdir()) == []
    (tmp_path / "empty.zip").write_bytes(make_zip({"caltech-101/README": b"x"}))
    with pytest.raises(FetchError, match="holds no 101_ObjectCategories.tar.gz"):
        apply_resource(_resource(inner), tmp_path / "empty.zip", staging, NullReporter(), "Caltech101")


def test_fetch_data_from_a_local_mirror_checks_the_inner_archive(tmp_path, monkeypatch):
    """Through the CLI: a local mirror serves the zip (accepted with --sha256); the tarball
    inside is not the recorded one, so nothing is installed and the message says why."""
    files = fake_caltech101()
    mirror = tmp_path / "mirror"
    for res in DATASETS.get("Caltech101").resources:
        from urllib.parse import urlsplit

        dest = mirror / urlsplit(res.urls[0]).path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(files[res.filename])
    monkeypatch.setenv("SSLINV_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    res = CliRunner().invoke(app, [
        "fetch-data", "Caltech101", "--mirror", mirror.as_uri(), "--data-root", str(data),
        *(f"--sha256={name}={sha256(blob)}" for name, blob in files.items()),
    ], prog_name="sslinv")
    assert res.exit_code == 7, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is not the recorded original" in errors[0] and "--from" in errors[0]
    assert "Traceback" not in res.stderr and not (data / "Caltech101").exists()
    assert not [p for p in data.iterdir() if p.name.startswith(".Caltech101")]


def test_a_manifest_may_serve_the_inner_tarball_itself(tmp_path):
    """A lab mirror that kept the old 101_ObjectCategories.tar.gz: the entry names it, and
    the download is checked against the tarball's recorded hashes (or the manifest's)."""
    import json

    from sslinv.fetch.manifest import load_manifest

    record = DATASETS.get("Caltech101")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"Caltech101": {"url": "http://lab/caltech/101_ObjectCategories.tar.gz"}}))
    res = load_manifest(path).apply(record).resources[0]
    assert res.filename == "101_ObjectCategories.tar.gz" and res.urls == ("http://lab/caltech/101_ObjectCategories.tar.gz",)
    assert res.sha256 == record.resources[0].inner_sha256 and res.md5 == record.resources[0].inner_md5
    path.write_text(json.dumps({"Caltech101": {"files": {"101_ObjectCategories.tar.gz": {
        "url": "http://lab/x.tar.gz", "sha256": "ab" * 32}}}}))
    res = load_manifest(path).apply(record).resources[0]
    assert res.sha256 == "ab" * 32 and res.md5 is None and res.inner_checksums == {}
