"""Unit tests of the leave-family-out bench's own logic (no features): `pytest bench/test_lofo.py`.

The end-to-end check is `bench/lofo.py --quick`; these pin what a quick run cannot show wrong: per-family
metrics against the fold's own reals, multi-crop aggregation per source image, cross-fitted calibration."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


lofo = _load("lofo")


def _setup() -> tuple[list[Any], np.ndarray, Any, list[Any]]:
    from fakereasoning.data.public.folds import FoldPlan

    items, folds, n = [], [], 0
    plan = FoldPlan(2, {"famA": 0, "famB": 1}, {"srcA": 0, "srcB": 1})
    rng = np.random.default_rng(0)
    outs = []
    for k, (fam, src) in enumerate((("famA", "srcA"), ("famB", "srcB"))):
        logits: dict[int, float] = {}
        for label, group in ((1, fam), (0, src)):
            for s in range(20):
                for c in range(2):  # two native crops per source image
                    items.append(lofo.Item(n, f"{group}/{s}_{c}.png", label, group, f"{group}:{s}", "r", True, c == 0))
                    folds.append(k)
                    # famA well separated; famB only by the mean over crops
                    shift = (2.0 if k == 0 else (1.0 if c == 0 else -0.2)) * (1 if label else -1)
                    logits[n] = shift + rng.normal(0, 0.5)
                    n += 1
        outs.append(lofo.FoldOutput({"native": logits}, {}, None, None))
    return items, np.array(folds), plan, outs


def test_per_family_metrics_use_the_folds_own_reals_and_multi_crop_means() -> None:
    items, folds, plan, outs = _setup()
    res = lofo.summarise("x", outs, items, folds, plan, resamples=50, seed=0)
    native = res["crossfit"]["native"]
    assert set(native["families"]) == {"famA", "famB"}
    assert native["families"]["famA"]["fakes"] == 20 and native["families"]["famA"]["reals"] == 20  # first crops only
    assert native["families"]["famA"]["auc"] > 0.99
    multi = res["crossfit"]["multi"]
    assert multi["families"]["famB"]["fakes"] == 20
    assert set(native["real_fpr"]) == {"srcA", "srcB"}


def test_crossfit_maps_never_read_the_fold_they_calibrate() -> None:
    items, folds, plan, outs = _setup()
    a = lofo.summarise("x", outs, items, folds, plan, resamples=20, seed=0)
    flipped = [outs[0], lofo.FoldOutput({"native": {i: -v for i, v in outs[1].logits["native"].items()}}, {}, None, None)]
    b = lofo.summarise("x", flipped, items, folds, plan, resamples=20, seed=0)
    # fold 0's scores are untouched and its map comes from fold 1: its ranking (AUC) cannot change, while the
    # flipped fold 1, calibrated on fold 0, now ranks its fakes below its reals
    assert a["crossfit"]["native"]["families"]["famA"]["auc"] == b["crossfit"]["native"]["families"]["famA"]["auc"]
    assert b["crossfit"]["native"]["families"]["famB"]["auc"] < 0.5 < a["crossfit"]["native"]["families"]["famB"]["auc"]


def test_entry_outputs_are_cached_and_a_run_with_more_views_serves(tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> list[Any]:
        calls.append(1)
        return [lofo.FoldOutput({"native": {3: 0.5}, "jpeg95": {3: 0.25}}, {"photo": 1.0}, (0.5, -0.1), 1.0)]

    first = lofo.cached_outputs(tmp_path, "head-lite0-rows-2v", ["native", "jpeg95"], "k1", compute)
    again = lofo.cached_outputs(tmp_path, "head-lite0-rows-2v", ["native"], "k1", compute)
    assert len(calls) == 1 and again == first  # int item keys and the (T, bias) tuple survive JSON
    lofo.cached_outputs(tmp_path, "head-lite0-rows-2v", ["native", "multi"], "k1", compute)  # a view it lacks
    lofo.cached_outputs(tmp_path, "head-lite0-groups-2v", ["native"], "k1", compute)  # another fit
    lofo.cached_outputs(tmp_path, "head-lite0-rows-2v", ["native"], "k2", compute)  # other data or folds
    assert len(calls) == 4
