"""Stage 1 of training a model with a detection head (`model.verdict_head`): fit the head before the LM trains.

1. Frozen statistics of every training image, in `data.head_views` views: view 0 is the centre crop of the
   image as stored (what inference reads of an image that size), the others an augmented random crop each
   (the same augmentation as LM training: JPEG, blur, resampling, alike for both classes).
2. Leave-family-out folds over the training data (`data.public.folds`: modern generator families by fold,
   real photos by source; older families always train), when the layout names families (MMFR-Public's
   `1_fake/<family>/`, `0_real/<source>/` folders).
3. The ridge strength chosen by the mean held-out-fold AUC; the head fitted on everything; p(fake) calibrated
   (Platt) on the out-of-fold logits of view 0, so it stays honest on families the head has not seen.
Without families (two or more modern ones), the head is fitted on the training split and calibrated on the
held-out split (`data.val_fraction`).

The bench (`bench/lofo.py`) measures this very recipe: it calls `fold_plan`, `extract` and `fit`.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakereasoning.data.public.folds import ALWAYS_TRAIN, FoldPlan, plan_folds
from fakereasoning.errors import FakeReasoningError, ImageLoadError
from fakereasoning.fsio import atomic_write_bytes, atomic_write_json
from fakereasoning.imageio import load_image
from fakereasoning.models.cpm import expected_calibration_error, fit_platt
from fakereasoning.models.head import (
    DEFAULT_LAMBDAS,
    HeadError,
    LinearHead,
    cross_validate,
    fit_head,
    group_weights,
)
from fakereasoning.models.processor import forensic_crops
from fakereasoning.models.statistics import StatisticsExtractor, grid_crops
from fakereasoning.progress import Progress
from fakereasoning.train.config import DataConfig
from fakereasoning.train.data import TrainExample, augment

HEAD_REPORT = "head.json"
FEATURES_FILE = "head_features.npz"
LABEL_DIRS = ("0_real", "1_fake")


def family_and_source(image: str) -> str:
    """The folder an image sits in under its label folder (`1_fake/<family>/x.png`, `0_real/<source>/x.png`);
    '' when it sits in the label folder itself."""
    parts = Path(image).parts
    for i, part in enumerate(parts[:-1]):
        if part in LABEL_DIRS and i + 2 < len(parts):
            return parts[i + 1]
    return ""


def balance_group(example: TrainExample) -> str:
    """What a row is balanced against under data.head_balance = "groups": its training part, label and
    family or source folder (MMFR-Local's reals, in no source folder, are one group)."""
    return f"{example.set}/{example.label}/{family_and_source(example.image)}"


def fold_plan(examples: list[TrainExample], n_folds: int, parts: list[str] | None = None
              ) -> tuple[FoldPlan, np.ndarray]:
    """The folds of the training images and each image's fold (-1: always in training). `parts`: the
    training parts whose families are dealt into folds (None: all); images of other parts always train
    (e.g. MMFR-Local's locally trained generators, which are not the transfer being measured)."""
    groups = [family_and_source(e.image) if parts is None or e.set in parts else "" for e in examples]
    fakes = Counter(g for e, g in zip(examples, groups, strict=True) if e.label == "fake" and g)
    reals = Counter(g for e, g in zip(examples, groups, strict=True) if e.label == "real" and g)
    plan = plan_folds(fakes, reals, n_folds)
    folds = np.array([plan.fold_of(e.label, g, g) if plan.n_folds else ALWAYS_TRAIN
                      for e, g in zip(examples, groups, strict=True)])
    return plan, folds


def view_crop(example: TrainExample, view: int, cfg: DataConfig, crop: int, seed: int) -> torch.Tensor | None:
    """One view of a training image, (1, 3, crop, crop) in [0, 1]; None when the image cannot be read."""
    try:
        img = load_image(example.path, name=example.image)
    except ImageLoadError as exc:
        print(f"fakereasoning: warning: detection head: skipped {exc}", file=sys.stderr)
        return None
    if view == 0:
        return grid_crops(img, crop, 1)
    rng = random.Random(f"head:{seed}:{view}:{example.image}")
    return forensic_crops(augment(img, cfg, rng, example.label), crop, 1, rng, reflect=True)


def _cache_key(examples: list[TrainExample], cfg: DataConfig, views: int, crop: int, net: str, seed: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([views, crop, net, seed, cfg.jpeg_prob, list(cfg.jpeg_quality), cfg.blur_prob,
                         list(cfg.blur_sigma), cfg.resize_prob, list(cfg.resize_scale), cfg.real_blur_prob,
                         list(cfg.real_blur_sigma)]).encode())
    for e in examples:
        try:
            size = e.path.stat().st_size
        except OSError:
            size = -1
        h.update(f"{e.image}\0{e.label}\0{size}\n".encode())
    return h.hexdigest()


def extract(extractor: StatisticsExtractor, examples: list[TrainExample], cfg: DataConfig, views: int, crop: int,
            seed: int, cache: Path | None = None, progress: bool = True, batch_size: int = 32
            ) -> tuple[np.ndarray, np.ndarray]:
    """(features (M, D) float32, rows (M, 2) = [example index, view]) of every readable view; read from and
    written to `cache` (an .npz) when it holds the same examples, views and augmentation."""
    key = _cache_key(examples, cfg, views, crop, extractor.name, seed)
    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as data:
                if str(data["key"]) == key:
                    return data["x"], data["rows"]
        except (OSError, ValueError, KeyError):
            pass  # unreadable or another version: recomputed
    feats: list[np.ndarray] = []
    rows: list[tuple[int, int]] = []
    pending: list[torch.Tensor] = []
    pending_rows: list[tuple[int, int]] = []
    bar = Progress(len(examples) * views, "head features", "crop", enabled=progress)

    def flush() -> None:
        if pending:
            feats.append(extractor(torch.cat(pending)).astype(np.float32))
            rows.extend(pending_rows)
            pending.clear()
            pending_rows.clear()

    try:
        for i, e in enumerate(examples):
            for v in range(views):
                t = view_crop(e, v, cfg, crop, seed)
                bar.update(1)
                if t is None:
                    continue
                pending.append(t)
                pending_rows.append((i, v))
                if len(pending) >= batch_size:
                    flush()
        flush()
    finally:
        bar.close()
    x = np.concatenate(feats) if feats else np.zeros((0, extractor.dim), dtype=np.float32)
    r = np.array(rows, dtype=np.int64).reshape(-1, 2)
    if cache is not None:
        import io

        buf = io.BytesIO()
        np.savez(buf, key=np.array(key), x=x, rows=r)
        atomic_write_bytes(cache, buf.getvalue())
    return x, r


@dataclass
class HeadFit:
    head: LinearHead
    temperature: float
    bias: float
    report: dict[str, Any]


def fit(x: np.ndarray, y: np.ndarray, folds: np.ndarray, view: np.ndarray,
        lambdas: tuple[float, ...] = DEFAULT_LAMBDAS, calib_x: np.ndarray | None = None,
        calib_y: np.ndarray | None = None, weight: np.ndarray | None = None) -> HeadFit:
    """The head on every row (all views), the ridge strength by leave-fold-out AUC, Platt scaling on the
    out-of-fold logits of view 0 (or, without folds, on `calib_x`/`calib_y`). `weight`: per-row weights
    of the fits (`group_weights` for data.head_balance = "groups")."""
    y = np.asarray(y).astype(int)
    report: dict[str, Any] = {"rows": int(len(y)), "real": int((y == 0).sum()), "fake": int((y == 1).sum())}
    if len({int(k) for k in folds if k >= 0}) >= 2:
        cv = cross_validate(x, y, folds, lambdas, weight)
        lam = cv.lam
        sel = (folds >= 0) & (view == 0)
        margins, labels = cv.oof[sel], y[sel]
        report.update({"calibration": "out-of-fold logits of leave-family-out fits (view 0)",
                       "cv_auc_by_lambda": {f"{k:g}": v for k, v in cv.table.items()},
                       "fold_auc": cv.fold_auc})
    else:
        if calib_x is None or calib_y is None or len(set(np.asarray(calib_y).tolist())) < 2:
            raise HeadError("the detection head needs leave-family-out folds (two or more modern generator "
                            "families and real sources) or a held-out split with both classes to calibrate on")
        lam = 0.1
        margins, labels = fit_head(x, y, lam, weight).logits(calib_x), np.asarray(calib_y).astype(int)
        report["calibration"] = "held-out split of the training images"
    head = fit_head(x, y, lam, weight)
    t, b = fit_platt(margins, labels)
    from scipy.special import expit

    p = expit(margins / t + b)
    report.update({"lambda": lam, "temperature": t, "bias": b, "calibration_rows": int(len(labels)),
                   "ece_after": expected_calibration_error(p, labels),
                   "bal_acc_after": float(np.mean([((p >= 0.5) == (labels == 1))[labels == k].mean() for k in (0, 1)]))})
    return HeadFit(head, t, b, report)


def fit_detection_head(model: Any, train: list[TrainExample], held: list[TrainExample], cfg: DataConfig,
                       seed: int, out: Path, progress: bool = True) -> dict[str, Any]:
    """Stage 1: fit `model`'s detection head and its calibration; writes OUT/head.json, returns the report."""
    config = model.config
    extractor = StatisticsExtractor(config.semantic_net, net=model.backbone.semantic)
    everything = sorted({e.image: e for e in [*train, *held]}.values(), key=lambda e: e.image)
    plan, folds_per_example = fold_plan(everything, cfg.head_folds, cfg.head_fold_parts)
    if plan.n_folds >= 2:  # calibrated out of fold: the LM's held-out split is not needed here, so fit on all
        train = everything
    else:
        plan, folds_per_example = fold_plan(train, cfg.head_folds, cfg.head_fold_parts)
    cache = Path(cfg.head_cache) if cfg.head_cache else out / FEATURES_FILE
    x, rows = extract(extractor, train, cfg, cfg.head_views, config.stats_crop, seed, cache, progress)
    if not len(x):
        raise FakeReasoningError("detection head: no training image could be read")
    y = np.array([train[i].label == "fake" for i in rows[:, 0]], dtype=int)
    folds = folds_per_example[rows[:, 0]]
    calib_x = calib_y = None
    if plan.n_folds < 2:
        hx, hrows = extract(extractor, held, cfg, 1, config.stats_crop, seed, None, progress)
        calib_x, calib_y = hx, np.array([held[i].label == "fake" for i in hrows[:, 0]], dtype=int)
    weight = (group_weights([balance_group(train[i]) for i in rows[:, 0]]) if cfg.head_balance == "groups"
              else None)
    try:
        result = fit(x, y, folds, rows[:, 1], calib_x=calib_x, calib_y=calib_y, weight=weight)
    except HeadError as exc:
        raise FakeReasoningError(f"detection head: {exc}") from None
    head = model.backbone.head
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(result.head.weight).float()[None])
        head.bias.fill_(float(result.head.bias))
    model.config = config.replace(temperature=result.temperature, cpm_bias=result.bias)
    report = {**result.report, "views": cfg.head_views, "net": config.semantic_net, "images": len(train),
              "balance": cfg.head_balance,
              "features": str(cache), "folds": plan.to_dict()}
    atomic_write_json(out / HEAD_REPORT, report)
    return report
