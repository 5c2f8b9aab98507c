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
    # Web-size copies (training crops only, both classes alike): with this chance a crop is cut from a
    # resampled copy of the image instead of the original. Images longer than `web_threshold` are brought
    # to a long side drawn from `web_long_side` (how large camera photos reach a user); smaller ones are
    # scaled by a factor from `rescale_factor`. Why: a detector that only saw camera-size reals learns
    # "sensor-scale detail = real" and flags downscaled photos (research/GENERALIZATION.md, December).
    rescale_prob: float = 0.0
    rescale_factor: tuple[float, float] = (0.5, 0.9)
    web_long_side: tuple[int, int] = (1024, 1600)
    web_threshold: int = 2048


@dataclass(frozen=True)
class CropPlan:
    """How one output image is made from its source (a pure function of the seed and the row)."""

    x: int
    y: int
    web_jpeg: int | None
    jpeg: int | None
    scale: float = 1.0  # the crop is cut from the image resampled by this factor (1.0: native pixels)


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


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size of an image resampled by `scale` (one rounding rule for planning and rendering)."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def _draw_scale(rng: random.Random, width: int, height: int, recipe: Recipe) -> float:
    """A web-size factor; for smaller images drawn only from factors that still leave room for a crop."""
    long_side = max(width, height)
    if long_side > recipe.web_threshold:
        return rng.randint(*recipe.web_long_side) / long_side
    lo, hi = recipe.rescale_factor
    lo = max(lo, (recipe.crop + 1) / min(width, height))
    return rng.uniform(lo, hi) if lo <= hi else 1.0


def plan_crops(rng: random.Random, width: int, height: int, count: int, lossy: bool, recipe: Recipe) -> list[CropPlan]:
    """Up to `count` crops at distinct cells of a grid over the image (non-overlapping when it fits), each
    at a random offset inside its cell; with `recipe.rescale_prob` some of them from a web-size copy."""
    c = recipe.crop
    if width < c or height < c:
        return []
    web = None
    if not lossy and rng.random() < recipe.web_jpeg_prob:
        web = rng.randint(*recipe.web_jpeg_quality)
    native = _grid(rng, width, height, c)
    plans = []
    for k in range(min(max(1, count), len(native))):
        scale = 1.0
        if recipe.rescale_prob and rng.random() < recipe.rescale_prob:
            scale = round(_draw_scale(rng, width, height, recipe), 4)  # as stored in the plan and rendered
            sw, sh = scaled_size(width, height, scale)
            cells = _grid(rng, sw, sh, c) if min(sw, sh) >= c else []
            x, y = cells[0] if cells else native[k]
            if not cells:
                scale = 1.0
        else:
            x, y = native[k]
        jpeg = rng.randint(*recipe.jpeg_quality) if rng.random() < recipe.jpeg_prob else None
        plans.append(CropPlan(x, y, web, jpeg, scale))
    return plans


def _grid(rng: random.Random, width: int, height: int, c: int) -> list[tuple[int, int]]:
    """Top-left corners of crops at the distinct cells of a grid over the image, in random order."""
    nx, ny = max(1, width // c), max(1, height // c)
    cells = [(i, j) for j in range(ny) for i in range(nx)]
    rng.shuffle(cells)
    out = []
    for i, j in cells:
        x0, x1 = i * (width - c) // nx, (i + 1) * (width - c) // nx
        y0, y1 = j * (height - c) // ny, (j + 1) * (height - c) // ny
        out.append((rng.randint(x0, max(x0, x1)), rng.randint(y0, max(y0, y1))))
    return out


def prepare(image: Image.Image, plan: CropPlan) -> Image.Image:
    """The whole image as shared before cropping: RGB, and the plan's web JPEG if it has one (the same for
    every crop of one image, so a build does this once per image)."""
    img = image.convert("RGB")
    return jpeg_round_trip(img, plan.web_jpeg) if plan.web_jpeg is not None else img


def render(image: Image.Image, plan: CropPlan, recipe: Recipe,
           transform: Callable[[Image.Image], Image.Image] | None = None,
           prepared: Image.Image | None = None) -> tuple[bytes, np.ndarray]:
    """PNG bytes of one planned crop, and its pixels as stored. `transform` acts on the crop before the
    last JPEG step (an aligned fake: the crop through a generator's autoencoder). `prepared`: the image
    after `prepare` when the caller already made it."""
    img = prepared if prepared is not None else prepare(image, plan)
    c = recipe.crop
    w, h = scaled_size(*img.size, plan.scale) if plan.scale != 1.0 else img.size
    if plan.x < 0 or plan.y < 0 or plan.x + c > w or plan.y + c > h:  # never pad a crop with made-up pixels
        raise ValueError(f"crop at ({plan.x}, {plan.y}) does not fit the {w}x{h} image (x{plan.scale})")
    if plan.scale != 1.0:
        # the crop of the resampled image, resampled from its source region only (PIL reads the filter's
        # support around the box), instead of resampling the whole image for every crop
        s, (w, h) = plan.scale, img.size
        box = (plan.x / s, plan.y / s, min(w, (plan.x + c) / s), min(h, (plan.y + c) / s))  # rounding of the size
        img = img.resize((c, c), Image.Resampling.LANCZOS, box=box)
    else:
        img = img.crop((plan.x, plan.y, plan.x + c, plan.y + c))
    if transform is not None:
        img = transform(img)
    if plan.jpeg is not None:
        img = jpeg_round_trip(img, plan.jpeg)
    data = encode_png(img)
    return data, np.asarray(img)
