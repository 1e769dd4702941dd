"""``load_rgb``: every loader's decoder. RGB files come back as decoded (no copy), other
modes converted; the file is closed either way."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sslinv.data.folder import load_rgb


@pytest.mark.parametrize("mode, ext", [("RGB", "jpg"), ("RGB", "png"), ("L", "png"), ("P", "png"),
                                       ("RGBA", "png"), ("CMYK", "jpg")])
def test_pixels_are_pils_rgb_conversion(tmp_path, mode, ext):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / f"x.{ext}"
    img.save(path)
    out = load_rgb(path)
    with Image.open(path) as ref:
        want = np.asarray(ref.convert("RGB"))
    assert out.mode == "RGB" and out.size == (53, 37)
    assert np.array_equal(np.asarray(out), want)
    assert getattr(out, "fp", None) is None  # the file is closed


def test_the_result_survives_the_file(tmp_path):
    path = tmp_path / "x.jpg"
    Image.new("RGB", (8, 6), (10, 200, 30)).save(path)
    out = load_rgb(path)
    path.unlink()
    assert out.rotate(90).size == (8, 6) and out.getpixel((0, 0))[1] > 150
