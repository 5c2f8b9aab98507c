"""Statistics: hand-made cases with exact answers, and the properties an interval must have."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fakereasoning.evaluate.stats import (
    balanced_accuracy,
    bootstrap_intervals,
    calibration_bins,
    choose_threshold,
    ece_from_bins,
    percentile_interval,
    resample_metrics,
    set_rng,
    small_sample_warnings,
)
from fakereasoning.models.cpm import expected_calibration_error


def noisy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n reals and n fakes whose p(fake) overlaps (accuracy about 0.84, AUC about 0.92)."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * n + [1] * n)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, 2 * n) + 2.0 * (y - 0.5))))
    return y, p


def test_balanced_accuracy_by_hand() -> None:
    y, p = [1, 1, 1, 0], [0.9, 0.9, 0.1, 0.1]
    assert balanced_accuracy(y, p) == pytest.approx((2 / 3 + 1) / 2)
    assert balanced_accuracy(y, p, threshold=0.05) == pytest.approx(0.5)  # all called fake
    assert balanced_accuracy([1, 1], [0.9, 0.2]) == 0.5  # one class: its own accuracy
    assert balanced_accuracy([], []) is None


def test_choose_threshold_exact() -> None:
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.3, 0.35, 0.9]) == pytest.approx(0.325)
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.5  # 0.5 already separates: nearest 0.5 wins
    assert choose_threshold([0, 1, 0, 1], [0.6, 0.7, 0.65, 0.8]) == pytest.approx(0.675)
    with pytest.raises(ValueError, match="real and fake"):
        choose_threshold([1, 1], [0.2, 0.3])


def test_hand_made_bootstrap_distribution() -> None:
    """One real (wrongly scored 0.6) and two fakes (0.9 right, 0.1 wrong): every resample's fake half is
    {0.9,0.9}, {0.9,0.1} or {0.1,0.1}, so balanced accuracy is 0.5, 0.25 or 0 and AUC 1, 0.5 or 0."""
    s = resample_metrics([0, 1, 1], [0.6, 0.9, 0.1], {"": 0.5}, 1000, set_rng(0, "x"))
    assert set(np.round(s["bal_acc"], 6)) == {0.0, 0.25, 0.5}
    assert set(np.round(s["auc"], 6)) == {0.0, 0.5, 1.0}
    assert np.mean(s["bal_acc"] == 0.25) == pytest.approx(0.5, abs=0.05)
    assert percentile_interval(s["bal_acc"]) == [0.0, 0.5]
    assert percentile_interval(s["auc"]) == [0.0, 1.0]
    ties = resample_metrics([0, 1], [0.5, 0.5], {"": 0.5}, 50, set_rng(0, "t"))
    assert percentile_interval(ties["auc"]) == [0.5, 0.5]  # a tie counts half
    perfect = resample_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.7], {"": 0.5}, 200, set_rng(0, "p"))
    assert percentile_interval(perfect["acc"]) == [1.0, 1.0] and percentile_interval(perfect["auc"]) == [1.0, 1.0]


def test_interval_covers_point_estimate_and_auc_matches_sklearn() -> None:
    y, p = noisy(150)
    s = resample_metrics(y, p, {"": 0.5}, 1000, set_rng(1, "a"))
    point = {"acc": float(((p >= 0.5) == y).mean()), "bal_acc": balanced_accuracy(y, p), "auc": roc_auc_score(y, p)}
    for k, v in point.items():
        lo, hi = percentile_interval(s[k])
        assert lo < v < hi, k
        assert hi - lo < 0.2, k
    assert np.mean(s["auc"]) == pytest.approx(point["auc"], abs=0.01)  # class order in the rank formula


def test_interval_shrinks_with_n() -> None:
    widths = []
    for n in (20, 400):
        y, p = noisy(n, seed=3)
        lo, hi = percentile_interval(resample_metrics(y, p, {"": 0.5}, 1000, set_rng(0, "s"))["bal_acc"])
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2.5  # about 1/sqrt(20) of the width


def test_seeded_and_independent_of_other_sets() -> None:
    y, p = noisy(30)
    a = bootstrap_intervals({"a": (y, p)}, {}, seed=7)
    b = bootstrap_intervals({"a": (y, p), "b": noisy(30, 1)}, {}, seed=7)
    c = bootstrap_intervals({"a": (y, p)}, {}, seed=8)
    assert a["sets"]["a"] == b["sets"]["a"]
    assert a["sets"]["a"] != c["sets"]["a"]


def test_mean_interval_averages_sets_resample_by_resample() -> None:
    sets = {"a": noisy(60, 1), "b": noisy(60, 2), "one_class": (np.array([1, 1, 1]), np.array([0.9, 0.8, 0.2]))}
    out = bootstrap_intervals(sets, {"mean": list(sets), "pair": ["a", "b"]}, threshold=0.4, resamples=1000)
    width = {k: v["bal_acc"][1] - v["bal_acc"][0] for k, v in out["sets"].items() if k != "one_class"}
    pair = out["pair"]["bal_acc"]
    assert pair[1] - pair[0] < min(width.values())  # averaging two independent sets narrows the interval
    assert "auc" not in out["sets"]["one_class"] and "auc" in out["mean"]  # AUC mean over a and b only
    assert "acc_cal" in out["sets"]["a"] and out["level"] == 0.95 and out["resamples"] == 1000


def test_reliability_bins_give_the_ece() -> None:
    rng = np.random.default_rng(0)
    p, y = rng.uniform(0, 1, 500), rng.integers(0, 2, 500)
    bins = calibration_bins(p, y)
    assert sum(b["count"] for b in bins) == 500
    assert ece_from_bins(bins) == pytest.approx(expected_calibration_error(p, y))
    assert all(0.5 <= b["confidence"] <= 1.0 for b in bins)
    single = calibration_bins([0.99, 0.98, 0.01], [1, 1, 1])
    assert [b["count"] for b in single] == [3] and single[0]["accuracy"] == pytest.approx(2 / 3)


def test_small_sample_warnings() -> None:
    w = small_sample_warnings({"a": (29, 40), "b": (30, 30), "c": (0, 5)})
    assert len(w) == 2
    assert w[0].startswith("set a: 29 real / 40 fake images, fewer than 30 per class")
    assert w[1].startswith("set c: no real images")
