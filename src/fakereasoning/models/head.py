"""The detection head: a linear read-out of frozen statistics, fitted in closed form and calibrated out of fold.

Why a fitted head rather than one trained by SGD inside the language model's loop:
- the frozen feature space with a light linear read-out is what transfers to unseen generators
  (GENERALIZATION.md: UnivFD-style probes beat fine-tuned CNNs there), and the language model's own
  verdict-token margin added nothing measurable on top of it (bench/results/NOT_SHIPPED.md: probe 0.745 vs
  model 0.747 held-out AUC);
- fitted from class moments, the head is exact and cheap, so leave-family-out cross-validation (choosing
  the ridge strength, and giving out-of-fold logits to calibrate on) costs seconds, and the bench can
  measure the very recipe that ships (`bench/lofo.py` calls the same functions).

The fit is balanced shrinkage LDA: with per-class means m0, m1 and the class-balanced covariance S of the
features, standardised by their spread d, w = (R + lam I)^-1 r with R = d^-1/2 S d^-1/2 and
r = d^-1/2 (m1 - m0) / 2 (ridge regression of a +-1 target with equal class weights). The class moments add
up over folds, so leaving a fold out is a subtraction, not a refit over the data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


class HeadError(ValueError):
    """A head that cannot be fitted from the data given (one class missing, no features)."""


@dataclass
class Moments:
    """Sufficient statistics of features per class (index 0 real, 1 fake): counts, sums, sums of outer
    products (float64)."""

    n: np.ndarray  # (2,)
    s: np.ndarray  # (2, D)
    q: np.ndarray  # (2, D, D)

    @classmethod
    def zeros(cls, dim: int) -> Moments:
        return cls(np.zeros(2), np.zeros((2, dim)), np.zeros((2, dim, dim)))

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> Moments:
        """`weight`: per-row weights (e.g. `group_weights`); None: every row counts once."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y).astype(int).reshape(-1)
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
        m = cls.zeros(x.shape[1])
        for c in (0, 1):
            sel = y == c
            xc, wc = x[sel], w[sel]
            m.n[c] = wc.sum()
            m.s[c] = wc @ xc
            m.q[c] = (xc * wc[:, None]).T @ xc
        return m

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.s + other.s, self.q + other.q)

    def __sub__(self, other: Moments) -> Moments:
        return Moments(self.n - other.n, self.s - other.s, self.q - other.q)


@dataclass
class LinearHead:
    """logit = features @ weight + bias, on raw (unstandardised) features: what the model's head layer holds."""

    weight: np.ndarray  # (D,)
    bias: float
    lam: float = 0.0

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.weight + self.bias


def fit_from_moments(m: Moments, lam: float) -> LinearHead:
    """Balanced shrinkage LDA (see the module docstring); `lam` is relative to unit-variance features."""
    if m.n.min() <= 0:
        raise HeadError("the detection head needs both real and fake training images")
    mean_c = m.s / m.n[:, None]  # (2, D)
    second = (m.q[0] / m.n[0] + m.q[1] / m.n[1]) / 2
    mu = mean_c.mean(0)
    # class-balanced within-class covariance: E_c[xx'] - E_c[m_c m_c'], pooled with equal class weights
    within = second - (np.outer(mean_c[0], mean_c[0]) + np.outer(mean_c[1], mean_c[1])) / 2
    spread = np.sqrt(np.clip(np.diag(within), 1e-12, None))
    corr = within / np.outer(spread, spread)
    r = (mean_c[1] - mean_c[0]) / 2 / spread
    corr[np.diag_indices_from(corr)] += lam
    w_std = np.linalg.solve(corr, r)
    weight = w_std / spread
    return LinearHead(weight, float(-mu @ weight), lam)


def fit_head(x: np.ndarray, y: np.ndarray, lam: float, weight: np.ndarray | None = None) -> LinearHead:
    return fit_from_moments(Moments.of(x, y, weight), lam)


MIN_GROUP_ROWS = 100


def group_weights(groups: Sequence[object], minimum: int = MIN_GROUP_ROWS) -> np.ndarray:
    """Per-row weights under which every group (a fake family, a real source) weighs the same, groups
    smaller than `minimum` rows counted as that many (so a handful of images never outweighs a family),
    scaled to a mean of 1. Why: generator diversity, not the volume of one family, is what transfers."""
    keys = list(groups)
    counts = Counter(keys)
    w = np.array([1.0 / max(counts[g], minimum) for g in keys])
    return w * (len(w) / w.sum()) if len(w) else w


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(set(y.tolist())) == 2 else float("nan")


@dataclass
class CrossValidation:
    """Leave-fold-out fits of the head: the ridge strength chosen by mean fold AUC, the out-of-fold logits
    at that strength (what calibration is fitted on), and the per-strength table."""

    lam: float
    oof: np.ndarray  # out-of-fold logit of every sample with a fold (nan for always-train samples)
    table: dict[float, float]  # lam -> mean fold AUC
    fold_auc: list[float]


def cross_validate(x: np.ndarray, y: np.ndarray, folds: np.ndarray,
                   lambdas: Sequence[float] = DEFAULT_LAMBDAS, weight: np.ndarray | None = None
                   ) -> CrossValidation:
    """For each fold k >= 0: fit on everything else (fold -1 = always in training), score fold k.
    `weight`: per-row weights of the fits (the scores are per row, unweighted)."""
    y = np.asarray(y).astype(int)
    folds = np.asarray(folds)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    ids = sorted(int(k) for k in set(folds.tolist()) if k >= 0)
    if len(ids) < 2:
        raise HeadError("cross-validation needs at least two folds")
    moments = [Moments.of(x[folds == k], y[folds == k], w[folds == k]) for k in ids]
    always = Moments.of(x[folds < 0], y[folds < 0], w[folds < 0]) if (folds < 0).any() else Moments.zeros(x.shape[1])
    total = always
    for m in moments:
        total = total + m
    table: dict[float, float] = {}
    per_lam: dict[float, tuple[np.ndarray, list[float]]] = {}
    for lam in lambdas:
        oof = np.full(len(y), np.nan)
        aucs = []
        for k, m in zip(ids, moments, strict=True):
            head = fit_from_moments(total - m, lam)
            sel = folds == k
            oof[sel] = head.logits(x[sel])
            aucs.append(_auc(y[sel], oof[sel]))
        table[float(lam)] = float(np.nanmean(aucs))
        per_lam[float(lam)] = (oof, aucs)
    best = max(table, key=lambda k: (table[k], -k))
    return CrossValidation(best, per_lam[best][0], table, per_lam[best][1])


def mean_by_group(values: np.ndarray, groups: Sequence[object]) -> tuple[np.ndarray, list[object]]:
    """Mean of per-crop logits per image (multi-crop aggregation), in first-seen group order."""
    order: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        order.setdefault(g, []).append(i)
    keys = list(order)
    return np.array([float(np.mean(values[order[g]])) for g in keys]), keys


def crossfit_platt(margins: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> list[tuple[float, float]]:
    """Per fold k, the Platt map (T, bias) fitted on the out-of-fold margins and labels of every other fold:
    calibration that never reads the fold it is applied to (used where nesting the fit is too costly)."""
    from fakereasoning.models.cpm import fit_platt

    maps = []
    for k in range(len(margins)):
        m = np.concatenate([np.asarray(v, dtype=np.float64) for j, v in enumerate(margins) if j != k])
        y = np.concatenate([np.asarray(v) for j, v in enumerate(labels) if j != k])
        maps.append(fit_platt(m, y))
    return maps
