"""The detection head: closed-form fit from class moments, fold arithmetic, out-of-fold logits."""

from __future__ import annotations

import numpy as np
import pytest

from fakereasoning.models.head import (
    HeadError,
    Moments,
    cross_validate,
    crossfit_platt,
    fit_from_moments,
    fit_head,
    mean_by_group,
)


def _data(n: int = 400, d: int = 12, shift: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(int)
    z = rng.normal(0, 1, (n, d))
    z[:, 0] += shift * y * 3
    z[:, 1] -= shift * y * 2
    return z * rng.uniform(0.5, 20, d) + rng.normal(0, 5, d), y  # scales and offsets vary


def test_head_separates_and_ignores_feature_scale() -> None:
    from sklearn.metrics import roc_auc_score

    x, y = _data()
    head = fit_head(x, y, 0.1)
    assert roc_auc_score(y, head.logits(x)) > 0.95
    scaled = fit_head(x * 1000.0, y, 0.1)  # standardised inside: the same scores
    assert np.allclose(head.logits(x), scaled.logits(x * 1000.0), atol=1e-6)


def test_leaving_a_fold_out_by_subtraction_equals_fitting_without_it() -> None:
    x, y = _data()
    folds = np.arange(len(y)) % 4
    total = Moments.of(x, y)
    left = total - Moments.of(x[folds == 2], y[folds == 2])
    a = fit_from_moments(left, 0.03)
    b = fit_head(x[folds != 2], y[folds != 2], 0.03)
    assert np.allclose(a.weight, b.weight) and np.isclose(a.bias, b.bias)


def test_out_of_fold_logits_come_from_heads_that_never_saw_the_fold() -> None:
    x, y = _data(shift=0.3)
    folds = np.arange(len(y)) % 3
    folds[:40] = -1  # always in training: no out-of-fold logit
    cv = cross_validate(x, y, folds, lambdas=(0.01, 1.0))
    assert np.isnan(cv.oof[:40]).all() and not np.isnan(cv.oof[40:]).any()
    for k in range(3):
        sel = folds == k
        expect = fit_head(x[~sel], y[~sel], cv.lam).logits(x[sel])
        assert np.allclose(cv.oof[sel], expect)
    assert set(cv.table) == {0.01, 1.0} and len(cv.fold_auc) == 3


def test_one_class_or_one_fold_is_an_error() -> None:
    x, y = _data()
    with pytest.raises(HeadError, match="both real and fake"):
        fit_head(x[y == 1], y[y == 1], 0.1)
    with pytest.raises(HeadError, match="two folds"):
        cross_validate(x, y, np.zeros(len(y), dtype=int))


def test_crossfit_calibration_never_reads_its_own_fold() -> None:
    rng = np.random.default_rng(1)
    margins = [rng.normal(0, 2, 50) + np.r_[np.zeros(25), np.ones(25)] * 2 for _ in range(3)]
    labels = [np.r_[np.zeros(25), np.ones(25)].astype(int) for _ in range(3)]
    maps = crossfit_platt(margins, labels)
    flipped = [*labels[:1], *labels[1:2], 1 - labels[2]]  # fold 2's labels changed: its own map must not move
    again = crossfit_platt(margins, flipped)
    assert maps[2] == again[2] and maps[0] != again[0]


def test_mean_by_group_averages_crops_per_image() -> None:
    means, keys = mean_by_group(np.array([1.0, 3.0, 5.0, -1.0]), ["a", "a", "b", "c"])
    assert keys == ["a", "b", "c"] and means.tolist() == [2.0, 5.0, -1.0]


def test_group_weights_give_every_group_one_share_and_cap_small_groups() -> None:
    from fakereasoning.models.head import group_weights

    groups = ["big"] * 400 + ["mid"] * 200 + ["tiny"] * 5
    w = group_weights(groups, minimum=100)
    assert np.isclose(w.mean(), 1.0)
    share = {g: w[np.array(groups) == g].sum() for g in ("big", "mid", "tiny")}
    assert np.isclose(share["big"], share["mid"]) and np.isclose(share["tiny"], share["big"] * 5 / 100)


def test_weighted_moments_equal_repeated_rows() -> None:
    x, y = _data(n=60)
    w = np.where(np.arange(60) < 20, 2.0, 1.0)
    repeated = np.r_[np.arange(60), np.arange(20)]
    a = fit_head(x, y, 0.1, w)
    b = fit_head(x[repeated], y[repeated], 0.1)
    assert np.allclose(a.weight, b.weight) and np.isclose(a.bias, b.bias)
