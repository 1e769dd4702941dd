"""Fakes for the fetch tests: an in-process HTTP server and tiny archives in real layouts.

- :class:`Server`: ``http.server`` on 127.0.0.1 in a thread, serving bytes by path with
  HTTP Range support; it counts requests, can drop the connection midway, answer with
  transient errors first, ignore Range, or serve a Google Drive-style confirmation page.
- ``FAKES``: for every dataset record, its files built in the EXACT raw layout of the
  real archives (top folders, file names, formats as the datasets' own pages and
  loaders give them), e.g. ``coil-100.zip`` holding ``coil-100/obj1__0.png``; Flowers' ``.tgz`` is an
  uncompressed tar, as the real one is.
- ``LAYOUT_CHECKS``: what the installed folder must look like (the tree the loaders and
  the reference read), checked beside the real loader's ``verify``.

The tests at the bottom check the fakes themselves (one per dataset record: a record
without a fake fails here).
"""

from __future__ import annotations

import hashlib
import http.server
import importlib
import io
import json
import pickle
import re
import tarfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sslinv.errors import DataNotFoundError
from sslinv.fetch.records import DATASETS, DatasetRecord

# ------------------------------------------------------------------------------ server


class Server:
    """A local HTTP server; ``files`` maps a URL path (with query) to bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.pages: dict[str, tuple[str, dict[str, str]]] = {}  # path -> (html, headers)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drop: dict[str, list[int]] = {}  # path -> byte counts after which to drop, per request
        self.errors: dict[str, list[int]] = {}  # path -> status codes to answer first
        self.ignore_range: set[str] = set()
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                path = self.path
                with server.lock:
                    server.requests.append((path, self.headers.get("Range")))
                    errors = server.errors.get(path)
                    status = errors.pop(0) if errors else None
                    drops = server.drop.get(path)
                    drop_after = drops.pop(0) if drops else None
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    if status in (429, 503):
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                if path in server.pages:
                    html, headers = server.pages[path]
                    body = html.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if path not in server.files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files[path]
                start = 0
                rng = self.headers.get("Range")
                m = re.match(r"bytes=(\d+)-$", rng or "")
                if m and path not in server.ignore_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if drop_after is not None and drop_after < len(body):
                    self.wfile.write(body[:drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the connection drops midway
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url + path

    def paths_requested(self) -> list[str]:
        return [p for p, _ in self.requests]

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with Server() as s:
        yield s


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------ archive bits


def png(seed: int = 0, size: int = 8) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def jpeg(seed: int = 0, size: int = 8) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def mat(**arrays) -> bytes:
    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays)
    return buf.getvalue()


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes], compression: str = "") -> bytes:
    """A tar (``compression``: '', 'gz', 'bz2', 'xz') with parent folder entries first."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w") as tf:
        dirs = sorted({"/".join(n.split("/")[:i]) for n in members for i in range(1, n.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------- fakes in the real layouts


def fake_imagenet(n_images: int = 6) -> dict[str, bytes]:
    wnids = ["n01440764", "n01443537", "n01484850"]
    # synsets: 3 leaves (ids 1..3) and one inner node (id 4) that must be ignored
    dt = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"),
          ("num_children", "O"), ("children", "O"), ("wordnet_height", "O"), ("num_train_images", "O")]
    rows = [(i + 1, w, f"class {i}", "gloss", 0, np.zeros((1, 0)), 0, 1300) for i, w in enumerate(wnids)]
    rows.append((4, "n00000001", "inner", "gloss", 3, np.array([[1, 2, 3]]), 1, 0))
    synsets = np.zeros((len(rows), 1), dtype=dt)
    for i, row in enumerate(rows):
        synsets[i, 0] = tuple(np.array([[v]]) if isinstance(v, int) else v for v in row)
    labels = [(k % 3) + 1 for k in range(n_images)]
    devkit = make_tar({
        "ILSVRC2012_devkit_t12/data/meta.mat": mat(synsets=synsets),
        "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt":
            "".join(f"{label}\n" for label in labels).encode(),
        "ILSVRC2012_devkit_t12/readme.txt": b"devkit\n",
    }, "gz")
    val = make_tar({f"ILSVRC2012_val_{k:08d}.JPEG": jpeg(k) for k in range(1, n_images + 1)})
    return {"ILSVRC2012_img_val.tar": val, "ILSVRC2012_devkit_t12.tar.gz": devkit}


def fake_cifar10() -> dict[str, bytes]:
    rng = np.random.default_rng(0)

    def batch(n: int) -> bytes:
        return pickle.dumps({"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                             "labels": [int(x) for x in rng.integers(0, 10, n)], "batch_label": b"x"})

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(10) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(10)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]})
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    return {"cifar-10-python.tar.gz": make_tar(members, "gz")}


# 102 folders, as in the real archive (BACKGROUND_Google included); two images each.
CALTECH_CLASSES = ["BACKGROUND_Google", "Faces", "accordion", *(f"class_{i:03d}" for i in range(99))]


def fake_caltech101() -> dict[str, bytes]:
    image = jpeg(0)
    members = {f"101_ObjectCategories/{c}/image_{i:04d}.jpg": image for c in CALTECH_CLASSES for i in (1, 2)}
    train = "".join(f"{c}/image_0001.jpg {j}\n" for j, c in enumerate(CALTECH_CLASSES))
    test = "".join(f"{c}/image_0002.jpg {j}\n" for j, c in enumerate(CALTECH_CLASSES))
    # CaltechDATA's caltech-101.zip wraps the original tarball.
    wrapper = make_zip({"caltech-101/101_ObjectCategories.tar.gz": make_tar(members, "gz")})
    return {"caltech-101.zip": wrapper, "train.txt": train.encode(), "test.txt": test.encode()}


def fake_flowers() -> dict[str, bytes]:
    n = 6
    # The real 102flowers.tgz is an uncompressed tar despite its name.
    return {
        "102flowers.tgz": make_tar({f"jpg/image_{i:05d}.jpg": jpeg(i) for i in range(1, n + 1)}),
        "imagelabels.mat": mat(labels=np.array([[1, 1, 2, 2, 3, 3]], dtype=np.uint8)),
        "setid.mat": mat(trnid=np.array([[1, 3]], dtype=np.uint16), valid=np.array([[2, 4]], dtype=np.uint16),
                         tstid=np.array([[5, 6]], dtype=np.uint16)),
    }


def fake_celeba() -> dict[str, bytes]:
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    attrs = ["5_o_Clock_Shadow", "Smiling"]
    lm = ["lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
          "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y"]
    return {
        "img_align_celeba.zip": make_zip({f"img_align_celeba/{n}": jpeg(i) for i, n in enumerate(names)}),
        "list_attr_celeba.txt": (f"{len(names)}\n{' '.join(attrs)}\n"
                                 + "".join(f"{n} 1 -1\n" for n in names)).encode(),
        "identity_CelebA.txt": "".join(f"{n} {i % 2 + 1}\n" for i, n in enumerate(names)).encode(),
        "list_bbox_celeba.txt": (f"{len(names)}\nimage_id x_1 y_1 width height\n"
                                 + "".join(f"{n} 1 2 3 4\n" for n in names)).encode(),
        "list_landmarks_align_celeba.txt": (f"{len(names)}\n{' '.join(lm)}\n"
                                            + "".join(f"{n} " + " ".join(["50"] * 10) + "\n" for n in names)).encode(),
        "list_eval_partition.txt": "".join(f"{n} {[0, 0, 1, 1, 2, 2][i]}\n" for i, n in enumerate(names)).encode(),
    }


def _pts(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(10, 60, (68, 2))
    return ("version: 1\nn_points:  68\n{\n" + "".join(f"{x:.3f} {y:.3f}\n" for x, y in pts) + "}\n").encode()


def fake_300w() -> dict[str, bytes]:
    top = "data/300w/300w/300W"
    members: dict[str, bytes] = {}
    for folder, stem in (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor")):
        for i in (1, 2):
            members[f"{top}/{folder}/{stem}_{i:03d}.png"] = png(i, 64)
            members[f"{top}/{folder}/{stem}_{i:03d}.pts"] = _pts(i)
    members["data/300w/300w/afw/134212_1.jpg"] = jpeg(9)  # in the DVE copy, not needed
    members["data/300w/300w/Bounding Boxes/bounding_boxes_afw.mat"] = b"x"
    return {"300w.tar.gz": make_tar(members, "gz")}


def fake_lsp() -> dict[str, bytes]:
    n = 4
    joints = np.random.default_rng(0).uniform(0, 100, (3, 14, n))
    joints[2] = 0
    members = {f"images/im{i:04d}.jpg": jpeg(i) for i in range(1, n + 1)}
    members.update({f"visualized/im{i:04d}.jpg": jpeg(i) for i in range(1, n + 1)})
    members["joints.mat"] = mat(joints=joints)
    members["README.txt"] = b"Leeds Sports Pose\n"
    return {"lsp_dataset.zip": make_zip(members)}


def fake_coil100(objects: int = 2) -> dict[str, bytes]:
    members = {f"coil-100/obj{o}__{a}.png": png(o * 1000 + a) for o in range(1, objects + 1) for a in range(0, 360, 5)}
    members["coil-100/convertGroupppm2png.pl"] = b"#!/usr/bin/perl\n"
    return {"coil-100.zip": make_zip(members)}


ALOI_COLOURS = ["i110", "i120", "i130", "i140", "i150", "i160", "i170", "i180", "i190", "i210", "i230", "i250"]


def fake_aloi(objects: int = 2) -> dict[str, bytes]:
    view, ill, col = {}, {}, {}
    for o in range(1, objects + 1):
        for a in range(0, 360, 5):
            view[f"png4/{o}/{o}_r{a}.png"] = png(a)
        for light in range(1, 9):
            for cam in range(1, 4):
                ill[f"png4/{o}/{o}_l{light}c{cam}.png"] = png(light * 10 + cam)
        for code in ALOI_COLOURS:
            col[f"png4/{o}/{o}_{code}.png"] = png(int(code[1:]))
    return {"aloi_red4_view.tar": make_tar(view), "aloi_red4_ill.tar": make_tar(ill),
            "aloi_red4_col.tar": make_tar(col)}


def fake_alot(materials: int = 2) -> dict[str, bytes]:
    members = {}
    for m in range(1, materials + 1):
        for cam in range(1, 5):
            for light in (1, 2, 3, 4, 5, 8):
                for rot in ("", "r60", "r120", "r180"):
                    members[f"png4/{m}/{m}_c{cam}l{light}{rot}.png"] = png(cam * 100 + light)
            members[f"png4/{m}/{m}_c{cam}i.png"] = png(cam)
    return {"alot_png4.tar": make_tar(members)}


def fake_dali(scenes: int = 2) -> dict[str, bytes]:
    members = {f"DaLI_dataset/input/png/{s}/{v:02d}.png": png(s * 100 + v) for s in range(1, scenes + 1) for v in range(32)}
    members["DaLI_dataset/README"] = b"DaLI\n"
    return {"dali.zip": make_zip(members)}


def fake_exposure_errors() -> dict[str, bytes]:
    members = {}
    for scene in ("a0001-jmac_DSC1459", "a0002-dgw_005"):
        members[f"validation/GT_IMAGES/{scene}.jpg"] = jpeg(1)
        for ev in ("N1.5", "N1", "0", "P1", "P1.5"):
            members[f"validation/INPUT_IMAGES/{scene}_{ev}.JPG"] = jpeg(2)
    return {"validation.zip": make_zip(members)}


def fake_flickr1024() -> dict[str, bytes]:
    members = {}
    for split, ids in (("Train", (1, 2)), ("Validation", (3,)), ("Test", (4,))):
        for i in ids:
            members[f"Flickr1024/{split}/{i:04d}_L.png"] = png(i)
            members[f"Flickr1024/{split}/{i:04d}_R.png"] = png(i + 50)
    return {"Flickr1024.zip": make_zip(members)}


def fake_realblur() -> dict[str, bytes]:
    members = {}
    for cam in ("RealBlur-J_ECC_IMCORR_centroid_itensity_ref", "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref"):
        for scene in ("scene001", "scene244_reflect"):
            members[f"{cam}/{scene}/gt/gt_1.png"] = png(1)
            members[f"{cam}/{scene}/blur/blur_1.png"] = png(2)
    members["RealBlur_J_train_list.txt"] = b"RealBlur-J_.../scene001/gt/gt_1.png ...\n"
    return {"RealBlur.tar.gz": make_tar(members, "gz")}


def fake_causal3dident() -> dict[str, bytes]:
    out = {}
    for split in ("trainset", "testset"):
        members = {}
        for c in range(7):
            for i in range(2):
                members[f"{split}/images_{c}/{i:01d}.png"] = png(c * 10 + i)
            latents = np.random.default_rng(c).uniform(-1, 1, (2, 10)).astype(np.float32)
            members[f"{split}/latents_{c}.npy"] = npy(latents)
            members[f"{split}/raw_latents_{c}.npy"] = npy(latents * 2)
        out[f"{split}.tar.gz"] = make_tar(members, "gz")
    return out


FAKES: dict[str, Callable[[], dict[str, bytes]]] = {
    "imagenet": fake_imagenet,
    "CIFAR10": fake_cifar10,
    "Caltech101": fake_caltech101,
    "Flowers": fake_flowers,
    "CelebA": fake_celeba,
    "300W": fake_300w,
    "leeds_sports_pose": fake_lsp,
    "COIL100": fake_coil100,
    "ALOI": fake_aloi,
    "ALOT": fake_alot,
    "DaLI": fake_dali,
    "ExposureErrors": fake_exposure_errors,
    "Flickr1024": fake_flickr1024,
    "RealBlur": fake_realblur,
    "Causal3DIdent": fake_causal3dident,
}


# -------------------------------------------------------------------- layout checks


def _need(path: Path, what: str) -> None:
    if not path.exists():
        raise DataNotFoundError(f"missing {path} ({what}). Run: sslinv fetch-data")


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def check_imagenet(root: Path) -> dict[str, int]:
    classes = [d for d in (root / "val").iterdir() if d.is_dir()] if (root / "val").is_dir() else []
    _need(root / "val", "val/<wnid>/*.JPEG")
    return {"images": sum(len(list(d.glob("*.JPEG"))) for d in classes), "classes": len(classes)}


def check_cifar10(root: Path) -> dict[str, int]:
    for name in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta"):
        _need(root / "cifar-10-batches-py" / name, "the python batches")
    return {"batches": len(list((root / "cifar-10-batches-py").glob("*_batch*")))}


def check_caltech101(root: Path) -> dict[str, int]:
    cats = root / "caltech101" / "101_ObjectCategories"
    _need(cats, "caltech101/101_ObjectCategories/<class>/image_NNNN.jpg")
    _need(root / "train.txt", "split file")
    _need(root / "test.txt", "split file")
    return {"classes": len([d for d in cats.iterdir() if d.is_dir()]), "images": len(list(cats.glob("*/*.jpg")))}


def check_flowers(root: Path) -> dict[str, int]:
    for name in ("setid.mat", "imagelabels.mat"):
        _need(root / name, "directly under Flowers/")
    _need(root / "jpg" / "image_00001.jpg", "jpg/image_%05d.jpg")
    return {"images": len(list((root / "jpg").glob("image_*.jpg")))}


def check_celeba(root: Path) -> dict[str, int]:
    base = root / "celeba"
    for name in ("list_attr_celeba.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
                 "list_landmarks_align_celeba.txt", "list_eval_partition.txt"):
        _need(base / name, "text files in celeba/")
    _need(base / "img_align_celeba" / "000001.jpg", "celeba/img_align_celeba/NNNNNN.jpg")
    return {"images": len(list((base / "img_align_celeba").glob("*.jpg")))}


def check_300w(root: Path) -> dict[str, int]:
    n = 0
    for folder in ("01_Indoor", "02_Outdoor"):
        _need(root / folder, "01_Indoor/ and 02_Outdoor/ directly under 300W/")
        pngs, pts = sorted((root / folder).glob("*.png")), sorted((root / folder).glob("*.pts"))
        if [p.stem for p in pngs] != [p.stem for p in pts] or not pngs:
            raise DataNotFoundError(f"unpaired images and .pts in {root / folder}")
        n += len(pngs)
    if any(p.name not in ("01_Indoor", "02_Outdoor") for p in root.iterdir()):
        raise DataNotFoundError(f"extra entries in {root}")
    return {"images": n}


def check_lsp(root: Path) -> dict[str, int]:
    _need(root / "joints.mat", "joints.mat directly under LeedsSportsPose/")
    _need(root / "images" / "im0001.jpg", "images/imNNNN.jpg")
    return {"images": len(list((root / "images").glob("*.jpg")))}


def check_coil100(root: Path) -> dict[str, int]:
    files = sorted(root.glob("obj*__*.png"))
    if not files or any(p.is_dir() for p in root.iterdir()):
        raise DataNotFoundError(f"expected flat obj*__*.png under {root}")
    return {"images": len(files), "groups": len({p.name.split("__")[0] for p in files})}


def check_aloi(root: Path) -> dict[str, int]:
    out = {}
    for mode in ("viewpoint", "illumination", "temperature"):
        _need(root / mode, "ALOI/<mode>/<obj>/*.png")
        out[mode] = len(list((root / mode).glob("*/*.png")))
        if not out[mode] or list((root / mode).glob("*/*/*.png")):
            raise DataNotFoundError(f"wrong depth under {root / mode}")
    return out


def check_alot(root: Path) -> dict[str, int]:
    n = len(list(root.glob("*/*.png")))
    if not n or list(root.glob("*/*/*.png")):
        raise DataNotFoundError(f"expected ALOT/<material>/*.png under {root}")
    return {"images": n}


def check_dali(root: Path) -> dict[str, int]:
    n = len(list((root / "input" / "png").glob("*/*.png")))
    if not n:
        raise DataNotFoundError(f"expected DaLI/input/png/<scene>/*.png under {root}")
    return {"images": n}


def check_exposure_errors(root: Path) -> dict[str, int]:
    inputs, gts = list((root / "INPUT_IMAGES").glob("*.JPG")), list((root / "GT_IMAGES").glob("*.jpg"))
    if not inputs or not gts:
        raise DataNotFoundError(f"expected INPUT_IMAGES/*.JPG and GT_IMAGES/*.jpg under {root}")
    return {"inputs": len(inputs), "groups": len(gts)}


def check_flickr1024(root: Path) -> dict[str, int]:
    left = list(root.glob("*/*_L.png"))
    if not left or any(not Path(str(p)[:-6] + "_R.png").is_file() for p in left):
        raise DataNotFoundError(f"expected <split>/NNNN_L.png + _R.png under {root}")
    return {"pairs": len(left)}


def check_realblur(root: Path) -> dict[str, int]:
    base = root / "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"
    gts = list(base.glob("*/gt/*.png"))
    if not gts or len(gts) != len(list(base.glob("*/blur/*.png"))):
        raise DataNotFoundError(f"expected <scene>/gt and <scene>/blur pairs under {base}")
    return {"pairs": len(gts)}


def check_causal3dident(root: Path) -> dict[str, int]:
    out = {}
    for split in ("trainset", "testset"):
        folder = root / split
        dirs = sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
        if dirs != [f"images_{i}" for i in range(7)]:
            raise DataNotFoundError(f"expected exactly images_0..6 folders in {folder}, got {dirs}")
        for i in range(7):
            _need(folder / f"latents_{i}.npy", "latents per class")
        out[split] = len(list(folder.glob("images_*/*.png")))
    return out


LAYOUT_CHECKS: dict[str, Callable[[Path], dict[str, int]]] = {
    "imagenet": check_imagenet,
    "CIFAR10": check_cifar10,
    "Caltech101": check_caltech101,
    "Flowers": check_flowers,
    "CelebA": check_celeba,
    "300W": check_300w,
    "leeds_sports_pose": check_lsp,
    "COIL100": check_coil100,
    "ALOI": check_aloi,
    "ALOT": check_alot,
    "DaLI": check_dali,
    "ExposureErrors": check_exposure_errors,
    "Flickr1024": check_flickr1024,
    "RealBlur": check_realblur,
    "Causal3DIdent": check_causal3dident,
}


def manifest_for(server: Server, record: DatasetRecord, files: dict[str, bytes]) -> dict:
    """Serve ``files`` and return the manifest entry for them (each with its sha256)."""
    names = [r.filename for r in record.resources]
    if len(files) == 1 and len(names) == 1:
        (name, data), = files.items()
        return {"url": server.add(f"/{record.name}/{name}", data), "sha256": sha256(data)}
    entry = {"files": {}}
    for name, data in files.items():
        assert name in names, (record.name, name)
        entry["files"][name] = {"url": server.add(f"/{record.name}/{name}", data), "sha256": sha256(data)}
    return entry


def write_manifest(path: Path, entries: dict) -> Path:
    path.write_text(json.dumps(entries))
    return path


# ------------------------------------------------------------------ tests of the fakes


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_record_has_a_fake_and_a_layout_check(name: str) -> None:
    assert name in FAKES, f"add a fake for {name} in tests/test_fetch_fakes.py"
    assert name in LAYOUT_CHECKS, f"add a layout check for {name}"
    record = DATASETS.get(name)
    files = FAKES[name]()
    named = [r.filename for r in record.resources if r.filename]
    assert set(named) <= set(files), "the fake names the record's files"
    assert len(files) == len(record.resources)


def test_server_range_and_drop(server: Server) -> None:
    import urllib.request

    url = server.add("/x.bin", bytes(range(256)) * 10)
    req = urllib.request.Request(url, headers={"Range": "bytes=2000-"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 206 and r.read() == (bytes(range(256)) * 10)[2000:]
    assert server.requests[-1] == ("/x.bin", "bytes=2000-")


@pytest.mark.parametrize("name", DATASETS.names())
def test_record_names_its_loader_module(name: str) -> None:
    """The record's loader module exists, and its DIRNAME is the record's folder."""
    record = DATASETS.get(name)
    module = importlib.import_module(f"sslinv.data.{record.module}")
    assert module.DIRNAME == record.dirname
    assert callable(module.verify)
