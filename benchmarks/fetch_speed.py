"""Throughput of `sslinv fetch-data`'s downloader and safe extractor against plain stdlib.

Download: ``sslinv.fetch.download.download`` (Range-capable streaming into ``.part``,
hashes computed on the fly, verified before the rename; sha256 alone when a sha256 is
published, md5 + sha256 when only an md5 is) against a bare
``urllib.request.urlopen`` + ``shutil.copyfileobj`` of the same file from the same
local HTTP server on 127.0.0.1, in the same run. Over loopback the bare copy is limited
only by memory bandwidth, so the ratio shows the cost of hashing; over a real network
(<= 100 MB/s) hashing at several hundred MB/s is hidden behind the transfer.

Extraction: ``sslinv.fetch.extract.extract`` (per-member path checks, the ``data``
filter, a mapper that strips the top folder) against ``tarfile.extractall(filter="data")``
and ``zipfile.extractall`` on archives of many small files (the shape of COIL-100,
ALOI, CelebA).

    python benchmarks/fetch_speed.py                 # 256 MB download, 20,000-file archives
    python benchmarks/fetch_speed.py --mb 64 --files 5000

Figures on a shared machine are indicative; the script prints the ratio per task.
"""

from __future__ import annotations

import argparse
import http.server
import io
import os
import shutil
import tarfile
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256, help="size of the downloaded file")
    parser.add_argument("--files", type=int, default=20_000, help="members of the archives")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()

    from sslinv.fetch.download import download, hash_file
    from sslinv.fetch.extract import extract

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        served = root / "served"
        served.mkdir()
        blob = served / "blob.bin"
        blob.write_bytes(os.urandom(args.mb << 20))
        digests = hash_file(blob, ["sha256", "md5"])
        httpd, url = serve(served)
        try:
            def bare() -> None:
                with urllib.request.urlopen(f"{url}/blob.bin") as r, open(root / "bare.bin", "wb") as f:
                    shutil.copyfileobj(r, f, 1 << 20)

            def ours(expected: dict) -> None:
                dest = root / "ours.bin"
                dest.unlink(missing_ok=True)
                download([f"{url}/blob.bin"], dest, expected=expected)

            t_bare = best_of(args.repeat, bare)
            # A published sha256 (CIFAR10, Flowers, CelebA, ImageNet...): sha256 only.
            t_sha = best_of(args.repeat, lambda: ours({"sha256": digests["sha256"]}))
            # Only an md5 published (ALOI, ALOT, Causal3DIdent, MoCo): md5 + sha256 (recorded).
            t_md5 = best_of(args.repeat, lambda: ours({"md5": digests["md5"]}))
        finally:
            httpd.shutdown()
        mb = args.mb * 1.048576
        print(f"download {args.mb} MiB over loopback: urllib copy {t_bare:.2f} s ({mb / t_bare:.0f} MB/s); "
              f"sslinv verified by sha256 {t_sha:.2f} s ({mb / t_sha:.0f} MB/s, ratio {t_sha / t_bare:.2f}); "
              f"by md5 (+ sha256) {t_md5:.2f} s ({mb / t_md5:.0f} MB/s, ratio {t_md5 / t_bare:.2f})")

        payload = os.urandom(4096)
        members = {f"top/{i // 1000}/img_{i:06d}.png": payload for i in range(args.files)}
        tar_path, zip_path = root / "a.tar", root / "a.zip"
        with tarfile.open(tar_path, "w") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)

        def fresh(name: str) -> Path:
            out = root / name
            shutil.rmtree(out, ignore_errors=True)
            return out

        strip = lambda rel: rel.split("/", 1)[1] if "/" in rel else None  # noqa: E731
        for kind, path in (("tar", tar_path), ("zip", zip_path)):
            if kind == "tar":
                def base(path: Path = path) -> None:
                    with tarfile.open(path) as tf:
                        tf.extractall(fresh("base"), filter="data")
            else:
                def base(path: Path = path) -> None:
                    with zipfile.ZipFile(path) as zf:
                        zf.extractall(fresh("base"))
            t_base = best_of(args.repeat, base)
            t_safe = best_of(args.repeat, lambda path=path: extract(path, fresh("safe"), strip))
            print(f"extract {args.files:,}-file {kind}: stdlib {t_base:.2f} s, sslinv safe extract "
                  f"{t_safe:.2f} s, ratio {t_safe / t_base:.2f}")


if __name__ == "__main__":
    main()
