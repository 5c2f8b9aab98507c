"""Cheap forensic measurements of one image (about 10 ms for 256 x 256 on one core).

Why these: learned upsampling leaves periodic peaks in the spectrum of the noise residual and a
difference between neighbouring pixels inside and across the upsampling grid (NPR); generators smooth or
over-sharpen (Laplacian variance), spread noise unevenly across regions, break edge continuity, and drift
in colour and lighting. Each number here is something a reasoning sentence can state and a reader can check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

PERIODS = (2, 4, 8)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Measurements:
    """What `measure` found. Intensities are on the 0-255 scale."""

    width: int
    height: int
    peak_ratio: dict[int, float]  # period -> spectral peak / local median of the residual spectrum
    npr_ratio: float  # mean |difference| inside 2x2 cells / across cell borders (1.0 = no grid)
    sharpness: float  # variance of the Laplacian of luminance
    noise_level: float  # robust (MAD) noise sigma of the residual
    noise_cv: float  # coefficient of variation of the per-tile noise sigma
    noise_tiles: tuple[float, float]  # lowest and highest per-tile noise sigma
    edge_density: float  # fraction of pixels on strong edges
    edge_coherence: float  # mean structure-tensor coherence on edges (1 = straight, continuous)
    brightness: float
    contrast: float
    light_dx: float  # right minus left mean luminance
    light_dy: float  # bottom minus top mean luminance
    clipped_high: float  # fraction of near-white pixels
    clipped_low: float  # fraction of near-black pixels
    saturation: float  # mean chroma
    cast: tuple[float, float]  # mean (R - G, B - (R + G) / 2)

    def strongest_period(self) -> tuple[int, float]:
        period = max(self.peak_ratio, key=lambda p: self.peak_ratio[p])
        return period, self.peak_ratio[period]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["peak_ratio"] = {str(k): v for k, v in self.peak_ratio.items()}
        return out


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected an RGB image array (H x W x 3), got shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255)
    return arr.astype(np.float32)


def _peak_ratios(residual: np.ndarray) -> dict[int, float]:
    """Peaks of the mean 1-D amplitude spectra (rows and columns) at the frequencies of periods 2, 4, 8."""
    out: dict[int, float] = {}
    spectra = []
    for axis in (0, 1):
        n = residual.shape[1 - axis]
        spec = np.abs(np.fft.rfft(residual, axis=1 - axis)).mean(axis=axis)
        spectra.append((n, spec))
    for period in PERIODS:
        best = 1.0
        for n, spec in spectra:
            if n < 4 * period:
                continue
            k = n / period
            ki = int(round(k))
            if abs(k - ki) > 1e-6 or ki >= spec.shape[0]:
                continue
            lo, hi = max(1, ki - 6), min(spec.shape[0], ki + 7)
            neighbours = np.concatenate([spec[lo : ki - 1], spec[ki + 2 : hi]])
            if neighbours.size == 0:
                continue
            best = max(best, float(spec[ki] / (np.median(neighbours) + 1e-6)))
        out[period] = best
    return out


def _npr_ratio(gray: np.ndarray) -> float:
    """NPR-style: |x[2i]-x[2i+1]| against |x[2i+1]-x[2i+2]| along both axes."""
    h, w = (gray.shape[0] // 2) * 2, (gray.shape[1] // 2) * 2
    g = gray[:h, :w]
    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0))
    inside = dx[:, 0::2].mean() + dy[0::2, :].mean()
    across = dx[:, 1::2].mean() + dy[1::2, :].mean()
    return float(inside / (across + 1e-6))


def measure(image: Image.Image | np.ndarray, tiles: int = 4) -> Measurements:
    """Measure an RGB image (PIL or uint8 array)."""
    rgb = _as_array(image)
    h, w = rgb.shape[:2]
    gray = rgb @ _LUMA
    lap = ndimage.laplace(gray)
    residual = gray - ndimage.uniform_filter(gray, size=3, mode="reflect")
    peaks = _peak_ratios(residual)

    mad = np.abs(residual)  # the residual has zero mean; mean |r| * 1.2533 is sigma for Gaussian noise
    noise_level = float(np.median(mad) * 1.4826)
    th, tw = max(1, h // tiles), max(1, w // tiles)
    sig = []
    for i in range(tiles):
        for j in range(tiles):
            tile = mad[i * th : (i + 1) * th, j * tw : (j + 1) * tw]
            if tile.size:
                sig.append(float(tile.mean() * 1.2533))
    sig_arr = np.asarray(sig) if sig else np.zeros(1)
    noise_cv = float(sig_arr.std() / (sig_arr.mean() + 1e-6))

    gx = ndimage.sobel(gray, axis=1)
    gy = ndimage.sobel(gray, axis=0)
    mag = np.hypot(gx, gy)
    thresh = max(40.0, float(np.percentile(mag, 90)))
    edges = mag > thresh
    jxx = ndimage.uniform_filter(gx * gx, 3)
    jyy = ndimage.uniform_filter(gy * gy, 3)
    jxy = ndimage.uniform_filter(gx * gy, 3)
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-6)
    edge_coherence = float(coherence[edges].mean()) if edges.any() else 1.0

    half_w, half_h = w // 2, h // 2
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    return Measurements(
        width=w,
        height=h,
        peak_ratio=peaks,
        npr_ratio=_npr_ratio(gray),
        sharpness=float(lap.var()),
        noise_level=noise_level,
        noise_cv=noise_cv,
        noise_tiles=(float(sig_arr.min()), float(sig_arr.max())),
        edge_density=float(edges.mean()),
        edge_coherence=edge_coherence,
        brightness=float(gray.mean()),
        contrast=float(gray.std()),
        light_dx=float(gray[:, half_w:].mean() - gray[:, :half_w].mean()) if w > 1 else 0.0,
        light_dy=float(gray[half_h:].mean() - gray[:half_h].mean()) if h > 1 else 0.0,
        clipped_high=float((gray >= 250).mean()),
        clipped_low=float((gray <= 5).mean()),
        saturation=float(chroma.mean()),
        cast=(float((r - g).mean()), float((b - (r + g) / 2).mean())),
    )


def laplacian_variance(image: Image.Image | np.ndarray) -> float:
    """The sharpness statistic of the manifest (variance of the Laplacian of luminance)."""
    return float(ndimage.laplace(_as_array(image) @ _LUMA).var())
