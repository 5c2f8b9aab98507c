"""Would a plain linear probe on the frozen statistics, alone or fused with the model, transfer better?

A UnivFD-style check on the `tiny` backbone's own frozen multi-level EfficientNet statistics (the features
its statistics prior reads): a logistic-regression probe trained on the dataset's training part, its
strength C chosen by leave-family-out cross-validation on training only (5 folds over the fake families,
reals split at random), then measured once on the held-out evaluation sets against the model itself, native
and after a JPEG-95 round trip. The probe's Platt scaling and the fusion of (model logit, probe score) are
fitted on the calibration set (never evaluated), as the model's own calibration is. Writes JSON and a
Markdown table beside it; never asserts.

    .venv/bin/python bench/stats_probe.py --data MMFR_PUBLIC --sets gemini,midjourney,flux_dits \
        --calibration calib_mixed --out bench/results/stats_probe.json [--model DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

C_GRID = (3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 1e-2, 1e-1)


def _features(model: Any, images: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(frozen statistics, the model's fast-mode fake logit) of a batch of PIL images."""
    import torch

    batch = model.processor.images(images)
    with torch.no_grad():
        stats, _ = model.backbone.statistics(batch["stats_crops"])
    p = np.clip(np.array(model.fast_probabilities(images), dtype=np.float64), 1e-7, 1 - 1e-7)
    return torch.cat(stats, 1).numpy(), np.log(p / (1 - p))


def _extract(model: Any, records: list[Any], perturb: Any | None, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    from fakereasoning.imageio import load_image

    feats, logits = [], []
    t0 = time.perf_counter()
    for i in range(0, len(records), batch_size):
        images = [load_image(r.path, name=str(r.path)) for r in records[i:i + batch_size]]
        if perturb is not None:
            images = [perturb(im, r.key) for im, r in zip(images, records[i:i + batch_size], strict=True)]
        f, lg = _features(model, images)
        feats.append(f)
        logits.append(lg)
        print(f"  {min(i + batch_size, len(records))}/{len(records)} images, {time.perf_counter() - t0:.0f} s",
              file=sys.stderr, flush=True)
    return np.concatenate(feats), np.concatenate(logits)


def _family(record: Any) -> str:
    return record.path.parent.name if record.label == "fake" else "real"


def _fit_probe(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, class_weight="balanced")).fit(x, y)


def _choose_c(x: np.ndarray, y: np.ndarray, families: np.ndarray, seed: int) -> dict[str, Any]:
    """Leave-family-out CV AUC per C: each fold holds out a fifth of the fake families and of the reals."""
    from sklearn.metrics import roc_auc_score

    fake_families = sorted(set(families[y == 1]))
    if len(fake_families) < 2:
        raise SystemExit("stats_probe: the training part needs at least two fake families for leave-family-out CV")
    n_folds = min(5, len(fake_families))
    rng = np.random.default_rng(seed)
    reals = np.where(y == 0)[0]
    rng.shuffle(reals)
    family_folds = np.array_split(np.array(fake_families), n_folds)
    real_folds = np.array_split(reals, n_folds)
    scores: dict[str, float] = {}
    for c in C_GRID:
        aucs = []
        for k in range(n_folds):
            test = np.isin(families, family_folds[k])
            test[real_folds[k]] = True
            probe = _fit_probe(x[~test], y[~test], c)
            aucs.append(roc_auc_score(y[test], probe.decision_function(x[test])))
        scores[f"{c:g}"] = float(np.mean(aucs))
    best = max(C_GRID, key=lambda c: scores[f"{c:g}"])
    return {"cv_auc": scores, "chosen_c": best, "folds": n_folds, "fake_families": fake_families}


def _metrics(y: np.ndarray, score: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    from fakereasoning.evaluate.stats import balanced_accuracy

    return {"auc": float(roc_auc_score(y, score)), "bal_acc": balanced_accuracy(y, p)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="an MMFR root with a training part and evaluation sets")
    ap.add_argument("--sets", required=True, help="comma-separated held-out evaluation sets")
    ap.add_argument("--calibration", required=True, help="the evaluation set used for Platt scaling and fusion")
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/stats_probe.json"))
    args = ap.parse_args(argv)

    import torch
    from sklearn.linear_model import LogisticRegression

    from fakereasoning.data.layouts import load_dataset
    from fakereasoning.evaluate.perturb import compose, parse_perturbation
    from fakereasoning.fsio import atomic_write_json, atomic_write_text
    from fakereasoning.infer import load_model

    torch.set_num_threads(2)
    sets = args.sets.split(",")
    dataset = load_dataset(args.data).index
    train = list(dataset.records("train"))
    held = {s: list(dataset.records("eval", [s])) for s in [*sets, args.calibration]}
    model = load_model(args.model)
    y_train = np.array([r.label == "fake" for r in train], dtype=int)
    print(f"training part: {len(train)} images", file=sys.stderr)
    x_train, _ = _extract(model, train, None)
    selection = _choose_c(x_train, y_train, np.array([_family(r) for r in train]), args.seed)
    probe = _fit_probe(x_train, y_train, selection["chosen_c"])

    views = {"native": None, "jpeg95": compose([parse_perturbation("jpeg:95")])}
    data: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for view, perturb in views.items():
        data[view] = {}
        for name, records in held.items():
            print(f"{view} {name}: {len(records)} images", file=sys.stderr)
            x, logit = _extract(model, records, perturb)
            data[view][name] = (np.array([r.label == "fake" for r in records], dtype=int), logit, probe.decision_function(x))

    y_cal, logit_cal, probe_cal = data["native"][args.calibration]
    platt = LogisticRegression(C=1e6, max_iter=5000).fit(probe_cal[:, None], y_cal)
    fusion = LogisticRegression(C=1e6, max_iter=5000).fit(np.c_[logit_cal, probe_cal], y_cal)
    results: dict[str, Any] = {
        "command": " ".join(["bench/stats_probe.py", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model or "shipped default", "selection": selection,
        "fusion": {"logit_weight": float(fusion.coef_[0][0]), "probe_weight": float(fusion.coef_[0][1]),
                   "bias": float(fusion.intercept_[0])},
        "views": {},
    }
    for view in views:
        rows: dict[str, dict[str, Any]] = {"model": {}, "probe": {}, "fused": {}}
        for name in sets:
            y, logit, score = data[view][name]
            fused = np.c_[logit, score]
            rows["model"][name] = _metrics(y, logit, 1 / (1 + np.exp(-logit)))
            rows["probe"][name] = _metrics(y, score, platt.predict_proba(score[:, None])[:, 1])
            rows["fused"][name] = _metrics(y, fusion.decision_function(fused), fusion.predict_proba(fused)[:, 1])
        for per in rows.values():
            per["mean"] = {k: float(np.mean([per[s][k] for s in sets])) for k in ("auc", "bal_acc")}
        results["views"][view] = rows
    atomic_write_json(args.out, results, indent=2)
    atomic_write_text(args.out.with_suffix(".md"), _markdown(results, sets))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _markdown(results: dict[str, Any], sets: list[str]) -> str:
    sel = results["selection"]
    lines = [f"# Linear probe on the frozen statistics ({results['model']})", "", f"Command: `{results['command']}`", "",
             f"C chosen by leave-family-out CV on training ({sel['folds']} folds over {len(sel['fake_families'])} fake "
             f"families): {sel['chosen_c']:g} (CV AUC " + ", ".join(f"{c}: {a:.3f}" for c, a in sel["cv_auc"].items()) + ")",
             "", "| view | scorer | " + " | ".join(f"{s} AUC / bal" for s in sets) + " | mean AUC / bal |",
             "|---" * (len(sets) + 3) + "|"]
    for view, rows in results["views"].items():
        for scorer, per in rows.items():
            cells = [f"{per[s]['auc']:.3f} / {per[s]['bal_acc']:.3f}" for s in [*sets, "mean"]]
            lines.append(f"| {view} | {scorer} | " + " | ".join(cells) + " |")
    f = results["fusion"]
    lines += ["", f"Fusion fitted on the calibration set: {f['logit_weight']:.3f} x model logit + "
              f"{f['probe_weight']:.3f} x probe score + {f['bias']:.3f}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
