"""Measurements respond to the traces they claim to measure (and not to their absence)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from fakereasoning.evidence.measure import laplacian_variance, measure


def _noise(seed: int = 0, size: int = 128, sigma: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(128, 60, (size, size, 3)), (3, 3, 0))
    return np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)


def test_period_two_trace_gives_a_spectral_peak_and_npr_grid() -> None:
    natural = measure(_noise())
    assert natural.peak_ratio[2] < 1.4 and abs(natural.npr_ratio - 1) < 0.05
    low = _noise(1, 64)
    upsampled = np.repeat(np.repeat(low, 2, axis=0), 2, axis=1)  # nearest x2: a 2-pixel grid
    m = measure(upsampled)
    assert m.npr_ratio < 0.8
    checker = _noise(2).astype(np.float32)
    checker[::2, ::2] += 12  # a transposed-conv style checkerboard
    m2 = measure(np.clip(checker, 0, 255).astype(np.uint8))
    assert m2.peak_ratio[2] > 2.0 and m2.strongest_period()[0] == 2


def test_sharpness_and_noise_consistency() -> None:
    img = _noise()
    blurred = ndimage.gaussian_filter(img.astype(float), (2, 2, 0)).astype(np.uint8)
    assert measure(blurred).sharpness < measure(img).sharpness / 4
    assert laplacian_variance(img) == pytest.approx(measure(img).sharpness)
    uneven = _noise(sigma=2.0).astype(np.float32)
    uneven[:, 64:] += np.random.default_rng(3).normal(0, 25, uneven[:, 64:].shape)
    m = measure(np.clip(uneven, 0, 255).astype(np.uint8))
    assert m.noise_cv > 0.45 and m.noise_tiles[1] > 3 * m.noise_tiles[0]
    assert measure(_noise()).noise_cv < 0.3


def test_colour_lighting_and_inputs() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0] = 200
    img[:, 32:, 1] = 100
    m = measure(Image.fromarray(img))
    assert m.cast[0] > 50 and m.light_dx > 0 and m.width == 64
    gray = measure(np.full((40, 50), 128, np.uint8))
    assert gray.saturation == 0 and gray.height == 40
    with pytest.raises(ValueError):
        measure(np.zeros((4, 4, 2), np.uint8))
    assert set(m.to_dict()["peak_ratio"]) == {"2", "4", "8"}
