"""Safe image loading used by every part: limits, clear errors, EXIF orientation, RGB.

Every image that enters the project (dataset files, uploads, CLI paths) goes through `load_image`, so a
decompression bomb, a truncated file or an odd pixel mode fails the same way everywhere: an
`ImageLoadError` naming the file and the problem.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from fakereasoning.errors import ImageLoadError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # 50 MiB of encoded data
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024  # 64 megapixels (e.g. 8192 x 8192)
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

# Never decode a truncated file silently: a half-grey image is worse than an error.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether a file name has one of the image extensions the project reads."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB. Alpha is composited on white; 16-bit and float are rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I":
            arr = arr / 257.0 if arr.max(initial=0) > 255 else arr
        else:  # float images: assume [0, 1] when they fit, else clip to 8 bits
            arr = arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    elif mode == "CMYK":
        return img.convert("RGB")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def load_image(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode an image from a path or bytes into an upright 8-bit RGB `PIL.Image`.

    `name` is what errors call the image (default: the path, or "<bytes>").
    Raises `ImageLoadError` for anything unusable; never anything else for bad data.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "<bytes>"
        data = bytes(source)
        if len(data) > max_bytes:
            raise ImageLoadError(label, f"{len(data)} bytes exceeds the limit of {max_bytes} bytes")
    else:
        path = Path(source)
        label = name or str(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageLoadError(label, "file not found") from None
        except OSError as exc:
            raise ImageLoadError(label, f"cannot read file ({exc.strerror or exc})") from None
        if path.is_dir():
            raise ImageLoadError(label, "is a directory, not an image")
        if not path.is_file():
            raise ImageLoadError(label, "not a regular file")
        if size > max_bytes:
            raise ImageLoadError(label, f"{size} bytes exceeds the limit of {max_bytes} bytes")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageLoadError(label, f"cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise ImageLoadError(label, "empty file")
    return decode_image_bytes(data, label, max_pixels=max_pixels)


def decode_image_bytes(data: bytes, label: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode already-read bytes (see `load_image`)."""
    try:
        with warnings.catch_warnings():
            # MAX_PIXELS decides (checked below, before any pixel is decoded): Pillow's own warning at 89 MP
            # must neither refuse an image the caller allows nor speak of Pillow's limit instead of the
            # caller's; its hard error (over 179 MP) is reworded below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise ImageLoadError(label, f"unsupported image format {fmt}")
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageLoadError(label, f"invalid image size {width}x{height}")
            if width * height > max_pixels:
                raise ImageLoadError(
                    label,
                    f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
                    "(possible decompression bomb)",
                )
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not a recognised image (unsupported format or corrupt header)") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(label, _bomb_message(str(exc), max_pixels)) from None
    except OSError as exc:
        message = str(exc) or exc.__class__.__name__
        if "truncated" in message.lower():
            raise ImageLoadError(label, f"truncated image data ({message})") from None
        raise ImageLoadError(label, f"corrupt image data ({message})") from None
    except (ValueError, SyntaxError, TypeError, IndexError, struct.error, EOFError, MemoryError) as exc:
        raise ImageLoadError(label, f"corrupt image data ({exc.__class__.__name__}: {exc})") from None


def _bomb_message(pillow_message: str, max_pixels: int) -> str:
    """Pillow's refusal of a huge image (it reads the size before we can), in terms of the caller's limit."""
    found = re.search(r"\((\d+) pixels\)", pillow_message)
    if found is None:
        return f"exceeds the limit of {max_pixels} pixels (possible decompression bomb)"
    pixels = int(found.group(1))
    if pixels > max_pixels:
        return f"{pixels} pixels exceeds the limit of {max_pixels} (possible decompression bomb)"
    hard = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return f"{pixels} pixels exceeds the image decoder's own limit of {hard} (possible decompression bomb)"


def image_pixels(source: str | os.PathLike[str] | bytes, label: str | None = None) -> int:
    """Width x height from the header alone (nothing is decoded), to budget memory before decoding.

    Raises `ImageLoadError` when there is no readable header; `load_image` then gives the full check."""
    label = label or (str(source) if not isinstance(source, bytes | bytearray | memoryview) else "<bytes>")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
            with Image.open(fp) as img:
                width, height = img.size
    except (OSError, ValueError, SyntaxError, TypeError, IndexError, struct.error, EOFError,
            Image.DecompressionBombError) as exc:
        raise ImageLoadError(label, f"not a recognised image ({exc.__class__.__name__})") from None
    return max(0, width) * max(0, height)


def load_image_array(source: str | os.PathLike[str] | bytes, **kwargs: object) -> np.ndarray:
    """`load_image` as a `uint8` array of shape (H, W, 3)."""
    return np.asarray(load_image(source, **kwargs))  # type: ignore[arg-type]


def encode_png(img: Image.Image) -> bytes:
    """Lossless PNG bytes (used wherever the project writes images, so writing never changes pixels)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
