"""sslinv.fetch.download against an in-process HTTP server: resume, retries, checksums,
Google Drive confirmation pages, mirrors. Nothing here touches the internet."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_fetch_fakes import Server, server, sha256  # noqa: F401  (server is a fixture)

from sslinv.errors import ChecksumError, FetchError
from sslinv.fetch.download import download, drive_confirm_url, hash_file, normalise_expected, part_path
from sslinv.reporting import NullReporter

DATA = bytes(range(256)) * 4096  # 1 MiB: the downloader reads in 1 MiB chunks
FAST = {"backoff": 0.0, "timeout": 10.0}


def test_download_verifies_and_names_the_file_last(server: Server, tmp_path: Path) -> None:
    url = server.add("/f.bin", DATA)
    dest = tmp_path / "dl" / "f.bin"
    got = download([url], dest, expected={"sha256": sha256(DATA), "md5": "a" * 0 or None}, **FAST)
    assert dest.read_bytes() == DATA and got.size == len(DATA)
    assert got.digests["sha256"] == sha256(DATA) and got.url == url and not got.resumed
    assert not part_path(dest).exists()
    assert hash_file(dest, ["sha256", "md5", "sha1"])["sha256"] == sha256(DATA)


def test_dropped_connection_resumes_with_range(server: Server, tmp_path: Path) -> None:
    url = server.add("/big.bin", DATA)
    server.drop["/big.bin"] = [300_000, 200_000]  # two drops midway, then the rest
    reporter = NullReporter()
    dest = tmp_path / "big.bin"
    got = download([url], dest, expected={"sha256": sha256(DATA)}, reporter=reporter, retries=1, **FAST)
    assert dest.read_bytes() == DATA and got.digests["sha256"] == sha256(DATA)
    ranges = [r for p, r in server.requests if p == "/big.bin"]
    assert ranges == [None, "bytes=300000-", "bytes=500000-"]
    # retries=1 was enough: a failure that followed progress does not use up a retry
    assert sum("resuming at" in m for m in reporter.infos) == 2


def test_interrupted_run_leaves_a_part_that_the_next_run_resumes(server: Server, tmp_path: Path) -> None:
    url = server.add("/f.bin", DATA * 3)
    dest = tmp_path / "f.bin"

    class Interrupting(NullReporter):
        def bar(self, *args, **kwargs):
            class Bar:
                seen = 0

                def advance(self, n):
                    Bar.seen += n
                    if Bar.seen > 1_500_000:
                        raise KeyboardInterrupt

                def update(self, **kw):
                    pass

                def close(self):
                    pass

            return Bar()

    with pytest.raises(KeyboardInterrupt):
        download([url], dest, expected={"sha256": sha256(DATA * 3)}, reporter=Interrupting(), **FAST)
    assert not dest.exists()  # nothing under the final name
    assert part_path(dest).stat().st_size >= 1_500_000
    got = download([url], dest, expected={"sha256": sha256(DATA * 3)}, **FAST)
    assert got.resumed and dest.read_bytes() == DATA * 3
    assert server.requests[-1][1].startswith("bytes=")


def test_server_ignoring_range_restarts_the_file(server: Server, tmp_path: Path) -> None:
    url = server.add("/f.bin", DATA)
    server.ignore_range.add("/f.bin")
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(DATA[:1000])
    got = download([url], dest, expected={"sha256": sha256(DATA)}, **FAST)
    assert dest.read_bytes() == DATA and got.digests["sha256"] == sha256(DATA)


def test_stale_part_of_another_file_is_redownloaded_from_zero(server: Server, tmp_path: Path) -> None:
    url = server.add("/f.bin", DATA)
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(b"\xff" * 5000)  # not a prefix of the file
    reporter = NullReporter()
    got = download([url], dest, expected={"sha256": sha256(DATA)}, reporter=reporter, **FAST)
    assert dest.read_bytes() == DATA and not got.resumed
    assert any("does not match" in w for w in reporter.warnings)


def test_tampered_file_checksum_error_names_both_hashes(server: Server, tmp_path: Path) -> None:
    tampered = DATA[:-1] + b"\x00"
    url = server.add("/f.bin", tampered)
    dest = tmp_path / "f.bin"
    with pytest.raises(ChecksumError) as info:
        download([url], dest, expected={"sha256": sha256(DATA)}, **FAST)
    msg = str(info.value)
    assert sha256(DATA) in msg and sha256(tampered) in msg and "f.bin" in msg
    assert info.value.exit_code == 7
    assert not dest.exists() and not part_path(dest).exists()
    # a published prefix (torch hub / MoCo README style) is checked the same way
    with pytest.raises(ChecksumError, match=r"expected md5 0123abcd, got [0-9a-f]{32}"):
        download([url], dest, expected={"md5": "0123abcd"}, **FAST)


def test_transient_errors_are_retried_and_404_falls_back_to_the_mirror(server: Server, tmp_path: Path) -> None:
    url = server.add("/f.bin", DATA)
    server.errors["/f.bin"] = [503, 500]
    reporter = NullReporter()
    download([url], tmp_path / "a.bin", expected={"sha256": sha256(DATA)}, reporter=reporter, **FAST)
    assert [p for p, _ in server.requests].count("/f.bin") == 3
    assert any("HTTP 503" in m for m in reporter.infos)

    got = download([server.url + "/missing.bin", url], tmp_path / "b.bin", **FAST)
    assert got.url == url

    server.errors["/f.bin"] = [503] * 10
    with pytest.raises(FetchError, match=r"HTTP 503.*gave up after 2 retries.*--from"):
        download([url], tmp_path / "c.bin", retries=2, **FAST)
    with pytest.raises(FetchError, match=r"missing\.bin: HTTP 404"):
        download([server.url + "/missing.bin"], tmp_path / "d.bin", **FAST)


def test_unreachable_host_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"Could not download x\.bin.*connection failed"):
        download(["http://127.0.0.1:9/x.bin"], tmp_path / "x.bin", retries=1, **FAST)


def test_html_page_instead_of_the_file(server: Server, tmp_path: Path) -> None:
    server.pages["/dl/abc"] = ("<html><head><title>Sign in</title></head><body>x</body></html>", {})
    with pytest.raises(FetchError, match=r"HTML page \('Sign in'\) instead of the file.*--from"):
        download([server.url + "/dl/abc"], tmp_path / "x.zip", **FAST)
    server.pages["/q"] = ("<html><body>Too many users have viewed or downloaded this file recently."
                          "</body></html>", {})
    with pytest.raises(FetchError, match=r"quota is exceeded"):
        download([server.url + "/q"], tmp_path / "y.zip", **FAST)


def test_google_drive_confirmation_pages_are_followed(server: Server, tmp_path: Path) -> None:
    server.add("/download?id=F1&export=download&confirm=t&uuid=u-1", DATA)
    server.pages["/uc?export=download&id=F1"] = (
        '<html><title>Google Drive - Virus scan warning</title><body>'
        '<form id="download-form" action="/download" method="get">'
        '<input type="hidden" name="id" value="F1"><input type="hidden" name="export" value="download">'
        '<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1">'
        '</form></body></html>', {})
    got = download([server.url + "/uc?export=download&id=F1"], tmp_path / "a.zip",
                   expected={"sha256": sha256(DATA)}, **FAST)
    assert got.size == len(DATA)

    # the older page: a download_warning cookie and a confirm link
    server.add("/uc?export=download&confirm=AbC_1&id=F2", DATA)
    server.pages["/uc?export=download&id=F2"] = (
        '<html><body><a href="/uc?export=download&amp;confirm=AbC_1&amp;id=F2">Download anyway</a></body></html>',
        {"Set-Cookie": "download_warning_123=AbC_1; Path=/"})
    got = download([server.url + "/uc?export=download&id=F2"], tmp_path / "b.zip", **FAST)
    assert got.digests["sha256"] == sha256(DATA)


def test_drive_confirm_url_variants() -> None:
    base = "https://drive.google.com/uc?export=download&id=X"
    assert drive_confirm_url("<html>nothing</html>", base) is None
    assert drive_confirm_url("<p>ok</p>", base, {"download_warning_1_X": "TOK"}).endswith("confirm=TOK")
    form = ('<form id="download-form" action="https://drive.usercontent.google.com/download">'
            '<input name="id" value="X"><input name="confirm" value="t"></form>')
    assert drive_confirm_url(form, base) == "https://drive.usercontent.google.com/download?id=X&confirm=t"


def test_expected_digests_are_validated() -> None:
    assert normalise_expected({"sha256": "ABCDEF12", "md5": None}) == {"sha256": "abcdef12"}
    with pytest.raises(ValueError, match="not a hex digest"):
        normalise_expected({"sha256": "xyz"})
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        normalise_expected({"crc": "abcdef12"})


def test_two_urls_both_tampered_is_a_checksum_error(server: Server, tmp_path: Path) -> None:
    a = server.add("/a.bin", b"x" * 100)
    b = server.add("/b.bin", b"y" * 100)
    with pytest.raises(ChecksumError, match=r"Every URL failed: .*a\.bin: checksum mismatch; .*b\.bin"):
        download([a, b], tmp_path / "f.bin", expected={"sha256": sha256(b"z")}, **FAST)
    assert not (tmp_path / "f.bin").exists()
