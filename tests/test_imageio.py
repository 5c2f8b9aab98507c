"""Safe image loading: every bad case is one ImageLoadError naming the file; odd modes become RGB."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakereasoning.errors import ImageLoadError
from fakereasoning.imageio import DEFAULT_MAX_PIXELS, load_image, load_image_array


def _save(img: Image.Image, path: Path, fmt: str, **kw: object) -> Path:
    img.save(path, format=fmt, **kw)
    return path


@pytest.fixture()
def rgb() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tif")])
def test_formats_load_as_rgb(tmp_path: Path, rgb: Image.Image, fmt: str, ext: str) -> None:
    img = load_image(_save(rgb, tmp_path / f"a.{ext}", fmt))
    assert img.mode == "RGB" and img.size == (60, 40)


def test_png_is_exact(tmp_path: Path, rgb: Image.Image) -> None:
    arr = load_image_array(_save(rgb, tmp_path / "a.png", "PNG"))
    assert np.array_equal(arr, np.asarray(rgb))


@pytest.mark.parametrize(
    "mode",
    ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"],
)
def test_modes_to_rgb(tmp_path: Path, rgb: Image.Image, mode: str) -> None:
    if mode == "I;16":
        src = Image.fromarray((np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 20).astype(np.uint16))
    else:
        src = rgb.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F", "I;16") else "PNG"
    data = io.BytesIO()
    src.save(data, format=fmt)
    img = load_image(data.getvalue(), name="x")
    assert img.mode == "RGB" and img.size == (60, 40)


def test_sixteen_bit_scaled_not_clipped(tmp_path: Path) -> None:
    arr = np.full((8, 8), 65535, dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    out = np.asarray(load_image(buf.getvalue()))
    assert out.max() == 255 and out.min() == 255


def test_alpha_composited_on_white() -> None:
    src = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    buf = io.BytesIO()
    src.save(buf, format="PNG")
    assert np.asarray(load_image(buf.getvalue()))[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_applied(tmp_path: Path) -> None:
    src = Image.new("RGB", (30, 10), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "o.jpg"
    src.save(path, format="JPEG", exif=exif.tobytes())
    assert load_image(path).size == (10, 30)


def test_errors_name_the_file(tmp_path: Path, rgb: Image.Image) -> None:
    good = _save(rgb, tmp_path / "good.png", "PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all" * 10)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    pdf = tmp_path / "doc.png"
    Image.new("RGB", (8, 8)).save(pdf, format="PDF")
    jpg = _save(rgb, tmp_path / "trunc.jpg", "JPEG")
    jpg_trunc = tmp_path / "trunc2.jpg"
    jpg_trunc.write_bytes(jpg.read_bytes()[:200])
    cases = {
        truncated: "truncated",
        garbage: "not a recognised image",
        empty: "empty file",
        tmp_path / "missing.png": "file not found",
        pdf: "",
        jpg_trunc: "",
        tmp_path: "directory",
    }
    for path, words in cases.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        message = str(info.value)
        assert message.startswith(str(path)), message
        assert words in message
        assert "\n" not in message


def test_byte_and_pixel_limits(tmp_path: Path, rgb: Image.Image) -> None:
    path = _save(rgb, tmp_path / "a.png", "PNG")
    with pytest.raises(ImageLoadError, match="exceeds the limit"):
        load_image(path, max_bytes=100)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path, max_pixels=1000)


def test_decompression_bomb_header_refused_before_decoding(tmp_path: Path) -> None:
    # A tiny PNG that claims to be 30000 x 30000 (900 megapixels): refused from its header.
    big = Image.new("1", (30000, 30000))
    buf = io.BytesIO()
    big.save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < 1_000_000
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(buf.getvalue(), name="bomb.png")


@pytest.mark.parametrize("limit", [1000, DEFAULT_MAX_PIXELS, 150_000_000])
def test_a_bomb_message_quotes_the_limit_asked_for_not_pillow_s(limit: int) -> None:
    big = Image.new("1", (30000, 30000))  # 900 megapixels: over Pillow's own limits (89 and 179 MP)
    buf = io.BytesIO()
    big.save(buf, format="PNG", optimize=True)
    with pytest.raises(ImageLoadError) as info:
        load_image(buf.getvalue(), name="bomb.png", max_pixels=limit)
    assert str(info.value) == f"bomb.png: 900000000 pixels exceeds the limit of {limit} (possible decompression bomb)"


@pytest.mark.parametrize("size", [(10000, 10000), (11000, 11000)])  # above Pillow's warning (89 MP), under 179 MP
def test_between_pillow_s_limits_the_limit_asked_for_decides(size: tuple[int, int]) -> None:
    buf = io.BytesIO()
    Image.new("1", size).save(buf, format="PNG", optimize=True)
    with pytest.raises(ImageLoadError) as info:
        load_image(buf.getvalue(), name="big.png", max_pixels=50_000_000)
    w, h = size
    assert str(info.value) == (f"big.png: {w}x{h} = {w * h} pixels exceeds the limit of 50000000 "
                               "(possible decompression bomb)")


def test_an_image_under_the_limit_asked_for_decodes_even_above_pillow_s_warning(monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # as if the image were over Pillow's 89 MP warning
    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, format="PNG")  # 1200 pixels: over Pillow's, under ours
    assert load_image(buf.getvalue(), max_pixels=5000).size == (40, 30)
