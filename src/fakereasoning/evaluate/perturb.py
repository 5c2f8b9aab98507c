"""Robustness perturbations applied to images before detection: `jpeg:Q`, `resize:S`, `blur:SIGMA`, `noise:STD`."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from fakereasoning.errors import FakeReasoningError


@dataclass(frozen=True)
class Perturbation:
    kind: str
    value: float

    @property
    def name(self) -> str:
        v = int(self.value) if self.kind == "jpeg" else self.value
        return f"{self.kind}:{v}"

    def __call__(self, img: Image.Image, key: str = "") -> Image.Image:
        return _APPLY[self.kind](img, self.value, key)


def _jpeg(img: Image.Image, quality: float, _key: str) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _resize(img: Image.Image, scale: float, _key: str) -> Image.Image:
    w, h = img.size
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)


def _blur(img: Image.Image, sigma: float, _key: str) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=sigma))


def _noise(img: Image.Image, std: float, key: str) -> Image.Image:
    """Gaussian noise of `std` (in units of the full 0-1 range), seeded by the image key: reproducible."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr + np.random.default_rng(seed).normal(0.0, std, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8))


_APPLY: dict[str, Callable[[Image.Image, float, str], Image.Image]] = {
    "jpeg": _jpeg,
    "resize": _resize,
    "blur": _blur,
    "noise": _noise,
}
_RANGES = {"jpeg": (1, 100), "resize": (0.01, 8.0), "blur": (0.0, 50.0), "noise": (0.0, 1.0)}


def parse_perturbation(spec: str) -> Perturbation:
    """Parse `kind:value`, e.g. `jpeg:75`, `resize:0.5`, `blur:1.0`, `noise:0.02`."""
    kind, sep, value = spec.partition(":")
    if kind not in _APPLY or not sep:
        raise FakeReasoningError(f"perturbation {spec!r}: use one of jpeg:Q, resize:S, blur:SIGMA, noise:STD")
    try:
        number = float(value)
    except ValueError:
        raise FakeReasoningError(f"perturbation {spec!r}: {value!r} is not a number") from None
    lo, hi = _RANGES[kind]
    if not lo <= number <= hi:
        raise FakeReasoningError(f"perturbation {spec!r}: value must lie in [{lo}, {hi}]")
    return Perturbation(kind, number)


def compose(perturbations: list[Perturbation]) -> Callable[[Image.Image, str], Image.Image]:
    def apply(img: Image.Image, key: str = "") -> Image.Image:
        for p in perturbations:
            img = p(img, key)
        return img

    return apply
