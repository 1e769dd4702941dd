"""The six downstream loaders, each reading a tiny fake written in the dataset's exact
on-disk layout (datasets.md), plus the fake writers the end-to-end tests reuse."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslinv.data.downstream import DATASETS, Split, get_dataset, landmarks_in_view
from sslinv.errors import DataNotFoundError, UnknownNameError, UsageError

# ----------------------------------------------------------------------------- fakes


def _image(rng, label: int, size: tuple[int, int], classes: int, noise: float = 0.08) -> np.ndarray:
    """A noisy image whose colour and stripes depend on the label (learnable by a probe)."""
    w, h = size
    hue = np.array([np.cos(2 * np.pi * label / classes), np.sin(2 * np.pi * label / classes), (label % 3) / 2])
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = np.sin(2 * np.pi * (xx * (1 + label % 4) / max(w, 1)))[..., None]
    img = 0.5 + 0.35 * hue[None, None, :] * (0.6 + 0.4 * stripes) * rng.uniform(0.2, 1.0)
    img = img + rng.uniform(-0.08, 0.08, 3) * (noise > 0.1) + rng.normal(0, noise, (h, w, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_cifar10(data_root: Path, per_batch: int = 24, n_test: int = 40, seed: int = 0) -> Path:
    """``CIFAR10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` pickles."""
    rng = np.random.default_rng(seed)
    folder = data_root / "CIFAR10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n: int, name: str) -> None:
        labels = rng.integers(0, 10, n)
        imgs = np.stack([_image(rng, int(c), (32, 32), 10, noise=0.2) for c in labels])  # not separable
        data = imgs.transpose(0, 3, 1, 2).reshape(n, 3072)  # planes R, G, B, row-major
        obj = {"batch_label": name, "labels": [int(c) for c in labels], "data": data,
               "filenames": [f"img_{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    for i in range(1, 6):
        batch(per_batch, f"data_batch_{i}")
    batch(n_test, "test_batch")
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": per_batch}, f, protocol=2)
    return data_root / "CIFAR10"


CALTECH_FIRST = ["BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "accordion"]


def write_caltech101(data_root: Path, seed: int = 0) -> Path:
    """``Caltech101/caltech101/101_ObjectCategories/<class>/image_NNNN.jpg``, 102 classes of
    31..33 tiny images (the real minimum is 31)."""
    rng = np.random.default_rng(seed)
    root = data_root / "Caltech101"
    names = CALTECH_FIRST + [f"class_{i:03d}" for i in range(102 - len(CALTECH_FIRST))]
    import io

    for c, name in enumerate(sorted(names)):
        d = root / "caltech101" / "101_ObjectCategories" / name
        d.mkdir(parents=True)
        buf = io.BytesIO()
        Image.fromarray(_image(rng, c, (10, 8), 102)).save(buf, format="JPEG", quality=90)
        for i in range(31 + c % 3):  # one encoded image per class keeps the fake fast
            (d / f"image_{i + 1:04d}.jpg").write_bytes(buf.getvalue())
    return root


def write_flowers(data_root: Path, n: int = 60, seed: int = 0) -> Path:
    """``Flowers/jpg/image_%05d.jpg``, ``imagelabels.mat`` (labels 1..102), ``setid.mat``."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root = data_root / "Flowers"
    (root / "jpg").mkdir(parents=True)
    labels = rng.integers(1, 103, n)
    for i, c in enumerate(labels, 1):
        Image.fromarray(_image(rng, int(c), (12, 10), 102)).save(root / "jpg" / f"image_{i:05d}.jpg")
    ids = rng.permutation(np.arange(1, n + 1))
    savemat(root / "imagelabels.mat", {"labels": labels.astype(np.uint8)[None, :]})
    savemat(root / "setid.mat", {"trnid": ids[:15][None, :].astype(np.uint16),
                                 "valid": ids[15:30][None, :].astype(np.uint16),
                                 "tstid": ids[30:][None, :].astype(np.uint16)})
    return root


def pts_text(points: np.ndarray) -> str:
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    return f"version: 1\nn_points:  {len(points)}\n{{\n{body}\n}}\n"


def write_300w(data_root: Path, per_folder: int = 10, seed: int = 0) -> Path:
    """``300W/01_Indoor/indoor_NNN.{png,pts}`` and ``02_Outdoor/outdoor_NNN.{png,pts}``."""
    rng = np.random.default_rng(seed)
    root = data_root / "300W"
    for sub, stem in (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor")):
        (root / sub).mkdir(parents=True)
        for i in range(1, per_folder + 1):
            w, h = int(rng.integers(60, 90)), int(rng.integers(60, 90))
            cx, cy, r = rng.uniform(25, 35), rng.uniform(25, 35), rng.uniform(8, 18)
            ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
            pts = np.stack([cx + r * np.cos(ang), cy + 0.8 * r * np.sin(ang)], 1) + rng.normal(0, 1, (68, 2))
            img = _image(rng, i % 5, (w, h), 5)
            img[int(cy) - 2 : int(cy) + 2, int(cx) - 2 : int(cx) + 2] = 255
            Image.fromarray(img).save(root / sub / f"{stem}_{i:03d}.png")
            (root / sub / f"{stem}_{i:03d}.pts").write_text(pts_text(pts))
    return root


def write_celeba(data_root: Path, n: int = 30, seed: int = 0) -> Path:
    """``CelebA/celeba/img_align_celeba/NNNNNN.jpg`` (178 x 218) with the partition and
    aligned-landmark text files in their real formats."""
    rng = np.random.default_rng(seed)
    base = data_root / "CelebA" / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    parts, marks = [], []
    for i in range(1, n + 1):
        name = f"{i:06d}.jpg"
        Image.fromarray(_image(rng, i % 4, (178, 218), 4)).save(base / "img_align_celeba" / name)
        parts.append(f"{name} {0 if i <= n * 0.6 else (1 if i <= n * 0.8 else 2)}")
        lm = np.array([69, 109, 106, 113, 77, 142, 73, 152, 108, 154]) + rng.integers(-5, 6, 10)
        marks.append(f"{name:<10}" + "".join(f"{v:>5d}" for v in lm))
    (base / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (base / "list_landmarks_align_celeba.txt").write_text(f"{n}\n{header}\n" + "\n".join(marks) + "\n")
    return data_root / "CelebA"


def write_lsp(data_root: Path, n: int = 25, seed: int = 0) -> Path:
    """``LeedsSportsPose/images/imNNNN.jpg`` and ``joints.mat`` (3 x 14 x n)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root = data_root / "LeedsSportsPose"
    (root / "images").mkdir(parents=True)
    joints = np.zeros((3, 14, n))
    for i in range(n):
        w, h = int(rng.integers(40, 80)), int(rng.integers(40, 80))
        Image.fromarray(_image(rng, i % 3, (w, h), 3)).save(root / "images" / f"im{i + 1:04d}.jpg")
        joints[0, :, i] = rng.uniform(0, w, 14)
        joints[1, :, i] = rng.uniform(0, h, 14)
        joints[2, :, i] = rng.integers(0, 2, 14)
    savemat(root / "joints.mat", {"joints": joints})
    return root


FAKES = {
    "cifar10": write_cifar10,
    "caltech101": write_caltech101,
    "flowers": write_flowers,
    "300w": write_300w,
    "celeba": write_celeba,
    "leeds_sports_pose": write_lsp,
}
#: (trainval, test) sizes of the default fakes.
FAKE_COUNTS = {
    "cifar10": (120, 40),
    "caltech101": (102 * 30, 34 * 1 + 34 * 2 + 34 * 3),
    "flowers": (30, 30),
    "300w": (6 + 6, 8),
    "celeba": (24, 6),
    "leeds_sports_pose": (15, 10),
}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


# ----------------------------------------------------------------------------- tests


def test_every_registered_dataset_has_a_fake():
    # The built-in demo datasets are painted by sslinv itself (tests/test_demo_tasks.py).
    assert sorted(FAKES) == sorted(n for n, d in DATASETS.items() if not d.builtin)


@pytest.fixture(scope="module")
def shared_data_root(tmp_path_factory) -> Path:
    """One data root with every fake, written once for the tests that only read it."""
    root = tmp_path_factory.mktemp("downstream-data")
    for write in FAKES.values():
        write(root)
    return root


@pytest.mark.parametrize("name", sorted(FAKES))
def test_loader_reads_its_fake(shared_data_root, name):
    ds = DATASETS.get(name)
    tmp_path = shared_data_root
    root = tmp_path / ds.dirname
    before = snapshot(root)
    counts = ds.verify(tmp_path)
    assert counts and all(isinstance(v, int) and v > 0 for v in counts.values())
    tv = ds.load(tmp_path, "trainval")
    te = ds.load(tmp_path, "test")
    assert (len(tv), len(te)) == FAKE_COUNTS[name]
    for split in (tv, te):
        assert isinstance(split, Split) and split.fingerprint
        y = split.view_targets(224, 224)
        if ds.task == "classification":
            assert y.dtype == np.int64 and y.ndim == 1 and 0 <= y.min() and y.max() < ds.outputs
        else:
            assert y.shape == (len(split), ds.outputs) and y.dtype == np.float64
        n_img = len(split.files) if split.arrays is None else len(split.arrays)
        assert n_img == len(split)
    # Loaders never write into the data folder (the reference writes split files there).
    assert snapshot(root) == before
    # Deterministic: the same split twice.
    again = ds.load(tmp_path, "trainval")
    assert again.fingerprint == tv.fingerprint
    np.testing.assert_array_equal(again.targets, tv.targets)


@pytest.mark.parametrize("name", sorted(FAKES))
def test_missing_dataset_names_folder_and_fetch_command(tmp_path, name):
    from sslinv.fetch.records import lookup as fetch_record

    ds = DATASETS.get(name)
    for call in (lambda: ds.verify(tmp_path), lambda: ds.load(tmp_path, "trainval")):
        with pytest.raises(DataNotFoundError) as err:
            call()
        msg = str(err.value)
        assert str(tmp_path / ds.dirname) in msg
        assert f"sslinv fetch-data {fetch_record(name).name}" in msg  # the name fetch-data lists


def test_cifar10_layout_pixels_and_counts(tmp_path):
    from sslinv.data import cifar10

    root = write_cifar10(tmp_path, per_batch=4, n_test=3)
    assert cifar10.verify(root) == {"train": 20, "test": 3}
    imgs, labels = cifar10.load_arrays(root, "train")
    assert imgs.shape == (20, 32, 32, 3) and imgs.dtype == np.uint8 and labels.shape == (20,)
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f)
    # Pixel (row 5, col 7) of image 0: red plane, green plane (+1024), blue plane (+2048).
    px = [raw["data"][0][c * 1024 + 5 * 32 + 7] for c in range(3)]
    assert list(imgs[0, 5, 7]) == px
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3 is missing.*sslinv fetch-data CIFAR10"):
        cifar10.verify(root)


def test_cifar10_refuses_pickles_that_build_other_objects(tmp_path):
    from sslinv.data import cifar10

    root = write_cifar10(tmp_path, per_batch=2, n_test=2)
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": os.system, "labels": []}, f)
    with pytest.raises(DataNotFoundError, match="refusing to load"):
        cifar10.load_arrays(root, "test")


def test_caltech101_seeded_split_30_distinct_per_class(shared_data_root):
    from sslinv.data import caltech101

    root = shared_data_root / "Caltech101"
    assert caltech101.verify(root) == {"images": 102 * 31 + 34 + 34 * 2, "classes": 102}
    classes, files, labels = caltech101.scan(root)
    assert classes[0] == "BACKGROUND_Google" and classes == sorted(classes)
    assert files[0] == "BACKGROUND_Google/image_0001.jpg"
    train, test = caltech101.seeded_split(labels, seed=0)
    assert len(np.unique(train)) == len(train) == 102 * 30
    assert np.bincount(labels[train]).tolist() == [30] * 102
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    other, _ = caltech101.seeded_split(labels, seed=1)
    assert not np.array_equal(other, train)
    np.testing.assert_array_equal(caltech101.seeded_split(labels, seed=0)[0], train)


def test_caltech101_split_files_crlf_and_duplicates(shared_data_root, tmp_path):
    from sslinv.data import caltech101

    root = shared_data_root / "Caltech101"
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    (split_dir / "train.txt").write_bytes(b"Faces/image_0002.jpg 1\r\nFaces/image_0002.jpg 1\r\nyin_yang/image_0001.jpg 101\r\n"
                                          .replace(b"yin_yang", b"class_095"))
    (split_dir / "test.txt").write_text("BACKGROUND_Google/image_0003.jpg 0\n\n")
    tv = caltech101.load(root, "trainval", split_dir=split_dir)
    te = caltech101.load(root, "test", split_dir=split_dir)
    assert tv.targets.tolist() == [1, 1, 101] and te.targets.tolist() == [0]
    assert tv.files[0] == root / "caltech101" / "101_ObjectCategories" / "Faces" / "image_0002.jpg"
    assert "split files" in tv.source
    (split_dir / "test.txt").write_text("Faces/image_9999.jpg 1\n")
    with pytest.raises(DataNotFoundError, match="image_9999.jpg"):
        caltech101.load(root, "test", split_dir=split_dir)
    with pytest.raises(DataNotFoundError, match="Split file .*train.txt not found"):
        caltech101.load(root, "trainval", split_dir=tmp_path)


def test_caltech101_needs_all_class_folders(tmp_path):
    from sslinv.data import caltech101

    root = tmp_path / "Caltech101"
    for i in range(101):
        d = root / "caltech101" / "101_ObjectCategories" / f"class_{i:03d}"
        d.mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(d / "image_0001.jpg")
    with pytest.raises(DataNotFoundError, match="found 101 of the 102 class folders.*sslinv fetch-data Caltech101"):
        caltech101.verify(root)
    d = root / "caltech101" / "101_ObjectCategories" / "class_101"
    d.mkdir()
    (d / "notes.txt").write_text("not an image")
    with pytest.raises(DataNotFoundError, match="class folder class_101 has no images"):
        caltech101.load(root, "trainval")
    Image.new("RGB", (4, 4)).save(d / "image_0001.jpg")
    assert caltech101.verify(root) == {"images": 102, "classes": 102}
    with pytest.raises(UsageError, match="only 1 images.*--split-dir"):
        caltech101.load(root, "trainval")


def test_flowers_splits_follow_setid(tmp_path):
    from scipy.io import loadmat

    from sslinv.data import flowers

    root = write_flowers(tmp_path)
    counts = flowers.verify(root)
    assert counts == {"images": 60, "train": 15, "val": 15, "test": 30}
    setid = loadmat(root / "setid.mat")
    labels = loadmat(root / "imagelabels.mat")["labels"][0]
    tv = flowers.load(root, "trainval")
    ids = np.concatenate([setid["trnid"][0], setid["valid"][0]])
    assert [p.name for p in tv.files] == [f"image_{i:05d}.jpg" for i in ids]
    assert tv.targets.tolist() == (labels[ids - 1].astype(int) - 1).tolist()
    (root / "jpg" / f"image_{int(setid['tstid'][0][0]):05d}.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="missing.*sslinv fetch-data Flowers"):
        flowers.load(root, "test")


def test_300w_split_is_the_reference_permutation():
    from sslinv.data import w300

    parts = w300.seeded_split(600, seed=0)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [180, 180, 240]
    # The reference: np.random.seed(0); idxs = np.arange(600); np.random.shuffle(idxs).
    state = np.random.get_state()
    try:
        np.random.seed(0)
        idxs = np.arange(600)
        np.random.shuffle(idxs)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(np.concatenate([parts["train"], parts["valid"], parts["test"]]), idxs)
    np.testing.assert_array_equal(parts["train"], idxs[:180])


def test_lsp_split_is_the_reference_permutation():
    from sslinv.data import lsp

    parts = lsp.seeded_split(2000, seed=0)
    state = np.random.get_state()
    try:
        np.random.seed(0)
        idxs = np.arange(2000)
        np.random.shuffle(idxs)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(parts["train"], idxs[:1200])
    np.testing.assert_array_equal(parts["test"], idxs[1200:])


def test_300w_landmark_box_hand_checked(tmp_path):
    """Landmarks spanning x 10.5..110.5, y 20.25..100.25: box side max(100, 80) = 100 at
    (10.5, 20.25); PIL rounds the box to (10, 20, 110, 120); the point (60.5, 70.25) sits at
    (50, 50) of the 100 x 100 crop, i.e. (112, 112) of the 224 x 224 view."""
    from sslinv.data import w300

    pts = np.array([[10.5, 20.25], [110.5, 100.25], [60.5, 70.25]] + [[50.0, 50.0]] * 65)
    box, rel, size = w300.box_crop(pts)
    assert box == (10.5, 20.25, 110.5, 120.25) and size == (100, 100)
    view = landmarks_in_view(rel.reshape(1, -1), np.array([size]), 224, 224).reshape(-1, 2)
    np.testing.assert_allclose(view[2], [112.0, 112.0])
    np.testing.assert_allclose(view[0], [0.0, 0.0])
    np.testing.assert_allclose(view[1], [224.0, 179.2])
    # Through the loader: one face with these landmarks in the real .pts format.
    root = tmp_path / "300W"
    for sub, stem in (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor")):
        (root / sub).mkdir(parents=True)
        Image.new("RGB", (150, 140)).save(root / sub / f"{stem}_001.png")
        (root / sub / f"{stem}_001.pts").write_text(pts_text(pts))
    split = w300.load(root, "test")  # 2 faces: int(2*.3)=0 train, int(2*.6)=1 valid, 1 test
    assert len(split) == 1
    np.testing.assert_allclose(split.view_targets(224, 224).reshape(-1, 2)[2], [112.0, 112.0], atol=1e-9)
    np.testing.assert_allclose(split.boxes[0], [10.5, 20.25, 110.5, 120.25])


def test_300w_crop_matches_the_pixels(tmp_path):
    """A white dot at a landmark lands where the target says, in the rendered view."""
    import torch

    from sslinv.data import w300
    from sslinv.evaluate.downstream import SplitImages

    root = tmp_path / "300W"
    rng = np.random.default_rng(1)
    pts = rng.uniform(30, 90, (68, 2))
    pts[0] = [52.0, 61.0]
    for sub, stem in (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor")):
        (root / sub).mkdir(parents=True)
        img = np.zeros((120, 130, 3), np.uint8)
        img[59:64, 50:55] = 255  # a 5 x 5 dot centred on pixel (52, 61)
        Image.fromarray(img).save(root / sub / f"{stem}_001.png")
        (root / sub / f"{stem}_001.pts").write_text(pts_text(pts))
    split = w300.load(root, "test")
    view = SplitImages(split, 224, 224)[0][1].float().mean(0)
    x, y = split.view_targets(224, 224)[0, :2]
    cy, cx = np.argwhere(view.numpy() > 128).mean(0)
    # The dot's centre vs. the target: the box corner is rounded to a whole pixel and
    # pixel centres sit half a pixel in, so they agree to about one source pixel.
    scale = 224 / (split.boxes[0, 2] - split.boxes[0, 0])
    assert abs(cx - x) <= scale + 0.5 and abs(cy - y) <= scale + 0.5
    assert view.shape == torch.Size([224, 224])


def test_lsp_central_square_hand_checked(tmp_path):
    """A 300 x 200 image: central square 200 wide at x = 50; a joint at (150, 100) is at
    (100, 100) of the square, (112, 112) of the view."""
    from scipy.io import savemat

    from sslinv.data import lsp

    assert lsp.central_square(300, 200) == (50, 0, 200)
    assert lsp.central_square(201, 300) == (0, 49, 201)
    root = tmp_path / "LeedsSportsPose"
    (root / "images").mkdir(parents=True)
    joints = np.zeros((3, 14, 2))
    for i in range(2):
        Image.new("RGB", (300, 200)).save(root / "images" / f"im{i + 1:04d}.jpg")
        joints[:2, :, i] = np.array([[150.0], [100.0]])
    joints[:2, 1, :] = [[250.0, 250.0], [0.0, 0.0]]
    savemat(root / "joints.mat", {"joints": joints})
    split = lsp.load(root, "trainval")  # int(2 * .6) = 1 image
    view = split.view_targets(224, 224).reshape(-1, 2)
    np.testing.assert_allclose(view[0], [112.0, 112.0])
    np.testing.assert_allclose(view[1], [224.0, 0.0])
    np.testing.assert_allclose(split.boxes[0], [50, 0, 250, 200])


def test_celeba_landmarks_hand_checked(tmp_path):
    """178 x 218 aligned image: m = 178, vertical offset (218 - 178) / 2 = 20; the point
    (89, 109) maps to (89, 89) * 224 / 178 = (112, 112). Floats, not truncated."""
    from sslinv.data import celeba

    root = write_celeba(tmp_path, n=5)
    base = root / "celeba"
    lines = (base / "list_landmarks_align_celeba.txt").read_text().splitlines()
    lines[2] = "000001.jpg    89  109   90  110   77  142   73  152  108  154"
    (base / "list_landmarks_align_celeba.txt").write_text("\n".join(lines) + "\n")
    assert celeba.verify(root) == {"train": 3, "valid": 1, "test": 1}
    split = celeba.load(root, "trainval")
    assert [p.name for p in split.files] == ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"]
    assert split.sizes is None and split.sizes_from_files  # headers are read only when needed
    view = split.view_targets(224, 224)
    np.testing.assert_allclose(view[0, :4], [112.0, 112.0, 90 * 224 / 178, 90 * 224 / 178])
    assert not np.allclose(view[0, 2], np.floor(view[0, 2]))
    (base / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="000005.jpg.*sslinv fetch-data CelebA"):
        celeba.load(root, "test")


def test_view_mapping_general_resize_crop():
    # A 100 x 100 image through resize 256 / crop 224: x' = x * 2.56 - 16.
    out = landmarks_in_view(np.array([[50.0, 0.0]]), np.array([[100, 100]]), 256, 224)
    np.testing.assert_allclose(out, [[112.0, -16.0]])


def test_dataset_names_and_aliases():
    assert get_dataset("CIFAR10").name == "cifar10"
    assert get_dataset("LeedsSportsPose").name == "leeds_sports_pose"
    assert get_dataset("300W").name == "300w"
    with pytest.raises(UnknownNameError, match=re.escape("Did you mean 'flowers'")):
        get_dataset("flower")


def test_split_dir_only_for_caltech101(tmp_path):
    from sslinv.data.downstream import check_split_dir

    check_split_dir(["caltech101", "cifar10"], tmp_path)
    with pytest.raises(UsageError, match="caltech101 only"):
        check_split_dir(["cifar10"], tmp_path)
