"""Leave-family-out benchmark over the modern generator families of MMFR-Public (built with `--splits all`).

The protocol (`fakereasoning.data.public.folds`): modern (2023+) generator families are dealt into folds,
a family never in two; real photos are dealt into the same folds by source. For each fold k, every entry is
fitted on everything outside fold k (older families always train) and scores fold k: its fakes against its
reals. Reported per family (AUC, balanced accuracy), as means over families with 95% bootstrap intervals,
and per real source (false-positive rate), in several views:

- native: one native 224 crop (the centre of the first stored crop) of each source image;
- multi: the mean logit over every native crop of each source image the dataset holds (multi-crop);
- jpeg95 / jpeg75 / resize0.5: that first crop after the perturbation (`evaluate --perturb` semantics);
- web: crops the build cut from web-size (resampled) copies of the same images, both classes;
- web1024 (with --mirror): each real photo of a held-out source read from its repository snapshot, brought
  to 1024 px on the long side and JPEG q90 (how photos reach users), centre crop: the false-positive rate
  the target is about.

Calibration: p(fake) of fold k comes from a Platt map fitted on the out-of-fold logits (native view) of the
other folds (cross-fitted: fold k's labels never touch its own calibration), the same for every entry.
For FakeReasoning the shipped procedure is also reported exactly: the head's ridge strength and Platt map
chosen by inner leave-family-out CV inside fold k's training data (nested), as `fakereasoning train` does.

Entries: fakereasoning (the shipped detection head: frozen EfficientNet-Lite0 multi-level statistics,
ridge/LDA head, `data.head_views` views per training image) and its variants (-1view, -lite1, -lite2,
-lite0+lite2 when those nets are asked for), and univfd (a linear probe on the same network's pooled
final features). Features are computed once per net and view and cached under --work; a rerun with the
same data costs minutes.

    .venv/bin/python bench/lofo.py --data /work/data/public-all --mirror /work/mirror \
        [--nets lite0,lite2] [--config configs/tiny-public.toml] [--work /work/lofo] [--quick]

Writes bench/results/lofo.json and lofo.md (with --quick: WORK/lofo-quick.*; never the committed ones).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import platform
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PERTURB_VIEWS = {"jpeg95": "jpeg:95", "jpeg75": "jpeg:75", "resize0.5": "resize:0.5"}
WEB_LONG_SIDE, WEB_QUALITY = 1024, 90


@dataclass
class Item:
    index: int  # record index
    key: str
    label: int
    group: str  # family (fake) or source folder (real)
    source: str  # the source image id (repo:path@region)
    repo: str
    native: bool  # cut at scale 1 (not from a web-size copy), not an aligned fake
    first: bool  # the first native crop of its source image


def load_items(data: Path) -> tuple[list[Any], list[Item], dict[str, Any]]:
    from fakereasoning.data.layouts import load_dataset
    from fakereasoning.train.data import TrainExample
    from fakereasoning.train.head import family_and_source

    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    images = list(manifest.get("images", []))
    for merged in manifest.get("merged_from", []):  # `data merge` of MMFR-Public with other data
        sub = Path(merged["root"]) / "manifest.json"
        if sub.is_file():
            images += json.loads(sub.read_text(encoding="utf-8")).get("images", [])
    manifest["images"] = images
    info = {im["path"]: im for im in images if "repo" in im}
    records = sorted(load_dataset(data).index.train, key=lambda r: r.key)
    examples, items = [], []
    seen_first: set[str] = set()
    for i, r in enumerate(records):
        m = info.get(r.key) or {"repo": "", "source_path": r.key}  # not MMFR-Public: its own source
        examples.append(TrainExample(r.key, r.path, r.label, "", "fast", r.set))
        region = m.get("region")
        source = f"{m['repo']}:{m['source_path']}@{region}"
        native = float(m.get("scale", 1.0)) == 1.0 and not m.get("aligned")
        first = native and source not in seen_first
        if first:
            seen_first.add(source)
        items.append(Item(i, r.key, int(r.label == "fake"), family_and_source(r.key), source, m["repo"], native, first))
    return examples, items, manifest


# --- features ----------------------------------------------------------------------------------------------
def view_features(extractor: Any, examples: list[Any], idx: list[int], transform: Any, cache: Path, crop: int
                  ) -> dict[int, np.ndarray]:
    """Centre-crop features of examples[idx] after `transform` (a perturbation), cached."""
    from fakereasoning.imageio import load_image
    from fakereasoning.models.statistics import grid_crops

    if cache.is_file():
        with np.load(cache) as d:
            if list(d["idx"]) == list(idx):
                return dict(zip(idx, d["x"], strict=True))
    feats = []
    t0 = time.time()
    for n, i in enumerate(idx):
        img = load_image(examples[i].path, name=examples[i].image)
        feats.append(extractor(grid_crops(transform(img, examples[i].image), crop, 1))[0])
        if n % 2000 == 0:
            print(f"  {cache.name}: {n}/{len(idx)} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    x = np.stack(feats).astype(np.float32) if feats else np.zeros((0, extractor.dim), np.float32)
    _save(cache, idx=np.array(idx), x=x)
    return dict(zip(idx, x, strict=True))


def web_features(extractor: Any, items: list[Item], manifest: dict[str, Any], mirror: Path, cache: Path, crop: int
                 ) -> dict[str, np.ndarray]:
    """Real source photos from their snapshots at web size (1024 px long side, JPEG q90), centre crop."""
    from PIL import Image

    from fakereasoning.data.public.fetch import FetchError, MirrorReader
    from fakereasoning.imageio import decode_image_bytes
    from fakereasoning.models.statistics import grid_crops

    info = {im["path"]: im for im in manifest["images"]}
    wanted = sorted({it.source: it.key for it in items if it.label == 0 and it.first}.items())
    if cache.is_file():
        with np.load(cache) as d:
            return dict(zip(d["sources"].tolist(), d["x"], strict=True))
    reader = MirrorReader(mirror)
    sources, feats = [], []
    try:
        for n, (source, key) in enumerate(wanted):
            m = info[key]
            try:
                img = decode_image_bytes(reader.read(m["repo"], m["commit"], m["source_path"]), source)
            except (FetchError, Exception) as exc:  # noqa: BLE001 (a missing snapshot skips the photo, named)
                print(f"  web1024: skipped {source}: {exc}", file=sys.stderr)
                continue
            if m.get("region"):
                x, y, w, h = m["region"]
                img = img.crop((x, y, x + w, y + h))
            img = img.convert("RGB")
            long_side = max(img.size)
            if long_side > WEB_LONG_SIDE:
                s = WEB_LONG_SIDE / long_side
                img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=WEB_QUALITY)
            buf.seek(0)
            web = Image.open(buf).convert("RGB")
            feats.append(extractor(grid_crops(web, crop, 1))[0])
            sources.append(source)
            if n % 500 == 0:
                print(f"  web1024: {n}/{len(wanted)}", file=sys.stderr, flush=True)
    finally:
        reader.close()
    x = np.stack(feats).astype(np.float32) if feats else np.zeros((0, extractor.dim), np.float32)
    _save(cache, sources=np.array(sources), x=x)
    return dict(zip(sources, x, strict=True))


def _save(path: Path, **arrays: Any) -> None:
    from fakereasoning.fsio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


# --- protocol ------------------------------------------------------------------------------------------------
def platt(margins: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from fakereasoning.models.cpm import fit_platt

    return fit_platt(margins, y)


def sigmoid(m: np.ndarray, tb: tuple[float, float]) -> np.ndarray:
    from scipy.special import expit

    return expit(m / tb[0] + tb[1])


@dataclass
class FoldOutput:
    logits: dict[str, dict[int, float]]  # view -> item index -> logit (items of the fold)
    web: dict[str, float]  # real source photo -> web1024 logit
    nested: tuple[float, float] | None  # (T, bias) chosen inside the fold's training data
    lam: float | None


def cached_outputs(folder: Path, ident: str, views: list[str], key: str, compute: Any) -> list[FoldOutput]:
    """An entry's per-fold outputs, computed once per data, folds and options (`key`) and kept in `folder` as
    JSON, so a stopped run resumes at the first entry it had not finished. `ident` names what is fitted (kind,
    features, balance, training views), `views` what is scored; a saved run that scored more views serves."""
    from fakereasoning.fsio import atomic_write_json

    for path in sorted(folder.glob(f"{ident}--*.json")):
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("key") == key and set(views) <= set(saved.get("views", [])):
            return [FoldOutput({v: {int(i): x for i, x in d.items()} for v, d in f["logits"].items()}, f["web"],
                               tuple(f["nested"]) if f["nested"] else None, f["lam"]) for f in saved["folds"]]
    outs = compute()
    atomic_write_json(folder / f"{ident}--{'+'.join(sorted(views))}.json",
                      {"key": key, "views": sorted(views),
                       "folds": [{"logits": f.logits, "web": f.web, "nested": f.nested, "lam": f.lam} for f in outs]})
    return outs


def cache_key(items: list[Item], tested: list[int], folds_item: np.ndarray, data_cfg: Any, views: list[str],
              mirror: Path | None) -> str:
    """What every cached entry depends on: the tested items, their folds, the data options (the head's balance
    aside: it is part of each entry's identity) and the views asked for."""
    options = {k: v for k, v in vars(data_cfg).items() if k != "head_balance"}
    text = json.dumps({"items": [items[i].key for i in tested], "folds": folds_item.tolist(), "config": options,
                       "views": views, "mirror": str(mirror)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_entry(name: str, x_train: np.ndarray, rows: np.ndarray, items: list[Item], folds_item: np.ndarray,
              n_folds: int, views: dict[str, dict[int, np.ndarray]], web: dict[str, np.ndarray],
              head_views: int, kind: str, log: Any, weight: np.ndarray | None = None) -> list[FoldOutput]:
    """Fit per outer fold and score its items in every view. `weight`: per-row weights of the head's fit."""
    from fakereasoning.models.head import cross_validate, fit_head

    y_rows = np.array([items[i].label for i in rows[:, 0]])
    fold_rows = folds_item[rows[:, 0]]
    keep = rows[:, 1] < head_views
    out = []
    for k in range(n_folds):
        t0 = time.time()
        train = keep & (fold_rows != k)
        xt, yt, ft, vt = x_train[train], y_rows[train], fold_rows[train], rows[train, 1]
        wt = None if weight is None else weight[train]
        nested = None
        lam = None
        if kind == "head":
            inner = ft  # fold k is not in the training rows: the inner folds are the others
            cv = cross_validate(xt, yt, inner, weight=wt)
            lam = cv.lam
            sel = (inner >= 0) & (vt == 0)
            nested = platt(cv.oof[sel], yt[sel])
            model = fit_head(xt, yt, lam, wt)
            score = model.logits
        else:  # univfd: logistic regression probe (balanced classes)
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000, class_weight="balanced"))
            probe.fit(xt, yt)
            score = probe.decision_function
        test = [it.index for it in items if folds_item[it.index] == k]
        logits: dict[str, dict[int, float]] = {}
        for view, feats in views.items():
            idx = [i for i in test if i in feats]
            if idx:
                logits[view] = dict(zip(idx, score(np.stack([feats[i] for i in idx])).tolist(), strict=True))
        fold_sources = {it.source for it in items if folds_item[it.index] == k and it.label == 0}
        wsrc = [s for s in web if s in fold_sources]
        wlog = dict(zip(wsrc, score(np.stack([web[s] for s in wsrc])).tolist(), strict=True)) if wsrc else {}
        out.append(FoldOutput(logits, wlog, nested, lam))
        log(f"{name}: fold {k + 1}/{n_folds} fitted and scored in {time.time() - t0:.0f} s"
            + (f" (lambda {lam:g})" if lam is not None else ""))
    return out


def trained_entry(kind: str, examples: list[Any], items: list[Item], folds_item: np.ndarray, n_folds: int,
                  steps: int, work: Path, log: Any) -> list[FoldOutput]:
    """A baseline trained per fold (`fakereasoning baseline` code: NPR-style CNN, CNNSpot-style fine-tuned
    EfficientNet) for a fixed step budget on the fold's training images, scored on its native crops."""
    from fakereasoning.baselines.common import TrainOptions, train_baseline
    from fakereasoning.baselines.registry import build, load
    from fakereasoning.imageio import load_image

    out = []
    for k in range(n_folds):
        t0 = time.time()
        run = work / f"{kind}-fold{k}"
        if (run / "model").is_dir():
            det = load(run / "model", kind)
        else:
            listing = work / f"{kind}-fold{k}.jsonl"
            rows = [{"path": str(Path(examples[it.index].path).resolve()), "label": "fake" if it.label else "real",
                     "split": "train"} for it in items if folds_item[it.index] != k]
            listing.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            det = build(kind)
            train_baseline(det, listing, run, TrainOptions(max_steps=steps, allow_absolute_paths=True, val_fraction=0.02,
                                                           save_every=10**9), progress=False)
        det.eval()
        test = [it.index for it in items if folds_item[it.index] == k and it.native]
        logits: dict[int, float] = {}
        for s in range(0, len(test), 64):
            chunk = test[s : s + 64]
            imgs = [load_image(examples[i].path, name=examples[i].image) for i in chunk]
            logits.update(zip(chunk, det.logits(imgs).tolist(), strict=True))
        out.append(FoldOutput({"native": logits}, {}, None, None))
        log(f"{kind}: fold {k + 1}/{n_folds} trained ({steps} steps) and scored in {time.time() - t0:.0f} s")
    return out


SPLIT_BLOCK = 10  # EfficientNet-Lite0: stages up to block 10 stay frozen; blocks 11-15 and the head conv train


def stage_cache(examples: list[Any], cfg: Any, crop: int, views: int, path: Path, log: Any
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every view of every image (train.head.view_crop): the frozen activation after block SPLIT_BLOCK
    (float16) and the statistics of the frozen levels before it. Cached in `path`."""
    import torch

    from fakereasoning.models.statistics import efficientnet, normalise, stage_ends
    from fakereasoning.train.head import view_crop

    if path.is_file():
        with np.load(path) as d:
            return d["acts"], d["early"], d["rows"]
    net = efficientnet("lite0").eval()
    ends = [e for e in stage_ends(net) if e <= SPLIT_BLOCK]
    acts, early, rows = [], [], []
    pending, prow = [], []
    t0 = time.time()

    def stats(t: torch.Tensor) -> torch.Tensor:
        std, mean = torch.std_mean(t.float(), dim=(2, 3), correction=0)
        return torch.cat([mean, std], dim=1)

    @torch.no_grad()
    def flush() -> None:
        if not pending:
            return
        x = normalise(torch.cat(pending))
        h = net._swish(net._bn0(net._conv_stem(x)))
        st = [stats(h)]
        for i, block in enumerate(net._blocks[: SPLIT_BLOCK + 1]):
            h = block(h)
            if i in ends:
                st.append(stats(h))
        acts.append(h.half().numpy())
        early.append(torch.cat(st, 1).numpy())
        rows.extend(prow)
        pending.clear()
        prow.clear()

    for i, e in enumerate(examples):
        for v in range(views):
            t = view_crop(e, v, cfg, crop, 0)
            if t is not None:
                pending.append(t)
                prow.append((i, v))
            if len(pending) >= 32:
                flush()
        if i % 2000 == 0:
            log(f"last-stage cache: {i}/{len(examples)} images ({time.time() - t0:.0f} s)")
    flush()
    out = (np.concatenate(acts), np.concatenate(early), np.array(rows, dtype=np.int64))
    _save(path, acts=out[0], early=out[1], rows=out[2])
    return out


def finetune_entry(acts: np.ndarray, early: np.ndarray, rows: np.ndarray, items: list[Item], folds_item: np.ndarray,
                   n_folds: int, epochs: float, log: Any) -> list[FoldOutput]:
    """Fine-tuning the last stages: per fold, EfficientNet-Lite0's blocks after SPLIT_BLOCK and its head conv
    (ImageNet init, BatchNorm statistics frozen) plus a linear read-out of every level's statistics, trained
    with balanced BCE on the fold's training crops (from cached frozen activations), scored on its native
    crops."""
    import copy

    import torch
    from torch import nn

    from fakereasoning.models.statistics import efficientnet, stage_ends

    base = efficientnet("lite0").eval()
    ends = [e for e in stage_ends(base) if e > SPLIT_BLOCK]
    y_rows = np.array([items[i].label for i in rows[:, 0]], dtype=np.float32)
    fold_rows = folds_item[rows[:, 0]]

    class Last(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = copy.deepcopy(base._blocks[SPLIT_BLOCK + 1 :])
            self.conv_head, self.bn1, self.swish = copy.deepcopy(base._conv_head), copy.deepcopy(base._bn1), base._swish
            dim = early.shape[1] + 2 * sum(b._project_conv.out_channels for i, b in enumerate(self.blocks)
                                           if i + SPLIT_BLOCK + 1 in ends) + 2 * base._conv_head.out_channels
            self.norm = nn.BatchNorm1d(dim, affine=False)
            self.linear = nn.Linear(dim, 1)

        def train(self, mode: bool = True) -> Last:
            super().train(mode)
            for m in self.modules():  # frozen BatchNorm statistics in the conv blocks
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
            return self

        def forward(self, a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            def stats(t: torch.Tensor) -> torch.Tensor:
                std, mean = torch.std_mean(t, dim=(2, 3), correction=0)
                return torch.cat([mean, std], dim=1)

            h, st = a, [e]
            for i, block in enumerate(self.blocks):
                h = block(h)
                if i + SPLIT_BLOCK + 1 in ends:
                    st.append(stats(h))
            st.append(stats(self.swish(self.bn1(self.conv_head(h)))))
            return self.linear(self.norm(torch.cat(st, 1))).squeeze(-1)

    out = []
    for k in range(n_folds):
        t0 = time.time()
        torch.manual_seed(k)
        model = Last()
        model.train()
        tr = np.flatnonzero(fold_rows != k)
        pos = float(y_rows[tr].mean())
        weight = torch.tensor([0.5 / (1 - pos), 0.5 / pos])
        opt = torch.optim.AdamW([{"params": [p for n, p in model.named_parameters() if not n.startswith("linear")], "lr": 1e-4},
                                 {"params": model.linear.parameters(), "lr": 1e-3}], weight_decay=1e-4)
        steps = int(epochs * len(tr) / 64)
        rng = np.random.default_rng(k)
        for step in range(steps):
            b = rng.choice(tr, 64, replace=False)
            a = torch.from_numpy(acts[b].astype(np.float32))
            e = torch.from_numpy(early[b])
            yb = torch.from_numpy(y_rows[b])
            logit = model(a, e)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logit, yb, reduction="none") * weight[yb.long()]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 200 == 0:
                log(f"last stages fold {k + 1}: step {step}/{steps} loss {float(loss):.3f}")
        model.eval()
        test = np.flatnonzero((fold_rows == k) & (rows[:, 1] == 0))
        scores = []
        with torch.no_grad():
            for s in range(0, len(test), 256):
                b = test[s : s + 256]
                scores.append(model(torch.from_numpy(acts[b].astype(np.float32)), torch.from_numpy(early[b])).numpy())
        logits = dict(zip(rows[test, 0].tolist(), np.concatenate(scores).tolist(), strict=True)) if len(test) else {}
        out.append(FoldOutput({"native": logits}, {}, None, None))
        log(f"fakereasoning-ft-last-stages: fold {k + 1}/{n_folds} trained ({steps} steps) in {time.time() - t0:.0f} s")
    return out


def model_entry(model_dir: Path, examples: list[Any], items: list[Item], folds_item: np.ndarray, n_folds: int,
                work: Path, log: Any) -> list[FoldOutput]:
    """A saved model scored as it is (no refit): its fast-mode margin on every held-out native crop."""
    from fakereasoning.imageio import load_image
    from fakereasoning.infer import load_model

    cache = work / f"model-{model_dir.name}.npz"
    test = [it.index for it in items if folds_item[it.index] >= 0 and it.native]
    if cache.is_file():
        with np.load(cache) as d:
            scores = dict(zip(d["idx"].tolist(), d["m"].tolist(), strict=True))
    else:
        model = load_model(model_dir, crops=1)
        model.config = model.config.replace(temperature=1.0, cpm_bias=0.0)
        scores = {}
        t0 = time.time()
        for s in range(0, len(test), 32):
            chunk = test[s : s + 32]
            p = np.clip(np.array(model.fast_probabilities([load_image(examples[i].path, name=examples[i].image)
                                                          for i in chunk])), 1e-7, 1 - 1e-7)
            scores.update(zip(chunk, (np.log(p) - np.log1p(-p)).tolist(), strict=True))
            if s % 3200 == 0:
                log(f"{model_dir.name}: {s}/{len(test)} ({time.time() - t0:.0f} s)")
        _save(cache, idx=np.array(list(scores)), m=np.array(list(scores.values())))
    return [FoldOutput({"native": {i: scores[i] for i in test if folds_item[i] == k}}, {}, None, None)
            for k in range(n_folds)]


def fuse(a: list[FoldOutput], b: list[FoldOutput], items: list[Item]) -> list[FoldOutput]:
    """Per fold k, a logistic fusion of two entries' native logits, its weights fitted on the other folds'
    out-of-fold logits (cross-fitted, as the calibration)."""
    from sklearn.linear_model import LogisticRegression

    pairs = []
    for fa, fb in zip(a, b, strict=True):
        common = sorted(set(fa.logits.get("native", {})) & set(fb.logits.get("native", {})))
        pairs.append((common, np.array([[fa.logits["native"][i], fb.logits["native"][i]] for i in common])))
    out = []
    for k, (common, x) in enumerate(pairs):
        xs = np.concatenate([p[1] for j, p in enumerate(pairs) if j != k])
        ys = np.array([items[i].label for j, p in enumerate(pairs) if j != k for i in p[0]])
        model = LogisticRegression(C=1.0, max_iter=1000).fit(xs, ys)
        out.append(FoldOutput({"native": dict(zip(common, model.decision_function(x).tolist(), strict=True))}, {}, None, None))
    return out


def summarise(name: str, outs: list[FoldOutput], items: list[Item], folds_item: np.ndarray, plan: Any,
              resamples: int, seed: int) -> dict[str, Any]:
    """Per-view metrics with cross-fitted calibration (and, when present, the nested one)."""
    from fakereasoning.evaluate.stats import balanced_accuracy, bootstrap_intervals
    from fakereasoning.models.cpm import expected_calibration_error
    from fakereasoning.models.head import crossfit_platt

    by_item = {it.index: it for it in items}
    native = [{i: v for i, v in o.logits.get("native", {}).items() if by_item[i].first} for o in outs]
    calib = crossfit_platt([np.array(list(d.values())) for d in native],
                           [np.array([by_item[i].label for i in d]) for d in native])
    modes = {"crossfit": calib}
    if all(o.nested is not None for o in outs):
        modes["nested"] = [o.nested for o in outs]  # type: ignore[misc]
    result: dict[str, Any] = {"entry": name, "lambda_per_fold": [o.lam for o in outs]}
    for mode, maps in modes.items():
        views: dict[str, Any] = {}
        view_names = ["native", "multi", *[v for v in outs[0].logits if v not in ("native",)]]
        for view in view_names:
            per_family: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            real_fp: dict[str, list[float]] = defaultdict(list)
            all_y, all_p = [], []
            for k, o in enumerate(outs):
                if view == "multi":
                    groups: dict[str, list[float]] = defaultdict(list)
                    labels: dict[str, Item] = {}
                    for i, v in o.logits.get("native", {}).items():
                        groups[by_item[i].source].append(v)
                        labels[by_item[i].source] = by_item[i]
                    pairs = [(labels[s], float(np.mean(vs))) for s, vs in groups.items()]
                elif view == "native" or view in PERTURB_VIEWS:
                    pairs = [(by_item[i], v) for i, v in o.logits.get(view, {}).items() if by_item[i].first]
                else:  # web: crops cut from web-size copies
                    pairs = [(by_item[i], v) for i, v in o.logits.get(view, {}).items() if not by_item[i].native
                             and by_item[i].group != "taef2-aligned"]
                if not pairs:
                    continue
                p = sigmoid(np.array([v for _, v in pairs]), maps[k])
                y = np.array([it.label for it, _ in pairs])
                all_y.append(y)
                all_p.append(p)
                reals = p[y == 0]
                for (it, _), pi in zip(pairs, p, strict=True):
                    if it.label == 0:
                        real_fp[it.group].append(float(pi >= 0.5))
                for fam in plan.members(k)["families"]:
                    sel = np.array([it.label == 1 and it.group == fam for it, _ in pairs])
                    if sel.any() and len(reals):
                        per_family[fam] = (np.r_[np.zeros(len(reals)), np.ones(sel.sum())], np.r_[reals, p[sel]])
            if not per_family:
                continue
            fams = {}
            for fam, (y, p) in sorted(per_family.items()):
                from sklearn.metrics import roc_auc_score

                fams[fam] = {"fakes": int(y.sum()), "reals": int((y == 0).sum()), "auc": float(roc_auc_score(y, p)),
                             "bal_acc": balanced_accuracy(y, p), "tpr": float((p[y == 1] >= 0.5).mean())}
            ci = bootstrap_intervals(per_family, {"mean": list(per_family)}, resamples=resamples, seed=seed)
            ya, pa = np.concatenate(all_y), np.concatenate(all_p)
            views[view] = {
                "families": fams,
                "mean_auc": float(np.mean([f["auc"] for f in fams.values()])),
                "mean_bal_acc": float(np.mean([f["bal_acc"] for f in fams.values()])),
                "min_bal_acc": float(min(f["bal_acc"] for f in fams.values())),
                "mean_ci": ci.get("mean", {}),
                "ece": expected_calibration_error(pa, ya),
                "real_fpr": {s: float(np.mean(v)) for s, v in sorted(real_fp.items())},
                "items": {"real": int((ya == 0).sum()), "fake": int((ya == 1).sum())},
            }
        if any(o.web for o in outs):
            fpr: dict[str, list[float]] = defaultdict(list)
            source_group = {it.source: it.group for it in items if it.label == 0}
            for k, o in enumerate(outs):
                if o.web:
                    p = sigmoid(np.array(list(o.web.values())), maps[k])
                    for s, pi in zip(o.web, p, strict=True):
                        fpr[source_group[s]].append(float(pi >= 0.5))
            views["web1024"] = {"real_fpr": {s: float(np.mean(v)) for s, v in sorted(fpr.items())},
                                "photos": {s: len(v) for s, v in sorted(fpr.items())}}
        result[mode] = views
    return result


def markdown(res: dict[str, Any]) -> str:
    lines = ["# Leave-family-out benchmark (modern generator families of MMFR-Public)", "",
             f"- Command: `{res['command']}`", f"- Date: {res['date']}; commit {res['commit']}; {res['machine']}",
             f"- Data: `{res['data']}` ({res['counts']['items']} crops of {res['counts']['sources']} source images; "
             f"{res['counts']['modern_families']} modern families in {res['folds']['n_folds']} folds)",
             "- Calibration: cross-fitted Platt (fold k's map fitted on the other folds' out-of-fold logits) for every "
             "entry; `nested` = the shipped procedure (ridge strength and Platt by inner leave-family-out CV inside "
             "the fold's training data)",
             f"- Wall time: {res['seconds'] / 60:.1f} min", "", "## Folds", ""]
    for k, f in enumerate(res["folds"]["folds"]):
        lines.append(f"- fold {k + 1}: families {', '.join(f['families'])}; real sources {', '.join(f['real_sources'])}")
    lines += ["", "## Means over families (95% bootstrap interval)", "",
              "| entry | calibration | view | mean AUC [CI] | mean bal. acc [CI] | min bal. acc | ECE |", "|---|---|---|---|---|---|---|"]
    for e in res["entries"]:
        for mode in ("nested", "crossfit"):
            for view, v in e.get(mode, {}).items():
                if "mean_auc" not in v:
                    continue
                ci = v["mean_ci"]
                auc_ci = f" [{ci['auc'][0]:.3f}, {ci['auc'][1]:.3f}]" if ci.get("auc") else ""
                bal_ci = f" [{ci['bal_acc'][0]:.3f}, {ci['bal_acc'][1]:.3f}]" if ci.get("bal_acc") else ""
                lines.append(f"| {e['entry']} | {mode} | {view} | {v['mean_auc']:.3f}{auc_ci} | {v['mean_bal_acc']:.3f}{bal_ci} "
                             f"| {v['min_bal_acc']:.3f} | {v['ece']:.3f} |")
    main = res["entries"][0]
    mode = "nested" if "nested" in main else "crossfit"
    native = main[mode].get("native", {})
    if native:
        lines += ["", f"## Per family: {main['entry']} ({mode}), native view: AUC / balanced accuracy / TPR (fakes, reals)", "",
                  "| family | native | multi | jpeg95 | jpeg75 | resize0.5 | web |", "|---|---|---|---|---|---|---|"]
        for fam, f in native["families"].items():
            cells = []
            for view in ("native", "multi", "jpeg95", "jpeg75", "resize0.5", "web"):
                g = main[mode].get(view, {}).get("families", {}).get(fam)
                cells.append(f"{g['auc']:.3f} / {g['bal_acc']:.3f} / {g['tpr']:.2f}" if g else "–")
            lines.append(f"| {fam} ({f['fakes']}, {f['reals']}) | " + " | ".join(cells) + " |")
        lines += ["", f"## False-positive rate per held-out real source: {main['entry']} ({mode})", "",
                  "| source | native (camera size) | web (resampled crops) | web1024 (photo at 1024 px, JPEG q90) |", "|---|---|---|---|"]
        web = main[mode].get("web1024", {})
        for s, v in native["real_fpr"].items():
            w = main[mode].get("web", {}).get("real_fpr", {}).get(s)
            w2 = web.get("real_fpr", {}).get(s)
            photos = web.get("photos", {}).get(s)
            lines.append(f"| {s} | {v:.3f} | {'–' if w is None else f'{w:.3f}'} | "
                         f"{'–' if w2 is None else f'{w2:.3f} ({photos})'} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="an MMFR-Public build made with --splits all")
    ap.add_argument("--mirror", type=Path, default=None, help="snapshots of the sources (adds the web1024 view)")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "tiny-public.toml",
                    help="training config whose data augmentation and head options the shipped recipe uses")
    ap.add_argument("--nets", default="lite0", help="comma-separated EfficientNet-Lite nets (lite0 first)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/fakereasoning-lofo"), help="feature cache folder")
    ap.add_argument("--views", default="native,jpeg95,jpeg75,resize0.5,web",
                    help="evaluation views of the lite0 entries (others: native and web only)")
    ap.add_argument("--baselines", default="", help="trained baselines per fold: npr,cnnspot (default: none)")
    ap.add_argument("--baseline-steps", type=int, default=400, help="training steps per fold of each trained baseline")
    ap.add_argument("--finetune", type=float, default=0.0, metavar="EPOCHS",
                    help="also fine-tune EfficientNet-Lite0's last stages per fold for EPOCHS (from cached activations)")
    ap.add_argument("--reference", type=Path, action="append", default=[], metavar="MODEL_DIR",
                    help="also score a saved model as it is (no refit), e.g. the previous default")
    ap.add_argument("--quick", action="store_true", help="a few hundred images, 100 resamples: a smoke run")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    started = time.time()

    import torch

    from fakereasoning.evaluate.perturb import compose, parse_perturbation
    from fakereasoning.models.head import group_weights
    from fakereasoning.models.statistics import StatisticsExtractor
    from fakereasoning.train.config import load_config
    from fakereasoning.train.head import balance_group, extract, fold_plan

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    head_views = cfg.data.head_views
    crop = int(cfg.model.get("stats_crop", 224))
    examples, items, manifest = load_items(args.data)
    if args.quick:
        rng = np.random.default_rng(args.seed)
        keep = sorted(rng.choice(len(items), size=min(len(items), 1500), replace=False).tolist())
        examples = [examples[i] for i in keep]
        items = [Item(n, *[getattr(items[i], f) for f in ("key", "label", "group", "source", "repo", "native", "first")])
                 for n, i in enumerate(keep)]
        args.resamples = min(args.resamples, 100)
    plan, folds_item = fold_plan(examples, cfg.data.head_folds, cfg.data.head_fold_parts)
    if plan.n_folds < 2:
        raise SystemExit("lofo: fewer than two modern families or real sources: no folds (build with --splits all)")
    work = args.work / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"lofo: {msg}", file=sys.stderr, flush=True)

    log(f"{len(items)} crops, {plan.n_folds} folds: " + "; ".join(
        f"{k + 1}: {', '.join(plan.members(k)['families'])}" for k in range(plan.n_folds)))
    tested = [it.index for it in items if folds_item[it.index] >= 0]
    first = [i for i in tested if items[i].first]
    feats: dict[str, tuple[np.ndarray, np.ndarray, dict[str, dict[int, np.ndarray]], dict[str, np.ndarray]]] = {}
    wanted_views = [v for v in args.views.split(",") if v]
    for net in args.nets.split(","):
        ex = StatisticsExtractor(net)
        log(f"{net}: features of {len(examples)} images x {head_views} views")
        x, rows = extract(ex, examples, cfg.data, head_views, crop, 0, work / f"train-{net}.npz")
        by_view: dict[str, dict[int, np.ndarray]] = {}
        index = {(int(i), int(v)): n for n, (i, v) in enumerate(rows)}
        by_view["native"] = {i: x[index[(i, 0)]] for i in tested if (i, 0) in index}
        if "web" in wanted_views:
            by_view["web"] = {i: x[index[(i, 0)]] for i in tested if (i, 0) in index and not items[i].native}
        if net == "lite0":
            for view, spec in PERTURB_VIEWS.items():
                if view in wanted_views:
                    log(f"{net}: {view} view of {len(first)} images")
                    by_view[view] = view_features(ex, examples, first, compose([parse_perturbation(spec)]),
                                                  work / f"{view}-{net}.npz", crop)
        web = {}
        if args.mirror is not None and net == "lite0":
            log(f"{net}: web1024 view of held-out real photos from {args.mirror}")
            web = web_features(ex, [items[i] for i in tested], manifest, args.mirror, work / f"web1024-{net}.npz", crop)
        feats[net] = (x, rows, by_view, web)

    entries = []
    x0, rows0, views0, web0 = feats["lite0"]
    # (name, features, balance of the head's fit, x, rows, views, web, training views, kind)
    shipped = cfg.data.head_balance
    other = "groups" if shipped == "rows" else "rows"
    native0 = {"native": views0["native"]}
    runs = [("fakereasoning", "lite0", shipped, x0, rows0, views0, web0, head_views, "head"),
            ("fakereasoning-1view", "lite0", shipped, x0, rows0, native0, {}, 1, "head"),
            (f"fakereasoning-{'group-balanced' if other == 'groups' else 'row-weighted'}", "lite0", other, x0, rows0,
             native0, {}, head_views, "head")]  # the other balance, as a measured variant
    final = slice(x0.shape[1] - 2 * 1280, x0.shape[1] - 1280)  # the head level's means: pooled final features
    runs.append(("univfd", "univfd", "rows", x0[:, final], rows0,
                 {v: {i: f[final] for i, f in d.items()} for v, d in views0.items()},
                 {s: f[final] for s, f in web0.items()}, 1, "probe"))
    for net in feats:
        if net != "lite0":
            x, rows, views, _ = feats[net]
            runs.append((f"fakereasoning-{net}", net, shipped, x, rows, views, {}, head_views, "head"))
            if np.array_equal(rows, rows0):
                both = {v: {i: np.r_[views0[v][i], views[v][i]] for i in views[v] if i in views0.get(v, {})} for v in views}
                runs.append((f"fakereasoning-lite0+{net}", f"lite0+{net}", shipped, np.c_[x0, x], rows0, both, {},
                             head_views, "head"))
    fold_outputs: dict[str, list[FoldOutput]] = {}
    key = cache_key(items, tested, folds_item, cfg.data, wanted_views, args.mirror)
    entries_dir = work / "entries"
    entries_dir.mkdir(exist_ok=True)
    groups = group_weights([balance_group(e) for e in examples])
    for name, features, balance, x, rows, views, web, hv, kind in runs:
        weight = groups[rows[:, 0]] if balance == "groups" and kind == "head" else None
        ident = f"{kind}-{features}-{balance}-{hv}v"
        outs = cached_outputs(entries_dir, ident, [*views, *(["web1024"] if web else [])], key,
                              partial(run_entry, name, x, rows, items, folds_item, plan.n_folds, views, web, hv, kind, log, weight))
        fold_outputs[name] = outs
        entries.append(summarise(name, outs, items, folds_item, plan, args.resamples, args.seed))
        v = entries[-1].get("nested", entries[-1]["crossfit"]).get("native", {})
        log(f"{name}: native mean AUC {v.get('mean_auc', float('nan')):.3f}, bal. acc {v.get('mean_bal_acc', float('nan')):.3f}")

    for ref in args.reference:
        outs = cached_outputs(entries_dir, f"reference-{ref.name}", ["native"], key,
                              partial(model_entry, ref, examples, items, folds_item, plan.n_folds, work, log))
        entries.append(summarise(f"reference:{ref.name}", outs, items, folds_item, plan, args.resamples, args.seed))
    for kind in [k for k in args.baselines.split(",") if k]:
        steps = 20 if args.quick else args.baseline_steps
        outs = cached_outputs(entries_dir, f"{kind}-{steps}steps", ["native"], key,
                              partial(trained_entry, kind, examples, items, folds_item, plan.n_folds, steps, work, log))
        fold_outputs[kind] = outs
        entries.append(summarise(kind, outs, items, folds_item, plan, args.resamples, args.seed))
        v = entries[-1]["crossfit"].get("native", {})
        log(f"{kind}: native mean AUC {v.get('mean_auc', float('nan')):.3f}, bal. acc {v.get('mean_bal_acc', float('nan')):.3f}")
    if args.finetune:
        acts, early, frows = stage_cache(examples, cfg.data, crop, head_views, work / "last-stages-lite0.npz", log)
        outs = finetune_entry(acts, early, frows, items, folds_item, plan.n_folds, 0.2 if args.quick else args.finetune, log)
        fold_outputs["fakereasoning-ft-last-stages"] = outs
        entries.append(summarise("fakereasoning-ft-last-stages", outs, items, folds_item, plan, args.resamples, args.seed))
        outs = fuse(fold_outputs["fakereasoning"], outs, items)
        entries.append(summarise("fakereasoning+ft-last-stages-fusion", outs, items, folds_item, plan, args.resamples, args.seed))
    if "cnnspot" in fold_outputs:  # a fine-tuned branch fused with the frozen statistics' head
        outs = fuse(fold_outputs["fakereasoning"], fold_outputs["cnnspot"], items)
        entries.append(summarise("fakereasoning+cnnspot-fusion", outs, items, folds_item, plan, args.resamples, args.seed))

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = {
        "command": " ".join(["python bench/lofo.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "machine": f"{platform.machine()} / {torch.get_num_threads()} threads / torch {torch.__version__}",
        "data": str(args.data), "config": str(args.config), "head_views": head_views,
        "counts": {"items": len(items), "sources": len({it.source for it in items}),
                   "modern_families": len(plan.families), "real_sources": len(plan.sources)},
        "folds": plan.to_dict(), "entries": entries, "seconds": round(time.time() - started, 1),
    }
    from fakereasoning.fsio import atomic_write_json, atomic_write_text

    out = (work / "lofo-quick.json") if args.quick else ROOT / "bench" / "results" / "lofo.json"
    atomic_write_json(out, res, indent=1)
    atomic_write_text(out.with_suffix(".md"), markdown(res))
    log(f"wrote {out} and {out.with_suffix('.md')} in {res['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
