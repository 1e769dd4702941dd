"""ImageNet val: the manual path (--from archives or folders), devkit parsing, sorting into
<wnid>/ folders, and the loader-contract module sslinv.data.imagenet."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from test_fetch_fakes import Server, fake_imagenet, make_tar, server, sha256, write_manifest  # noqa: F401

from sslinv.data import imagenet as loader
from sslinv.errors import DataNotFoundError, FetchError
from sslinv.fetch import imagenet
from sslinv.fetch.install import FetchConfig, run
from sslinv.reporting import NullReporter

WNIDS = ["n01440764", "n01443537", "n01484850"]


def cfg(tmp_path: Path, **kw) -> FetchConfig:
    return FetchConfig(datasets=("imagenet",), data_root=tmp_path / "data", cache_dir=tmp_path / "cache",
                       backoff=0.0, timeout=10.0, **kw)


def write_archives(folder: Path, n: int = 6) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, data in fake_imagenet(n).items():
        (folder / name).write_bytes(data)
        digests[name] = sha256(data)
    return digests


def assert_sorted(root: Path, n: int = 6) -> None:
    for k in range(1, n + 1):
        path = root / "val" / WNIDS[(k - 1) % 3] / f"ILSVRC2012_val_{k:08d}.JPEG"
        assert path.is_file(), path
    assert sorted(p.name for p in (root / "val").iterdir()) == WNIDS  # the inner synset is not a class
    assert loader.verify(root) == {"images": n, "classes": 3}


def test_from_archives_checks_published_checksums_then_sorts(tmp_path: Path) -> None:
    digests = write_archives(tmp_path / "downloads")
    (out,) = run(cfg(tmp_path, sources=(tmp_path / "downloads",)), NullReporter())
    # the fakes are not the published archives: the published md5/sha256 catch it
    assert out.status == "failed" and out.exit_code == 7
    assert "c7e06a6c0baccf06d8dbeb6577d71efff84673a5dbdd50633ab44f8ea0456ae0" in out.message
    assert digests["ILSVRC2012_img_val.tar"] in out.message
    assert not (tmp_path / "data/imagenet/val").exists()

    overrides = tuple(f"{name}={hexd}" for name, hexd in digests.items())
    reporter = NullReporter()
    (out,) = run(cfg(tmp_path, sources=(tmp_path / "downloads",), sha256=overrides), reporter)
    assert out.status == "installed", out.message
    assert out.counts == {"images": 6, "classes": 3}
    assert {f["check"] for f in out.files} == {"--sha256"}
    assert_sorted(tmp_path / "data/imagenet")
    assert (tmp_path / "downloads/ILSVRC2012_img_val.tar").exists()  # the user's files are kept
    assert any("the full set has 50,000" in w for w in reporter.warnings)
    (again,) = run(cfg(tmp_path), NullReporter())
    assert again.status == "verified"


def test_from_flat_folder_and_unpacked_devkit(tmp_path: Path) -> None:
    write_archives(tmp_path / "dl")
    flat, devkit = tmp_path / "flat", tmp_path / "devkit"
    with tarfile.open(tmp_path / "dl/ILSVRC2012_img_val.tar") as t:
        t.extractall(flat, filter="data")
    with tarfile.open(tmp_path / "dl/ILSVRC2012_devkit_t12.tar.gz") as t:
        t.extractall(devkit, filter="data")
    (flat / "readme.txt").write_text("not an image")
    reporter = NullReporter()
    (out,) = run(cfg(tmp_path, sources=(flat, devkit)), reporter)
    assert out.status == "installed", out.message
    assert {f["check"] for f in out.files} == {"folder given with --from (no checksum)"}
    assert any("ignored 1 file" in w for w in reporter.warnings)
    assert_sorted(tmp_path / "data/imagenet")


def test_archives_in_the_imagenet_folder_and_train_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "data/imagenet"
    write_archives(root)  # where torchvision wants them
    (root / "train/n01440764").mkdir(parents=True)
    (root / "train/n01440764/x.JPEG").write_bytes(b"train image")
    (out,) = run(cfg(tmp_path, trust=True), NullReporter())
    assert out.status == "installed", out.message
    assert_sorted(root)
    assert (root / "train/n01440764/x.JPEG").read_bytes() == b"train image"
    assert (root / "ILSVRC2012_img_val.tar").exists()
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".imagenet")]


def test_lab_mirror_through_a_manifest(server: Server, tmp_path: Path) -> None:
    files = fake_imagenet(4)
    entry = {"files": {name: {"url": server.add(f"/ilsvrc/{name}", data), "sha256": sha256(data)}
                       for name, data in files.items()}}
    manifest = write_manifest(tmp_path / "m.json", {"imagenet": entry})
    (out,) = run(cfg(tmp_path, manifest=manifest), NullReporter())
    assert out.status == "installed", out.message
    assert_sorted(tmp_path / "data/imagenet", n=4)


def test_devkit_and_val_mismatches_are_clear(tmp_path: Path) -> None:
    files = fake_imagenet(6)
    (tmp_path / "val.tar").write_bytes(files["ILSVRC2012_img_val.tar"])
    (tmp_path / "devkit.tar.gz").write_bytes(files["ILSVRC2012_devkit_t12.tar.gz"])
    short = fake_imagenet(3)["ILSVRC2012_devkit_t12.tar.gz"]
    (tmp_path / "short.tar.gz").write_bytes(short)
    with pytest.raises(FetchError, match=r"ILSVRC2012_val_00000004\.JPEG has no label: .* lists 3 validation images"):
        imagenet.install(tmp_path / "val.tar", tmp_path / "short.tar.gz", tmp_path / "s1", NullReporter())
    (tmp_path / "nogt.tar.gz").write_bytes(make_tar({"ILSVRC2012_devkit_t12/data/meta.mat": b"x"}, "gz"))
    with pytest.raises(FetchError, match=r"lacks data/ILSVRC2012_validation_ground_truth\.txt"):
        imagenet.read_devkit(tmp_path / "nogt.tar.gz")
    (tmp_path / "badmeta.tar.gz").write_bytes(make_tar({
        "d/data/meta.mat": b"not a mat file", "d/data/ILSVRC2012_validation_ground_truth.txt": b"1\n"}, "gz"))
    with pytest.raises(FetchError, match=r"no readable 'synsets' struct"):
        imagenet.read_devkit(tmp_path / "badmeta.tar.gz")
    with pytest.raises(FetchError, match=r"holds no ILSVRC2012_val_NNNNNNNN\.JPEG images"):
        empty = tmp_path / "empty.tar"
        empty.write_bytes(make_tar({"a.txt": b"a"}))
        imagenet.install(empty, tmp_path / "devkit.tar.gz", tmp_path / "s2", NullReporter())


def test_devkit_parsing_keeps_leaf_classes_in_image_order(tmp_path: Path) -> None:
    (tmp_path / "d.tar.gz").write_bytes(fake_imagenet(5)["ILSVRC2012_devkit_t12.tar.gz"])
    kit = imagenet.read_devkit(tmp_path / "d.tar.gz")
    assert sorted(kit.wnid_words) == WNIDS and "n00000001" not in kit.wnid_words
    assert kit.val_wnids == tuple(WNIDS[(k - 1) % 3] for k in range(1, 6))


def test_loader_verify_errors_name_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    with pytest.raises(DataNotFoundError, match=r"not found under .*imagenet/val.*sslinv fetch-data imagenet"):
        loader.verify(root)
    (root / "val").mkdir(parents=True)
    (root / "val/ILSVRC2012_val_00000001.JPEG").write_bytes(b"x")
    with pytest.raises(DataNotFoundError, match=r"unsorted image.*sslinv fetch-data imagenet --from"):
        loader.verify(root)
    (root / "val/ILSVRC2012_val_00000001.JPEG").unlink()
    (root / "val/n01440764").mkdir()
    with pytest.raises(DataNotFoundError, match=r"hold no images.*incomplete"):
        loader.verify(root)
    (root / "val/n01440764/ILSVRC2012_val_00000001.JPEG").write_bytes(b"x")
    assert loader.verify(root) == {"images": 1, "classes": 1}
    assert loader.DIRNAME == "imagenet" and loader.EXPECTED == {"images": 50_000, "classes": 1_000}


def test_unsorted_val_in_place_is_sorted_with_force(tmp_path: Path) -> None:
    """A val/ folder of flat images (extracted by hand) is sorted in place with --force."""
    write_archives(tmp_path / "dl")
    val = tmp_path / "data/imagenet/val"
    with tarfile.open(tmp_path / "dl/ILSVRC2012_img_val.tar") as t:
        t.extractall(val, filter="data")
    (out,) = run(cfg(tmp_path, sources=(val, tmp_path / "dl/ILSVRC2012_devkit_t12.tar.gz"), trust=True), NullReporter())
    assert out.status == "failed" and "--force" in out.message
    (out,) = run(cfg(tmp_path, sources=(val, tmp_path / "dl/ILSVRC2012_devkit_t12.tar.gz"), trust=True,
                     force=True), NullReporter())
    assert out.status == "installed", out.message
    assert_sorted(tmp_path / "data/imagenet")
