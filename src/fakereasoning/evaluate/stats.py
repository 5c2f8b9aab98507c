"""Statistics that say how much a number is worth: seeded bootstrap intervals (stratified by class),
balanced accuracy, a decision threshold chosen on a stated calibration set, reliability bins, and
small-sample warnings.

Labels `y` are 1 = fake, 0 = real; `p` is p(fake); an image is called fake iff p >= threshold.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LEVEL = 0.95
RESAMPLES = 1000
MIN_PER_CLASS = 30  # below this per class, a set's metrics (and bootstrap intervals) are not to be trusted
_CHUNK_CELLS = 4_000_000  # resamples x images held in memory at once


def _arrays(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ya = np.asarray(y, dtype=np.int64).reshape(-1)
    pa = np.asarray(p, dtype=np.float64).reshape(-1)
    if ya.shape != pa.shape:
        raise ValueError(f"labels and probabilities differ in size: {ya.shape} vs {pa.shape}")
    return ya, pa


def balanced_accuracy(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
                      threshold: float = 0.5) -> float | None:
    """Mean of the per-class accuracies of the classes present (None without images): what accuracy
    would be on a balanced test set, whatever this one's class mix."""
    ya, pa = _arrays(y, p)
    pred = (pa >= threshold).astype(np.int64)
    recalls = [float((pred[ya == c] == c).mean()) for c in (0, 1) if (ya == c).any()]
    return float(np.mean(recalls)) if recalls else None


def choose_threshold(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """The threshold with the highest balanced accuracy on (y, p); ties go to the one nearest 0.5.

    Candidates are 0.5 and the midpoints between neighbouring distinct probabilities (a threshold on a
    sample's own value would overfit that sample). Raises ValueError unless both classes are present.
    """
    ya, pa = _arrays(y, p)
    if not ((ya == 0).any() and (ya == 1).any()):
        raise ValueError("a calibration set needs real and fake images to choose a threshold")
    u = np.unique(pa)
    candidates = np.unique(np.concatenate([[0.5], (u[:-1] + u[1:]) / 2.0]))
    fakes, reals = np.sort(pa[ya == 1]), np.sort(pa[ya == 0])
    tpr = 1.0 - np.searchsorted(fakes, candidates, side="left") / fakes.size
    tnr = np.searchsorted(reals, candidates, side="left") / reals.size
    bal = (tpr + tnr) / 2.0
    best = np.flatnonzero(bal >= bal.max() - 1e-12)
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def set_rng(seed: int, name: str) -> np.random.Generator:
    """A set's own random stream: its interval does not depend on which other sets were evaluated."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def resample_metrics(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
                     thresholds: Mapping[str, float], resamples: int, rng: np.random.Generator
                     ) -> dict[str, np.ndarray]:
    """Each metric over RESAMPLES stratified bootstrap resamples (each class resampled with replacement
    to its own size): `acc<suffix>` and `bal_acc<suffix>` per threshold suffix, and `auc` when both
    classes are present. Arrays of length RESAMPLES."""
    ya, pa = _arrays(y, p)
    order = np.concatenate([np.flatnonzero(ya == 0), np.flatnonzero(ya == 1)])
    n_real, n_fake = int((ya == 0).sum()), int((ya == 1).sum())
    n = n_real + n_fake
    out: dict[str, list[np.ndarray]] = {}
    if n == 0 or resamples < 1:
        return {}
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        cols = []
        if n_real:
            cols.append(order[:n_real][rng.integers(0, n_real, (b, n_real))])
        if n_fake:
            cols.append(order[n_real:][rng.integers(0, n_fake, (b, n_fake))])
        idx = np.concatenate(cols, axis=1)
        pb = pa[idx]
        for suffix, t in thresholds.items():
            pred = pb >= t
            recalls = []
            if n_real:
                recalls.append(1.0 - pred[:, :n_real].mean(axis=1))
            if n_fake:
                recalls.append(pred[:, n_real:].mean(axis=1))
            correct = np.concatenate([~pred[:, :n_real], pred[:, n_real:]], axis=1)
            out.setdefault(f"acc{suffix}", []).append(correct.mean(axis=1))
            out.setdefault(f"bal_acc{suffix}", []).append(np.mean(recalls, axis=0))
        if n_real and n_fake:
            from scipy.stats import rankdata

            ranks = rankdata(pb, axis=1)  # average ranks for ties: AUC counts a tie as half a win
            auc = (ranks[:, n_real:].sum(axis=1) - n_fake * (n_fake + 1) / 2.0) / (n_real * n_fake)
            out.setdefault("auc", []).append(auc)
    return {k: np.concatenate(v) for k, v in out.items()}


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """[low, high]: the central LEVEL share of the bootstrap distribution."""
    s = np.asarray(samples, dtype=np.float64)
    if s.size == 0:
        return None
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(s, [a, 1.0 - a])
    return [float(lo), float(hi)]


def bootstrap_intervals(by_set: Mapping[str, tuple[np.ndarray, np.ndarray]], groups: Mapping[str, Sequence[str]],
                        threshold: float | None = None, resamples: int = RESAMPLES, seed: int = 0,
                        level: float = LEVEL) -> dict[str, Any]:
    """Intervals per set (`sets`) and for unweighted means over groups of sets (e.g. `mean`, `seen`,
    `unseen`). A group's resample k averages its sets' resample k, so the mean's interval carries each
    set's uncertainty; a set without a metric (one class: no AUC) is left out of that metric's mean."""
    thresholds = {"": 0.5, **({"_cal": float(threshold)} if threshold is not None else {})}
    samples = {name: resample_metrics(y, p, thresholds, resamples, set_rng(seed, name))
               for name, (y, p) in sorted(by_set.items())}
    keys = ["acc", "bal_acc", "auc"] + (["acc_cal", "bal_acc_cal"] if threshold is not None else [])
    out: dict[str, Any] = {
        "level": level, "resamples": resamples, "seed": seed,
        "method": "percentile bootstrap, each class resampled with replacement to its own size",
        "sets": {name: {k: percentile_interval(s[k], level) for k in keys if k in s} for name, s in samples.items()},
    }
    for group, names in groups.items():
        entry: dict[str, list[float] | None] = {}
        for k in keys:
            stack = [samples[n][k] for n in names if n in samples and k in samples[n]]
            if stack:
                entry[k] = percentile_interval(np.mean(stack, axis=0), level)
        out[group] = entry
    return out


def small_sample_warnings(counts: Mapping[str, tuple[int, int]], min_per_class: int = MIN_PER_CLASS) -> list[str]:
    """One warning per set with fewer than MIN_PER_CLASS images of a class (counts: set -> (real, fake))."""
    out = []
    for name, (real, fake) in sorted(counts.items()):
        if min(real, fake) == 0:
            missing = "real" if real == 0 else "fake"
            out.append(f"set {name}: no {missing} images: AUC and AP are undefined, balanced accuracy is one "
                       "class's accuracy")
        elif min(real, fake) < min_per_class:
            out.append(f"set {name}: {real} real / {fake} fake images, fewer than {min_per_class} per class: its "
                       "numbers can swing widely with a few images, and bootstrap intervals are too narrow at "
                       "this size")
    return out


def calibration_bins(p: Sequence[float] | np.ndarray, y: Sequence[int] | np.ndarray, bins: int = 15
                     ) -> list[dict[str, float | int]]:
    """The non-empty confidence bins of the reliability diagram (the binning of
    `models.cpm.expected_calibration_error`): edges, count, mean confidence, accuracy."""
    ya, pa = _arrays(y, p)
    pred = (pa >= 0.5).astype(np.int64)
    conf = np.where(pred == 1, pa, 1.0 - pa)
    correct = (pred == ya).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out: list[dict[str, float | int]] = []
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        sel = (conf > lo) & (conf <= hi) if i else (conf >= lo) & (conf <= hi)
        if sel.any():
            out.append({"lo": float(lo), "hi": float(hi), "count": int(sel.sum()),
                        "confidence": float(conf[sel].mean()), "accuracy": float(correct[sel].mean())})
    return out


def ece_from_bins(bins: Sequence[Mapping[str, float | int]]) -> float:
    total = sum(int(b["count"]) for b in bins)
    if not total:
        return 0.0
    return float(sum(int(b["count"]) / total * abs(float(b["accuracy"]) - float(b["confidence"])) for b in bins))
