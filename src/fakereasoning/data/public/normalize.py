"""One processing history for both classes, so no container, size, metadata or JPEG trace tells them apart.

Fakes come mostly as PNG/WebP at 512-1024 px with generator metadata; reals mostly as camera JPEGs. Every
image therefore goes through the same steps: decode (metadata gone) -> [lossless originals: with a fixed
probability one "as shared on the web" JPEG of the whole image, the history most real photos already
have] -> native-resolution crop (never resampled: a forensic model reads these pixels) -> with a fixed
probability a JPEG round trip at a quality drawn from one distribution -> lossless PNG. The audit
(`audit.py`) then checks that file size, size and estimated JPEG quality alone cannot tell the classes.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fakereasoning.imageio import encode_png


@dataclass(frozen=True)
class Recipe:
    crop: int = 256
    web_jpeg_prob: float = 0.8  # lossless originals: chance of one whole-image JPEG before cropping
    web_jpeg_quality: tuple[int, int] = (70, 95)  # (most real photos come as JPEG: about this share and range)
    jpeg_prob: float = 0.75  # every crop, both classes: chance of a JPEG round trip
    jpeg_quality: tuple[int, int] = (75, 100)


@dataclass(frozen=True)
class CropPlan:
    """How one output image is made from its source (a pure function of the seed and the row)."""

    x: int
    y: int
    web_jpeg: int | None
    jpeg: int | None


def is_lossy(fmt: str | None, data: bytes) -> bool:
    """Whether the original file carries lossy coding (JPEG, or WebP's VP8 rather than VP8L)."""
    if fmt in ("JPEG", "MPO"):
        return True
    if fmt == "WEBP":
        return b"VP8 " in data[:64]
    return False


def source_format(data: bytes) -> str | None:
    """The container format of encoded bytes, from the header only."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except Exception:  # noqa: BLE001 (decode errors are reported by the decoder, not here)
        return None


def jpeg_round_trip(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = Image.open(buf).convert("RGB")
    out.load()
    return out


def plan_crops(rng: random.Random, width: int, height: int, count: int, lossy: bool, recipe: Recipe) -> list[CropPlan]:
    """Up to `count` crops at distinct cells of a grid over the image (non-overlapping when it fits), each
    at a random offset inside its cell."""
    c = recipe.crop
    if width < c or height < c:
        return []
    nx, ny = max(1, width // c), max(1, height // c)
    cells = [(i, j) for j in range(ny) for i in range(nx)]
    rng.shuffle(cells)
    web = None
    if not lossy and rng.random() < recipe.web_jpeg_prob:
        web = rng.randint(*recipe.web_jpeg_quality)
    plans = []
    for i, j in cells[: max(1, count)]:
        x0, x1 = i * (width - c) // nx, (i + 1) * (width - c) // nx
        y0, y1 = j * (height - c) // ny, (j + 1) * (height - c) // ny
        x, y = rng.randint(x0, max(x0, x1)), rng.randint(y0, max(y0, y1))
        jpeg = rng.randint(*recipe.jpeg_quality) if rng.random() < recipe.jpeg_prob else None
        plans.append(CropPlan(x, y, web, jpeg))
    return plans


def render(image: Image.Image, plan: CropPlan, recipe: Recipe,
           transform: Callable[[Image.Image], Image.Image] | None = None) -> tuple[bytes, np.ndarray]:
    """PNG bytes of one planned crop, and its pixels as stored. `transform` acts on the crop before the
    last JPEG step (an aligned fake: the crop through a generator's autoencoder)."""
    img = image.convert("RGB")
    if plan.web_jpeg is not None:
        img = jpeg_round_trip(img, plan.web_jpeg)
    c = recipe.crop
    img = img.crop((plan.x, plan.y, plan.x + c, plan.y + c))
    if transform is not None:
        img = transform(img)
    if plan.jpeg is not None:
        img = jpeg_round_trip(img, plan.jpeg)
    data = encode_png(img)
    return data, np.asarray(img)
