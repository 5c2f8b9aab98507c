"""Shortcut audit: can the label be read off the container alone?

A detector learns whatever separates its classes. If file size, image size or JPEG history already
separates real from fake, a high score means nothing. This fits a logistic regression on those features
alone (cross-validated) and reports its ROC-AUC: near 0.5 is what a fair dataset gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FEATURES = ("log_bytes", "width", "height", "jpeg_blockiness")


def jpeg_blockiness(pixels: np.ndarray) -> float:
    """Strength of an 8x8 block grid at its best phase: mean |difference| of luminance across the grid
    lines over the mean elsewhere (1.0 = no grid). A JPEG history leaves > 1 even when the crop shifted
    the grid, since every phase is tried."""
    g = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    best = 1.0
    for axis in (0, 1):
        d = np.abs(np.diff(g, axis=axis)).mean(axis=1 - axis)  # mean |diff| per line
        n = d.shape[0] - d.shape[0] % 8
        if n < 16:
            continue
        per_phase = d[:n].reshape(-1, 8).mean(axis=0)
        best = max(best, float(per_phase.max() / (np.median(per_phase) + 1e-6)))
    return best


@dataclass
class AuditResult:
    auc: float
    n: int
    per_feature_auc: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {"features": list(FEATURES), "auc": round(self.auc, 4), "n": self.n,
                "per_feature_auc": {k: round(v, 4) for k, v in self.per_feature_auc.items()}}


def shortcut_audit(features: Sequence[Sequence[float]], labels: Sequence[int], seed: int = 0) -> AuditResult:
    """5-fold cross-validated AUC of a logistic regression on container features (label 1 = fake)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if len(set(y.tolist())) < 2 or min(np.bincount(y)) < 5:
        return AuditResult(float("nan"), len(y), {})
    folds = StratifiedKFold(n_splits=min(5, int(min(np.bincount(y)))), shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    per = {}
    for i, name in enumerate(FEATURES):
        col = x[:, i]
        if np.ptp(col) == 0:
            per[name] = 0.5
        else:
            a = float(roc_auc_score(y, col))
            per[name] = max(a, 1.0 - a)  # either direction counts as a shortcut
    return AuditResult(float(roc_auc_score(y, scores)), len(y), per)
