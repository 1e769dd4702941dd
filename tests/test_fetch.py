"""`sslinv fetch-data` end to end against an in-process HTTP server on 127.0.0.1.

Every dataset record is fetched from fake archives in its real raw layout (through
``--manifest``), unpacked, arranged, checked by its loader (the real ``sslinv.data``
module, and the layout check beside it), and a second fetch
makes no request. Then: mirrors, tampered archives, unsafe archives, sha256 recorded on
first use, --trust / --sha256, incomplete folders, manual datasets, --list, the CLI.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_fetch_fakes import (  # noqa: F401  (server is a fixture)
    FAKES,
    LAYOUT_CHECKS,
    Server,
    make_tar,
    make_zip,
    manifest_for,
    server,
    sha256,
    write_manifest,
)
from typer.testing import CliRunner

from sslinv.cli.main import app
from sslinv.errors import (
    ChecksumError,
    FetchError,
    ManualDownloadError,
    UnknownNameError,
    UnsafeArchiveError,
    UsageError,
)
from sslinv.fetch.install import FetchConfig, dataset_status, marker_path, run
from sslinv.fetch.manifest import load_manifest, mirror_url
from sslinv.fetch.records import DATASETS, lookup
from sslinv.models.zoo import MODELS
from sslinv.reporting import NullReporter


def config(tmp_path: Path, *names: str, **kw) -> FetchConfig:
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 10.0)
    return FetchConfig(datasets=names, data_root=tmp_path / "data", cache_dir=tmp_path / "cache", **kw)


def fetch_one(cfg: FetchConfig, reporter=None):
    (outcome,) = run(cfg, reporter or NullReporter())
    return outcome


def raise_for(outcome) -> None:
    """Re-raise a failed outcome's error type for pytest.raises."""
    if outcome.status == "failed":
        kinds = {7: ChecksumError, 8: UnsafeArchiveError, 6: FetchError, 3: ManualDownloadError, 2: UsageError}
        raise kinds.get(outcome.exit_code, FetchError)(outcome.message)


def no_leftovers(data_root: Path) -> None:
    """No staging folder and nothing half-finished beside the datasets."""
    leftovers = [p.name for p in data_root.iterdir() if p.name.startswith(".") and p.name != ".sslinv-fetch"]
    assert not leftovers, leftovers


# ------------------------------------------------------------ every record, end to end

AUTOMATIC = [n for n in DATASETS.names() if n != "imagenet"]  # imagenet: test_fetch_imagenet.py


@pytest.mark.parametrize("name", AUTOMATIC)
def test_every_dataset_fetches_into_the_layout_its_loader_reads(
    name: str, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = DATASETS.get(name)
    manifest = write_manifest(tmp_path / "m.json", {name: manifest_for(server, record, FAKES[name]())})
    cfg = config(tmp_path, name, manifest=manifest)

    outcome = fetch_one(cfg)
    raise_for(outcome)
    assert outcome.status == "installed" and outcome.counts
    folder = tmp_path / "data" / record.dirname
    assert LAYOUT_CHECKS[name](folder)  # the tree datasets.md says the loaders read
    assert all(f["check"] == "manifest sha256" and len(f["sha256"]) == 64 for f in outcome.files)
    assert json.loads(marker_path(tmp_path / "data", record).read_text())["counts"] == outcome.counts
    assert not (tmp_path / "data/.sslinv-fetch/downloads" / name).exists()  # archives deleted
    no_leftovers(tmp_path / "data")

    before = len(server.requests)
    again = fetch_one(cfg)
    assert again.status == "verified" and len(server.requests) == before  # no request at all
    assert dataset_status(record, tmp_path / "data")["state"] == "verified"


# ------------------------------------------------------------------------------ mirror


def test_mirror_replaces_the_host_of_every_url() -> None:
    m = "http://127.0.0.1:8000/mirror/"
    assert mirror_url("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", m) == \
        "http://127.0.0.1:8000/mirror/~kriz/cifar-10-python.tar.gz"
    assert mirror_url("https://drive.google.com/uc?export=download&id=ABC", m) == "http://127.0.0.1:8000/mirror/gdrive/ABC"
    assert mirror_url("https://www.dropbox.com/sh/x/y/PIRL.pth?dl=1", "http://h") == "http://h/sh/x/y/PIRL.pth?dl=1"
    with pytest.raises(UsageError, match="not a URL"):
        mirror_url("http://a/b", "mirror.lab")


def test_mirror_fetch_with_published_checksum_check(server: Server, tmp_path: Path, monkeypatch) -> None:
    record = DATASETS.get("COIL100")
    data = FAKES["COIL100"]()["coil-100.zip"]
    server.add("/sslinv/CAVE/databases/SLAM_coil-20_coil-100/coil-100/coil-100.zip", data)
    monkeypatch.setenv("SSLINV_MIRROR", server.url + "/sslinv")
    from sslinv import paths

    # The fake is not the published file: the published sha256 catches it, naming both.
    failed = fetch_one(config(tmp_path, "COIL100", mirror=paths.mirror()))
    assert failed.status == "failed" and failed.exit_code == 7
    assert record.resources[0].sha256 in failed.message and sha256(data) in failed.message
    assert not (tmp_path / "data/COIL100").exists()
    no_leftovers(tmp_path / "data")
    # --sha256 overrides the published checksum for this one file
    ok = fetch_one(config(tmp_path, "COIL100", mirror=paths.mirror(), sha256=(sha256(data),)))
    raise_for(ok)
    assert ok.files[0]["check"] == "--sha256" and ok.files[0]["source"].startswith(server.url + "/sslinv/")


# ----------------------------------------------------- tampered, unsafe, interrupted


def test_tampered_archive_is_refused_and_nothing_is_left(server: Server, tmp_path: Path, monkeypatch) -> None:
    record = DATASETS.get("COIL100")
    good = FAKES["COIL100"]()["coil-100.zip"]
    entry = manifest_for(server, record, {"coil-100.zip": good})
    server.files["/COIL100/coil-100.zip"] = good[:-10] + b"\x00" * 10  # tampered in transit
    out = fetch_one(config(tmp_path, "COIL100", manifest=write_manifest(tmp_path / "m.json", {"COIL100": entry})))
    assert out.status == "failed" and out.exit_code == 7
    assert entry["sha256"] in out.message and sha256(server.files["/COIL100/coil-100.zip"]) in out.message
    assert not (tmp_path / "data/COIL100").exists()
    downloads = tmp_path / "data/.sslinv-fetch/downloads/COIL100"
    assert not [p for p in downloads.iterdir() if not p.name.endswith(".lock")]  # no file, no .part
    no_leftovers(tmp_path / "data")


@pytest.mark.parametrize("kind", ["zip", "tar"])
@pytest.mark.parametrize("bad", ["../../evil.txt", "/tmp/sslinv-evil-abs.txt"])
def test_archives_with_escaping_members_are_rejected(
    kind: str, bad: str, server: Server, tmp_path: Path, monkeypatch
) -> None:
    import io
    import tarfile
    import zipfile

    members = {"coil-100/obj1__0.png": b"png", bad: b"evil"}
    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members.items():
                zf.writestr(zipfile.ZipInfo(name), data)
        data = buf.getvalue()
    else:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, payload in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
        data = buf.getvalue()
    entry = {"url": server.add("/coil-100.zip", data), "sha256": sha256(data)}
    out = fetch_one(config(tmp_path, "COIL100", manifest=write_manifest(tmp_path / "m.json", {"COIL100": entry})))
    assert out.status == "failed" and out.exit_code == 8, out.message
    assert "refusing" in out.message and "Nothing was kept" in out.message
    assert not (tmp_path / "data/COIL100").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "data/evil.txt").exists()
    assert not Path("/tmp/sslinv-evil-abs.txt").exists()
    no_leftovers(tmp_path / "data")


def test_interrupted_unpacking_leaves_no_dataset(server: Server, tmp_path: Path, monkeypatch) -> None:
    record = DATASETS.get("ALOT")
    entry = manifest_for(server, record, FAKES["ALOT"]())
    cfg = config(tmp_path, "ALOT", manifest=write_manifest(tmp_path / "m.json", {"ALOT": entry}))

    class CtrlC(NullReporter):
        def bar(self, description, total, unit="bytes", completed=0):
            bar = super().bar(description, total, unit, completed)
            if description.startswith("unpacking"):
                bar.advance = lambda n: (_ for _ in ()).throw(KeyboardInterrupt)
            return bar

    with pytest.raises(KeyboardInterrupt):
        run(cfg, CtrlC())
    assert not (tmp_path / "data/ALOT").exists()
    no_leftovers(tmp_path / "data")
    # the verified download was kept: the rerun unpacks it without a new request
    before = len(server.requests)
    raise_for(fetch_one(cfg))
    assert len(server.requests) == before and LAYOUT_CHECKS["ALOT"](tmp_path / "data/ALOT")


def test_dropped_connection_midway_resumes_and_the_sha_matches(server: Server, tmp_path: Path, monkeypatch) -> None:
    data = FAKES["COIL100"](objects=10)["coil-100.zip"]
    entry = {"url": server.add("/coil-100.zip", data), "sha256": sha256(data)}
    server.drop["/coil-100.zip"] = [len(data) // 3]
    out = fetch_one(config(tmp_path, "COIL100", manifest=write_manifest(tmp_path / "m.json", {"COIL100": entry})))
    raise_for(out)
    assert out.files[0]["sha256"] == sha256(data)
    assert [r for p, r in server.requests if p == "/coil-100.zip"] == [None, f"bytes={len(data) // 3}-"]


# ------------------------------------------------------- no published checksum (TOFU)


def test_sha256_recorded_on_first_download_then_required(server: Server, tmp_path: Path, monkeypatch) -> None:
    record = DATASETS.get("leeds_sports_pose")
    assert not record.resources[0].checksums  # none published
    data = FAKES["leeds_sports_pose"]()["lsp_dataset.zip"]
    server.add("/research/lsp_dataset.zip", data)
    cfg = config(tmp_path, "LeedsSportsPose", mirror=server.url)  # the old name, an alias
    reporter = NullReporter()
    out = fetch_one(cfg, reporter)
    raise_for(out)
    assert out.files[0]["check"] == "sha256 recorded now"
    assert any(sha256(data) in m and "no published checksum" in m for m in reporter.infos)
    recorded = json.loads((tmp_path / "cache/fetch/sha256.json").read_text())
    assert recorded["dataset/LeedsSportsPose/lsp_dataset.zip"]["sha256"] == sha256(data)

    # The upstream file changes: the next download must match the recorded sha256.
    changed = make_zip({"images/im0001.jpg": b"other", "joints.mat": b"x"})
    server.files["/research/lsp_dataset.zip"] = changed
    forced = fetch_one(config(tmp_path, "LeedsSportsPose", mirror=server.url, force=True))
    assert forced.status == "failed" and forced.exit_code == 7
    assert sha256(data) in forced.message and sha256(changed) in forced.message
    assert LAYOUT_CHECKS["leeds_sports_pose"](tmp_path / "data/LeedsSportsPose")  # the old copy is intact
    # --trust accepts it (the loader still checks the layout) and records the new sha256
    server.files["/research/lsp_dataset.zip"] = data[:-22] + data[-22:]  # same bytes
    trusted = fetch_one(config(tmp_path, "LeedsSportsPose", mirror=server.url, force=True, trust=True))
    raise_for(trusted)
    assert trusted.files[0]["check"] == "trusted (--trust)"


# ------------------------------------------------------- existing folders, manual data


def test_incomplete_folder_needs_force(server: Server, tmp_path: Path, monkeypatch) -> None:
    record = DATASETS.get("ALOT")
    (tmp_path / "data/ALOT").mkdir(parents=True)
    (tmp_path / "data/ALOT/notes.txt").write_text("half copied")
    entry = manifest_for(server, record, FAKES["ALOT"]())
    manifest = write_manifest(tmp_path / "m.json", {"ALOT": entry})
    out = fetch_one(config(tmp_path, "ALOT", manifest=manifest))
    assert out.status == "failed" and "exists but is incomplete" in out.message and "--force" in out.message
    assert not server.requests  # refused before any download
    raise_for(fetch_one(config(tmp_path, "ALOT", manifest=manifest, force=True)))
    assert not (tmp_path / "data/ALOT/notes.txt").exists()
    no_leftovers(tmp_path / "data")


def test_present_dataset_placed_by_hand_is_left_alone(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "data/Flickr1024/Train"
    folder.mkdir(parents=True)
    from test_fetch_fakes import png

    (folder / "0001_L.png").write_bytes(png(1))
    (folder / "0001_R.png").write_bytes(png(2))
    out = fetch_one(config(tmp_path, "Flickr1024"))
    assert out.status == "present" and "nothing downloaded" in out.message


def test_manual_dataset_explains_what_to_download(tmp_path: Path, monkeypatch) -> None:
    out = fetch_one(config(tmp_path, "DaLI"))
    assert out.status == "failed" and out.exit_code == 3
    assert "https://esslab.jp/~ess/en/data/dali_data/" in out.message
    assert "sslinv fetch-data DaLI --from DIR" in out.message
    assert str(tmp_path / "data" / "DaLI") in out.message


def test_sha256_for_a_file_the_dataset_does_not_have_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no file of COIL100 is called 'foo\.zip'; its files are coil-100\.zip"):
        fetch_one(config(tmp_path, "COIL100", sha256=("foo.zip=" + "0" * 64,)))


def test_a_failed_install_records_no_sha256(tmp_path: Path) -> None:
    """A truncated archive (no published checksum: trust on first use) fails to unpack;
    its hash is not kept, so the good archive given next installs."""
    good = FAKES["Flickr1024"]()["Flickr1024.zip"]
    bad = tmp_path / "bad" / "Flickr1024.zip"
    bad.parent.mkdir()
    bad.write_bytes(good[: len(good) // 2])
    out = fetch_one(config(tmp_path, "Flickr1024", sources=(bad,)))
    assert out.status == "failed" and out.exit_code == 6
    recorded = tmp_path / "cache" / "fetch" / "sha256.json"
    assert not recorded.exists() or "dataset/Flickr1024" not in recorded.read_text()
    ok = tmp_path / "ok" / "Flickr1024.zip"
    ok.parent.mkdir()
    ok.write_bytes(good)
    out = fetch_one(config(tmp_path, "Flickr1024", sources=(ok,)))
    raise_for(out)
    assert out.status == "installed" and "dataset/Flickr1024" in recorded.read_text()


def test_from_folder_or_file_for_a_manual_dataset(tmp_path: Path, monkeypatch) -> None:
    archive = tmp_path / "downloads" / "DaLI_dataset.zip"
    archive.parent.mkdir()
    archive.write_bytes(FAKES["DaLI"]()["dali.zip"])
    reporter = NullReporter()
    out = fetch_one(config(tmp_path, "DaLI", sources=(archive,)), reporter)
    raise_for(out)
    assert out.files[0]["check"] == "sha256 recorded now" and archive.exists()  # the user's file is kept
    # the folder holding the download (its name is not known to sslinv) works too
    out = fetch_one(config(tmp_path, "DaLI", sources=(archive.parent,), force=True), reporter)
    raise_for(out)
    assert out.files[0]["source"] == str(archive)
    assert LAYOUT_CHECKS["DaLI"](tmp_path / "data/DaLI")["images"] == 64
    # an unpacked folder works too (hard links or copies)
    import zipfile

    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(archive).extractall(unpacked)
    out = fetch_one(config(tmp_path, "DaLI", sources=(unpacked,), force=True))
    raise_for(out)
    assert LAYOUT_CHECKS["DaLI"](tmp_path / "data/DaLI")["images"] == 64


def test_layout_mismatch_is_caught_before_install(server: Server, tmp_path: Path, monkeypatch) -> None:
    record = DATASETS.get("Causal3DIdent")
    files = FAKES["Causal3DIdent"]()
    files["testset.tar.gz"] = make_tar({"testset/readme.txt": b"no images here"}, "gz")
    manifest = write_manifest(tmp_path / "m.json", {"Causal3DIdent": manifest_for(server, record, files)})
    out = fetch_one(config(tmp_path, "Causal3DIdent", manifest=manifest))
    assert out.status == "failed" and "holds no folder with images_0" in out.message
    assert not (tmp_path / "data/Causal3DIdent").exists()
    no_leftovers(tmp_path / "data")


# --------------------------------------------------------------------------- manifest


def test_manifest_json_and_toml_forms(tmp_path: Path) -> None:
    toml = tmp_path / "m.toml"
    toml.write_text('[COIL100]\nurl = "http://127.0.0.1:8000/coil-100.zip"\nsha256 = "' + "ab" * 32 + '"\n'
                    '[ALOI.files."aloi_red4_view.tar"]\nurl = "http://h/v.tar"\n'
                    '[models.moco-v2]\nurl = "http://h/moco.pth.tar"\n')
    m = load_manifest(toml, MODELS.names())
    coil = m.apply(DATASETS.get("COIL100")).resources[0]
    assert coil.urls == ("http://127.0.0.1:8000/coil-100.zip",) and coil.sha256 == "ab" * 32
    aloi = m.apply(DATASETS.get("ALOI")).resources
    assert aloi[0].urls == ("http://h/v.tar",) and aloi[0].md5 == DATASETS.get("ALOI").resources[0].md5
    assert aloi[1] == DATASETS.get("ALOI").resources[1]
    assert m.models["moco-v2"].urls == ("http://h/moco.pth.tar",)
    # a URL naming one file of a multi-file dataset
    j = write_manifest(tmp_path / "m.json", {"flowers": {"url": "http://h/x/setid.mat"}})
    flowers = load_manifest(j).apply(DATASETS.get("Flowers"))
    assert flowers.resources[2].urls == ("http://h/x/setid.mat",)


@pytest.mark.parametrize("entries, match", [
    ({"COIL1000": {"url": "http://h/a.zip"}}, r"unknown dataset or model 'COIL1000'\. Did you mean 'COIL100'"),
    ({"ALOI": {"url": "http://h/a.tar"}}, r"ALOI has 3 files .*\"files\""),
    ({"COIL100": {"url": "http://h/a.zip", "sha256": "xyz"}}, r"not a hex digest"),
    ({"COIL100": {"link": "http://h/a.zip"}}, r"unknown key\(s\) 'link'"),
    ({"ALOI": {"files": {"aloi.tar": {"url": "http://h/a"}}}}, r"no file 'aloi\.tar'"),
])
def test_manifest_errors_name_the_fix(tmp_path: Path, entries: dict, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        load_manifest(write_manifest(tmp_path / "m.json", entries))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_manifest(tmp_path / "bad.json")


def test_names_are_case_insensitive_with_did_you_mean() -> None:
    assert lookup("coil100").name == "COIL100" and lookup("w300").name == "300W"
    # One name across fetch-data, downstream and result files; the old name is an alias.
    lsp = DATASETS.get("leeds_sports_pose")
    assert lookup("LeedsSportsPose") is lsp and lookup("lsp") is lsp and lookup("Leeds-Sports-Pose") is lsp
    assert lsp.dirname == "LeedsSportsPose"  # the folder on disk (the reference's) is unchanged
    assert lookup("exposure_errors").name == "ExposureErrors" and lookup("caltech-101").name == "Caltech101"
    from sslinv.data.downstream import DATASETS as DOWNSTREAM

    for name, ds in DOWNSTREAM.items():  # a downstream name is its fetch-data name (any case)
        if not ds.builtin:
            assert lookup(name).dirname == ds.dirname and lookup(name).name.casefold() == name
    with pytest.raises(UnknownNameError, match=r"Did you mean 'CIFAR10'"):
        lookup("CIFAR11")


# -------------------------------------------------------------------------------- CLI


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, ["fetch-data", *args], prog_name="sslinv", env=env)


def test_cli_list_makes_no_request_and_shows_status(tmp_path: Path, monkeypatch) -> None:
    import urllib.request

    def no_network(*a, **k):
        raise AssertionError("--list made a network request")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", no_network)
    res = invoke("--list", "--json", "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    names = [d["name"] for d in payload["datasets"]]
    assert names == DATASETS.names()
    by = {d["name"]: d for d in payload["datasets"]}
    assert by["imagenet"]["manual"] and by["DaLI"]["manual"] and not by["CIFAR10"]["manual"]
    assert by["CIFAR10"]["size"] == 170_498_071 and by["CIFAR10"]["status"] == "missing"
    assert by["RealBlur"]["licence"] == "CC BY 4.0"
    assert {m["name"] for m in payload["unsupported_models"]} == {"simclr-v1", "simclr-v2", "byol"}
    assert "moco-v2" in {m["name"] for m in payload["models"]}
    res = invoke("--list", "--data-root", str(tmp_path / "data"), "--mirror", "http://mirror.lab/s")
    assert res.exit_code == 0 and "COIL100" in res.stdout and "unsupported: byol" in res.stdout
    res = invoke("--list", "--json", "--mirror", "http://mirror.lab/s", "--data-root", str(tmp_path / "d"))
    coil = next(d for d in json.loads(res.stdout)["datasets"] if d["name"] == "COIL100")
    assert coil["files"][0]["urls"] == ["http://mirror.lab/s/CAVE/databases/SLAM_coil-20_coil-100/coil-100/coil-100.zip"]


def test_cli_fetch_json_and_second_run(server: Server, tmp_path: Path, monkeypatch) -> None:
    record = DATASETS.get("Flickr1024")
    manifest = write_manifest(tmp_path / "m.json", {"Flickr1024": manifest_for(server, record, FAKES["Flickr1024"]())})
    args = ("flickr1024", "--manifest", str(manifest), "--data-root", str(tmp_path / "data"),
            "--cache-dir", str(tmp_path / "cache"), "--json")
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)["results"][0]
    assert result["name"] == "Flickr1024" and result["status"] == "installed" and result["counts"]
    res = invoke(*args[:-1])  # table output
    assert res.exit_code == 0 and "verified" in res.stdout


def test_cli_errors_and_exit_codes(server: Server, tmp_path: Path, monkeypatch) -> None:
    root = ["--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache")]
    res = invoke("CIFAR11", *root)
    assert res.exit_code == 2 and "Did you mean 'CIFAR10'" in res.stderr
    res = invoke("--force", *root)
    assert res.exit_code == 2 and "Name a dataset" in res.stderr
    res = invoke("COIL100", "--from", str(tmp_path / "nope.zip"), *root)
    assert res.exit_code == 2 and "no such file" in res.stderr
    res = invoke("COIL100", "--sha256", "1234", *root)
    assert res.exit_code == 2 and "64 hex digits" in res.stderr
    res = invoke("imagenet", *root)
    assert res.exit_code == 3 and "https://image-net.org/" in res.stderr
    assert "ILSVRC2012_img_val.tar" in res.stderr and "--from DIR" in res.stderr
    # a tampered download: exit code 7, both hashes
    record = DATASETS.get("COIL100")
    entry = manifest_for(server, record, FAKES["COIL100"]())
    server.files["/COIL100/coil-100.zip"] = b"PK\x03\x04tampered"
    res = invoke("COIL100", "--manifest", str(write_manifest(tmp_path / "m.json", {"COIL100": entry})), *root)
    assert res.exit_code == 7 and entry["sha256"] in res.stderr and sha256(b"PK\x03\x04tampered") in res.stderr


def test_fetch_data_help_and_completion_do_not_import_torch() -> None:
    import subprocess

    code = ("import sys; from sslinv.cli.fetch_data import complete_dataset, complete_zoo_model; "
            "from sslinv.fetch import records, manifest, download, extract, install; "
            "print(complete_dataset('c'), complete_zoo_model('moco')); assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert "CIFAR10" in out.stdout and "moco-v2" in out.stdout


def test_loader_check_failure_installs_nothing(server: Server, tmp_path: Path, monkeypatch) -> None:
    data = make_zip({"validation/INPUT_IMAGES/a0001-x_P1.JPG": b"jpg"})  # no GT_IMAGES
    manifest = write_manifest(tmp_path / "m.json", {"ExposureErrors": {"url": server.add("/v.zip", data)}})
    out = fetch_one(config(tmp_path, "ExposureErrors", manifest=manifest))
    assert out.status == "failed" and "after unpacking, the loader check failed" in out.message
    assert "nothing was installed" in out.message
    assert not (tmp_path / "data/ExposureErrors").exists()
    no_leftovers(tmp_path / "data")


def test_failed_download_adds_the_record_fallback(server: Server, tmp_path: Path, monkeypatch) -> None:
    out = fetch_one(config(tmp_path, "Caltech101", mirror=server.url, retries=0))
    assert out.status == "failed" and out.exit_code == 6
    assert "HTTP 404" in out.message and "https://data.caltech.edu/records/mzrjq-6wc02" in out.message
    assert f"{server.url}/records/mzrjq-6wc02/files/caltech-101.zip" in out.message


def test_300w_from_the_official_ibug_folder(tmp_path: Path, monkeypatch) -> None:
    """When the mirror is gone: the iBUG parts joined and unzipped by hand, passed as a folder."""
    import tarfile

    archive = tmp_path / "300w.tar.gz"
    archive.write_bytes(FAKES["300W"]()["300w.tar.gz"])
    with tarfile.open(archive) as t:
        t.extractall(tmp_path / "unpacked", filter="data")
    ibug = tmp_path / "unpacked/data/300w/300w"  # holds 300W/01_Indoor, afw/, ...
    out = fetch_one(config(tmp_path, "300W", sources=(ibug,)))
    raise_for(out)
    assert sorted(p.name for p in (tmp_path / "data/300W").iterdir()) == ["01_Indoor", "02_Outdoor"]
    assert out.files[0]["check"] == "folder given with --from (no checksum)"
