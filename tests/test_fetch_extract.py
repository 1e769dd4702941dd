"""Safe extraction: type by content, members that would escape the target are refused."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_fetch_fakes import make_tar, make_zip

from sslinv.errors import FetchError, UnsafeArchiveError
from sslinv.fetch.extract import extract, safe_relpath, sniff


def _tar_with(members: list[tarfile.TarInfo], data: dict[str, bytes], compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w") as tf:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize("compression, kind", [("", "tar"), ("gz", "tar.gz"), ("bz2", "tar.bz2"), ("xz", "tar.xz")])
def test_type_is_detected_from_the_bytes_not_the_name(tmp_path: Path, compression: str, kind: str) -> None:
    archive = tmp_path / "misnamed.zip"  # the name lies
    archive.write_bytes(make_tar({"top/a.txt": b"a", "top/sub/b.txt": b"b"}, compression))
    assert sniff(archive) == kind
    n = extract(archive, tmp_path / "out")
    assert n == 2 and (tmp_path / "out/top/sub/b.txt").read_bytes() == b"b"


def test_tgz_that_is_really_a_tar_and_zip_named_tar(tmp_path: Path) -> None:
    tgz = tmp_path / "102flowers.tgz"
    tgz.write_bytes(make_tar({"jpg/image_00001.jpg": b"x"}))  # uncompressed, like Oxford's
    assert sniff(tgz) == "tar"
    extract(tgz, tmp_path / "a")
    assert (tmp_path / "a/jpg/image_00001.jpg").exists()
    z = tmp_path / "data.tar"
    z.write_bytes(make_zip({"d/x.txt": b"x"}))
    assert sniff(z) == "zip"
    extract(z, tmp_path / "b")
    assert (tmp_path / "b/d/x.txt").read_bytes() == b"x"


def test_not_an_archive_html_rar_and_damaged(tmp_path: Path) -> None:
    page = tmp_path / "a.zip"
    page.write_bytes(b"<!DOCTYPE html><html><body>sign in</body></html>" + b" " * 600)
    with pytest.raises(FetchError, match="not a zip or tar archive .*HTML page"):
        sniff(page)
    rar = tmp_path / "Train.rar"
    rar.write_bytes(b"Rar!\x1a\x07\x00" + b"\x00" * 600)
    with pytest.raises(FetchError, match="RAR archive.*--from"):
        sniff(rar)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(make_tar({"a/b.bin": os.urandom(200_000)}, "gz")[:5000])
    with pytest.raises(FetchError, match=r"damaged or truncated.*download it again"):
        extract(cut, tmp_path / "c")


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt", "a\\..\\..\\evil.txt"])
def test_safe_relpath_rejects_escapes(name: str) -> None:
    with pytest.raises(UnsafeArchiveError, match="refusing|absolute"):
        safe_relpath(name)


def test_safe_relpath_cleans() -> None:
    assert safe_relpath("./a//b/./c.png") == "a/b/c.png"
    assert safe_relpath("./") == ""


def _nothing_outside(tmp_path: Path, inside: Path) -> None:
    outside = [p for p in tmp_path.rglob("*") if "evil" in p.name and inside not in p.parents]
    assert not outside, outside


@pytest.mark.parametrize("bad", ["../evil.txt", "/evil.txt", "sub/../../evil.txt"])
def test_tar_with_escaping_member_is_rejected(tmp_path: Path, bad: str) -> None:
    target = tmp_path / "deep" / "target"
    archive = tmp_path / "bad.tar"
    archive.write_bytes(_tar_with([_file("ok.txt"), _file(bad)], {"ok.txt": b"ok", bad: b"evil"}))
    with pytest.raises(UnsafeArchiveError, match=r"bad\.tar.*(absolute path|'\.\.' component).*Nothing was kept"):
        extract(archive, target)
    _nothing_outside(tmp_path, target)
    assert not (tmp_path / "deep" / "evil.txt").exists() and not Path("/evil.txt").exists()


@pytest.mark.parametrize("bad", ["../evil.txt", "/evil.txt", "x/../../evil.txt"])
def test_zip_with_escaping_member_is_rejected(tmp_path: Path, bad: str) -> None:
    target = tmp_path / "deep" / "target"
    archive = tmp_path / "bad.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        zf.writestr(zipfile.ZipInfo(bad), b"evil")  # ZipInfo keeps the raw name
    archive.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match=r"bad\.zip"):
        extract(archive, target)
    _nothing_outside(tmp_path, target)


def test_tar_links_leaving_the_folder_are_rejected(tmp_path: Path) -> None:
    target = tmp_path / "target"
    for i, link in enumerate([_link("evil_link", "../../outside"), _link("evil_abs", "/etc/passwd"),
                              _link("evil_hard", "/etc/passwd", hard=True)]):
        archive = tmp_path / f"links{i}.tar"
        archive.write_bytes(_tar_with([_file("a.txt"), link], {"a.txt": b"a"}))
        with pytest.raises(UnsafeArchiveError):
            extract(archive, target / str(i))
    # a link that stays inside is fine, and so is writing through it
    archive = tmp_path / "ok.tar"
    archive.write_bytes(_tar_with([_file("d/a.txt"), _link("alias", "d")], {"d/a.txt": b"a"}))
    extract(archive, target / "ok")
    assert (target / "ok" / "alias").is_symlink() and (target / "ok/alias/a.txt").read_bytes() == b"a"


def test_tar_symlink_then_write_through_it_is_rejected(tmp_path: Path) -> None:
    """The classic: a link to '..' followed by a file written 'through' it."""
    (tmp_path / "target").mkdir()
    archive = tmp_path / "trick.tar"
    archive.write_bytes(_tar_with([_link("up", ".."), _file("up/evil.txt")], {"up/evil.txt": b"evil"}))
    with pytest.raises(UnsafeArchiveError):
        extract(archive, tmp_path / "target")
    assert not (tmp_path / "evil.txt").exists()


def _zip_symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_zip_symlinks_leaving_the_folder_are_rejected(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_zip_symlink("up", ".."), "..")
        zf.writestr("up/evil.txt", b"evil")
    archive = tmp_path / "links.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="points outside"):
        extract(archive, tmp_path / "target")
    assert not (tmp_path / "evil.txt").exists()

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("d/a.txt", b"a")
        zf.writestr(_zip_symlink("alias", "d"), "d")
    archive.write_bytes(buf.getvalue())
    extract(archive, tmp_path / "ok")
    assert (tmp_path / "ok/alias").is_symlink() and (tmp_path / "ok/alias/a.txt").read_bytes() == b"a"


def test_device_files_are_rejected(tmp_path: Path) -> None:
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    archive = tmp_path / "dev.tar"
    archive.write_bytes(_tar_with([info], {}))
    with pytest.raises(UnsafeArchiveError, match="device or special file"):
        extract(archive, tmp_path / "t")


def test_mapper_selects_and_renames(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(make_tar({"top/keep/a.png": b"a", "top/drop.txt": b"d", "top/keep/b.png": b"b"}, "gz"))
    n = extract(archive, tmp_path / "o", lambda rel: rel.replace("top/keep/", "x/") if rel.endswith(".png") else None)
    assert n == 2 and sorted(p.name for p in (tmp_path / "o/x").iterdir()) == ["a.png", "b.png"]
    assert not (tmp_path / "o/top").exists()
